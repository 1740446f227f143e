//! The `/v2/` dispatcher: parses the path into an [`Endpoint`] and calls
//! the handler for the method. Authentication ran before (the caller is in
//! the request); authorization and every rule run in the service call.

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use registry_core::ErrorCode;

use super::endpoint::Endpoint;
use super::error::{ApiError, ApiResult};
use super::util::{header_value, query_pairs, API_VERSION};
use super::{blobs, listing, manifests, uploads};
use crate::service::{Caller, Registry};

/// `GET /v2/`: the API version check; with access control on, it also
/// tells clients whether their credentials work (401 with a challenge).
pub(crate) async fn base(State(registry): State<Registry>, caller: Caller) -> Response {
    if let Err(e) = registry.require_login(&caller) {
        return ApiError::from(e)
            .with_header(
                header::HeaderName::from_static(API_VERSION),
                header_value("registry/2.0"),
            )
            .into_response();
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::HeaderName::from_static(API_VERSION), "registry/2.0"),
        ],
        "{}",
    )
        .into_response()
}

/// The path with `%XX` escapes decoded (`sha256%3A…` as `sha256:…`):
/// names, tags, digests and upload ids never hold a `%`, so a client that
/// escapes a digest's colon means the colon. A `%` not followed by two hex
/// digits stays as it is (and the path then fails to parse, naming it).
fn percent_decoded(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.contains('%') {
        return std::borrow::Cow::Borrowed(path);
    }
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn unsupported(method: &Method, what: &str) -> ApiError {
    ApiError::new(
        ErrorCode::Unsupported,
        format!("{method} is not supported on {what}"),
    )
}

/// `/v2/{*rest}`.
pub(crate) async fn dispatch(
    State(registry): State<Registry>,
    caller: Caller,
    request: Request,
) -> Response {
    match route(&registry, &caller, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn route(registry: &Registry, caller: &Caller, request: Request) -> ApiResult<Response> {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let rest = percent_decoded(path.strip_prefix("/v2/").unwrap_or(path));
    let Some(endpoint) = Endpoint::parse(&rest)? else {
        return Err(
            ApiError::new(ErrorCode::NameUnknown, format!("no endpoint at {path}"))
                .with_status(StatusCode::NOT_FOUND),
        );
    };
    let query = query_pairs(parts.uri.query());
    let endpoint = match super::mirror::ns_host(&query) {
        Some(host) => super::mirror::mirrored(registry, host, endpoint)?,
        None => endpoint,
    };
    let headers = &parts.headers;
    let method = &parts.method;
    let head = method == Method::HEAD;
    let r = registry;
    match endpoint {
        Endpoint::Catalog => match *method {
            Method::GET => listing::catalog(r, caller, &query).await,
            _ => Err(unsupported(method, "the catalog")),
        },
        Endpoint::Tags(repo) => match *method {
            Method::GET => listing::tags(r, caller, &repo, &query).await,
            _ => Err(unsupported(method, "tag lists")),
        },
        Endpoint::Manifest(repo, reference) => match *method {
            Method::GET | Method::HEAD => {
                manifests::get(r, caller, &repo, &reference, headers, head).await
            }
            Method::PUT => {
                manifests::put(r, caller, &repo, &reference, &query, headers, body).await
            }
            Method::DELETE => manifests::delete(r, caller, &repo, &reference).await,
            _ => Err(unsupported(method, "manifests")),
        },
        Endpoint::InvalidReference(repo, reference, e) => match *method {
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE => {
                Err(manifests::invalid_reference(r, caller, &repo, &reference, &e, method).await)
            }
            _ => Err(unsupported(method, "manifests")),
        },
        Endpoint::Blob(repo, digest) => match *method {
            Method::GET | Method::HEAD => {
                blobs::get(r, caller, &repo, &digest, headers, head).await
            }
            Method::DELETE => blobs::delete(r, caller, &repo, &digest).await,
            _ => Err(unsupported(method, "blobs")),
        },
        Endpoint::UploadStart(repo) => match *method {
            Method::POST => uploads::start(r, caller, &repo, &query, headers, body).await,
            _ => Err(unsupported(method, "upload creation")),
        },
        Endpoint::Upload(repo, id) => match *method {
            Method::GET => uploads::status(r, caller, &repo, &id).await,
            Method::PATCH => uploads::patch(r, caller, &repo, &id, headers, body).await,
            Method::PUT => uploads::finish(r, caller, &repo, &id, &query, headers, body).await,
            Method::DELETE => uploads::cancel(r, caller, &repo, &id).await,
            _ => Err(unsupported(method, "uploads")),
        },
        Endpoint::Referrers(repo, digest) => match *method {
            Method::GET => listing::referrers(r, caller, &repo, &digest, &query).await,
            _ => Err(unsupported(method, "referrers")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::percent_decoded;

    #[test]
    fn escapes_are_decoded_and_stray_percents_kept() {
        assert_eq!(
            percent_decoded("ns/app/blobs/sha256%3Aab"),
            "ns/app/blobs/sha256:ab"
        );
        assert_eq!(
            percent_decoded("ns/app/blobs/sha256%3aab"),
            "ns/app/blobs/sha256:ab"
        );
        assert_eq!(percent_decoded("ns/app/tags/list"), "ns/app/tags/list");
        assert_eq!(percent_decoded("ns/app%"), "ns/app%");
        assert_eq!(percent_decoded("ns/app%zz/x"), "ns/app%zz/x");
        // A decoded byte that is not UTF-8 cannot sneak through unchecked.
        assert_eq!(percent_decoded("ns/%ff"), "ns/\u{fffd}");
    }
}
