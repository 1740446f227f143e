//! The `/v2/` dispatcher: parses the path into an [`Endpoint`] and calls
//! the handler for the method.

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use registry_core::ErrorCode;

use crate::endpoint::Endpoint;
use crate::error::{ApiError, ApiResult};
use crate::http_util::{query_pairs, API_VERSION};
use crate::state::Registry;
use crate::{blobs, listing, manifests, uploads, Actor};

/// `GET /v2/`: the API version check.
pub(crate) async fn base() -> Response {
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
pub(crate) async fn dispatch(State(registry): State<Registry>, request: Request) -> Response {
    match route(&registry, request).await {
        Ok(response) => response,
        Err(e) => e.into_response(),
    }
}

async fn route(registry: &Registry, request: Request) -> ApiResult<Response> {
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
    let actor = parts
        .extensions
        .get::<Actor>()
        .map_or("anonymous", |a| a.0.as_str());
    let head = method == Method::HEAD;
    match endpoint {
        Endpoint::Catalog => match *method {
            Method::GET => listing::catalog(registry, &query, &|_| true).await,
            _ => Err(unsupported(method, "the catalog")),
        },
        Endpoint::Tags(repo) => match *method {
            Method::GET => listing::tags(registry, &repo, &query).await,
            _ => Err(unsupported(method, "tag lists")),
        },
        Endpoint::Manifest(repo, reference) => match *method {
            Method::GET | Method::HEAD => {
                manifests::get(registry, &repo, &reference, headers, head).await
            }
            Method::PUT => {
                manifests::put(registry, &repo, &reference, &query, headers, body, actor).await
            }
            Method::DELETE => manifests::delete(registry, &repo, &reference, actor).await,
            _ => Err(unsupported(method, "manifests")),
        },
        Endpoint::Blob(repo, digest) => match *method {
            Method::GET | Method::HEAD => blobs::get(registry, &repo, &digest, headers, head).await,
            Method::DELETE => blobs::delete(registry, &repo, &digest).await,
            _ => Err(unsupported(method, "blobs")),
        },
        Endpoint::UploadStart(repo) => match *method {
            Method::POST => uploads::start(registry, &repo, &query, headers, body).await,
            _ => Err(unsupported(method, "upload creation")),
        },
        Endpoint::Upload(repo, id) => match *method {
            Method::GET => uploads::status(registry, &repo, &id).await,
            Method::PATCH => uploads::patch(registry, &repo, &id, headers, body).await,
            Method::PUT => uploads::finish(registry, &repo, &id, &query, headers, body).await,
            Method::DELETE => uploads::cancel(registry, &repo, &id).await,
            _ => Err(unsupported(method, "uploads")),
        },
        Endpoint::Referrers(repo, digest) => match *method {
            Method::GET => listing::referrers(registry, &repo, &digest, &query).await,
            _ => Err(unsupported(method, "referrers")),
        },
    }
}
