//! Small HTTP helpers shared by the handlers: header names, query parsing,
//! body conversion.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue};
use std::time::Duration;

use futures::StreamExt;
use registry_core::ErrorCode;
use registry_storage::{ByteStream, StorageError};

use crate::error::ApiError;

/// `Docker-Content-Digest`.
pub const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";
/// `Docker-Upload-UUID`.
pub const DOCKER_UPLOAD_UUID: &str = "docker-upload-uuid";
/// `Docker-Distribution-API-Version`.
pub const API_VERSION: &str = "docker-distribution-api-version";
/// `OCI-Subject`.
pub const OCI_SUBJECT: &str = "oci-subject";
/// `OCI-Filters-Applied`.
pub const OCI_FILTERS_APPLIED: &str = "oci-filters-applied";
/// `OCI-Tag`: one per tag a manifest `PUT` applied.
pub const OCI_TAG: &str = "oci-tag";

/// A header value from text we built ourselves (digests, paths of validated
/// names, numbers): always visible ASCII.
pub fn header_value(s: impl AsRef<str>) -> HeaderValue {
    HeaderValue::from_str(s.as_ref()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Query parameters in order, percent-decoded; repeated keys are kept.
pub fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// The first value of `key`.
pub fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A request body as a storage byte stream that fails (with a
/// `BodyIdleTimeout` inside [`StorageError::Incoming`]) when no byte
/// arrives for `idle`: the store then rolls the upload back, as for any body
/// that fails part-way.
pub fn body_stream(body: Body, idle: Duration) -> ByteStream {
    let data = body.into_data_stream();
    futures::stream::unfold(Some(data), move |state| async move {
        let mut data = state?;
        // The deadline moves only when bytes arrive: empty frames are no progress.
        let deadline = tokio::time::Instant::now() + idle;
        loop {
            match tokio::time::timeout_at(deadline, data.next()).await {
                Ok(Some(Ok(bytes))) if bytes.is_empty() => continue,
                Ok(Some(Ok(bytes))) => return Some((Ok(bytes), Some(data))),
                Ok(Some(Err(e))) => {
                    let e = StorageError::Incoming {
                        source: Box::new(e),
                    };
                    return Some((Err(e), None));
                }
                Ok(None) => return None,
                Err(_) => {
                    let e = StorageError::Incoming {
                        source: Box::new(BodyIdleTimeout { idle }),
                    };
                    return Some((Err(e), None));
                }
            }
        }
    })
    .boxed()
}

/// A request body sent no byte for [`Limits::body_idle_timeout`](crate::Limits).
#[derive(Debug)]
pub(crate) struct BodyIdleTimeout {
    /// The timeout that passed.
    pub(crate) idle: Duration,
}

impl std::fmt::Display for BodyIdleTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no byte of the request body arrived for {} s",
            self.idle.as_secs_f64()
        )
    }
}

impl std::error::Error for BodyIdleTimeout {}

/// A header parsed as text, or `None` when missing.
pub fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The page size `n` of a listing, capped at `max`; a malformed or
/// negative `n` is an error naming the parameter.
pub fn page_size(pairs: &[(String, String)], max: usize) -> Result<usize, ApiError> {
    match query_get(pairs, "n") {
        None | Some("") => Ok(max),
        Some(n) => n.parse::<usize>().map(|n| n.min(max)).map_err(|_| {
            ApiError::new(
                ErrorCode::Unsupported,
                format!("query parameter n={n:?} is not a non-negative integer"),
            )
            .with_status(axum::http::StatusCode::BAD_REQUEST)
        }),
    }
}
