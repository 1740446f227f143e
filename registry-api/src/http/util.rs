//! Small HTTP helpers shared by the handlers: header names, query parsing,
//! body conversion.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue};

use futures::StreamExt;
use registry_storage::{ByteStream, StorageError};

use crate::service::RegistryError;

/// `Docker-Content-Digest`.
pub(crate) const DOCKER_CONTENT_DIGEST: &str = "docker-content-digest";
/// `Docker-Upload-UUID`.
pub(crate) const DOCKER_UPLOAD_UUID: &str = "docker-upload-uuid";
/// `Docker-Distribution-API-Version`.
pub(crate) const API_VERSION: &str = "docker-distribution-api-version";
/// `OCI-Subject`.
pub(crate) const OCI_SUBJECT: &str = "oci-subject";
/// `OCI-Filters-Applied`.
pub(crate) const OCI_FILTERS_APPLIED: &str = "oci-filters-applied";
/// `OCI-Tag`: one per tag a manifest `PUT` applied.
pub(crate) const OCI_TAG: &str = "oci-tag";

/// A header value from text we built ourselves (digests, paths of validated
/// names, numbers): always visible ASCII.
pub(crate) fn header_value(s: impl AsRef<str>) -> HeaderValue {
    HeaderValue::from_str(s.as_ref()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Query parameters in order, percent-decoded; repeated keys are kept.
pub(crate) fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    query
        .map(|q| {
            url::form_urlencoded::parse(q.as_bytes())
                .into_owned()
                .collect()
        })
        .unwrap_or_default()
}

/// The first value of `key`.
pub(crate) fn query_get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// A request body as a storage byte stream. It fails (with the
/// `BodyIdleTimeout` of [`super::body`] inside [`StorageError::Incoming`])
/// when no byte arrives for the registry's body idle timeout: the store
/// then rolls the upload back, as for any body that fails part-way.
pub(crate) fn body_stream(body: Body) -> ByteStream {
    body.into_data_stream()
        .map(|item| {
            item.map_err(|e| StorageError::Incoming {
                source: e.into_inner(),
            })
        })
        .boxed()
}

/// A header parsed as text, or `None` when missing.
pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The page size `n` a listing asks for (`None`: as many as allowed); a
/// malformed or negative `n` is an error naming the parameter.
pub(crate) fn page_size(pairs: &[(String, String)]) -> Result<Option<usize>, RegistryError> {
    match query_get(pairs, "n") {
        None | Some("") => Ok(None),
        Some(n) => n.parse::<usize>().map(Some).map_err(|_| {
            RegistryError::invalid(
                format!("query parameter n={n:?}"),
                "not a non-negative integer",
            )
        }),
    }
}
