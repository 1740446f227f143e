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
    let rest = path.strip_prefix("/v2/").unwrap_or(path);
    let Some(endpoint) = Endpoint::parse(rest)? else {
        return Err(
            ApiError::new(ErrorCode::NameUnknown, format!("no endpoint at {path}"))
                .with_status(StatusCode::NOT_FOUND),
        );
    };
    let query = query_pairs(parts.uri.query());
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
