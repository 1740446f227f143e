//! The `/v2/` dispatcher: parses the path into an [`Endpoint`] and calls
//! the handler for the method.

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use registry_core::ErrorCode;

use registry_auth::{Action, NamespaceFilter};
use registry_core::RepositoryName;
use registry_storage::StorageError;

use crate::access::{self, Caller};
use crate::endpoint::Endpoint;
use crate::error::{ApiError, ApiResult};
use crate::http_util::{header_value, query_pairs, API_VERSION};
use crate::state::Registry;
use crate::{blobs, listing, manifests, uploads};

/// `GET /v2/`: the API version check; with access control on, it also
/// tells clients whether their credentials work (401 with a challenge).
pub(crate) async fn base(State(registry): State<Registry>, request: Request) -> Response {
    if let Some(state) = registry.auth() {
        match access::authenticate(state, request.headers()).await {
            Ok(caller) if !caller.identity.is_anonymous() => {}
            Ok(_) => {
                return access::challenge(state, request.headers(), None, "authentication required")
                    .with_header(
                        header::HeaderName::from_static(API_VERSION),
                        header_value("registry/2.0"),
                    )
                    .into_response()
            }
            Err(e) => return e.into_response(),
        }
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

/// The action a request needs on its repository (`None`: no single
/// repository, e.g. the catalog, which is filtered instead).
fn required_action(endpoint: &Endpoint, method: &Method) -> Option<Action> {
    match endpoint {
        Endpoint::Catalog => None,
        Endpoint::UploadStart(_) | Endpoint::Upload(..) => Some(Action::Push),
        Endpoint::Tags(_) | Endpoint::Referrers(..) => Some(Action::Pull),
        // A malformed reference is checked like the manifest it names, so
        // the answer says nothing to a caller who may not read the repository.
        Endpoint::Manifest(..) | Endpoint::InvalidReference(..) | Endpoint::Blob(..) => {
            Some(match *method {
                Method::DELETE => Action::Delete,
                Method::PUT | Method::POST | Method::PATCH => Action::Push,
                _ => Action::Pull,
            })
        }
    }
}

/// A push into a namespace that does not exist is `NAME_UNKNOWN`, unless
/// the caller is a cluster admin (or access control is off): then the
/// namespace is created.
async fn ensure_namespace(
    registry: &Registry,
    caller: &Caller,
    repo: &RepositoryName,
) -> ApiResult<()> {
    let ns = repo.to_namespace();
    if registry.metadata().namespace_exists(&ns).await? {
        return Ok(());
    }
    let may_create = registry.auth().is_none_or(|state| {
        state
            .authorizer
            .current()
            .is_cluster_admin(&caller.identity)
    });
    if !may_create {
        return Err(ApiError::new(
            ErrorCode::NameUnknown,
            format!("namespace {ns} does not exist; a cluster admin must create it"),
        ));
    }
    match registry.metadata().create_namespace(&ns).await {
        Ok(()) | Err(StorageError::AlreadyExists { .. }) => Ok(()),
        Err(e) => Err(e.into()),
    }
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
    let mut query = query_pairs(parts.uri.query());
    let headers = &parts.headers;
    let method = &parts.method;
    let caller = match registry.auth() {
        Some(state) => access::authenticate(state, headers).await?,
        None => Caller::anonymous(),
    };
    if let Some(state) = registry.auth() {
        if let (Some(action), Some(repo)) =
            (required_action(&endpoint, method), endpoint.repository())
        {
            access::require(state, headers, &caller, action, repo)?;
        }
        // A mount also needs pull on the source; without it the client
        // just gets a fresh session, as if the blob were not there.
        if matches!(endpoint, Endpoint::UploadStart(_)) {
            let from = crate::http_util::query_get(&query, "from")
                .and_then(|f| f.parse::<RepositoryName>().ok());
            let may_read = from.is_some_and(|f| access::allowed(state, &caller, Action::Pull, &f));
            if !may_read {
                query.retain(|(k, _)| k != "mount");
            }
        }
    }
    if matches!(
        (&endpoint, method),
        (Endpoint::UploadStart(_), &Method::POST) | (Endpoint::Manifest(..), &Method::PUT)
    ) {
        if let Some(repo) = endpoint.repository() {
            ensure_namespace(registry, &caller, repo).await?;
        }
    }
    // Requests that stream blob bytes in take an upload slot for their
    // whole life; when none is free the client is told to come back.
    let streams_in = matches!(
        (&endpoint, method),
        (Endpoint::UploadStart(_), &Method::POST)
            | (Endpoint::Upload(..), &Method::PATCH | &Method::PUT)
    );
    let actor = caller.actor();
    let actor = actor.as_str();
    let _upload_slot = if streams_in {
        // Per user first, so that one user's flood does not hold global
        // slots while being refused.
        let user_slot = registry
            .inner
            .user_upload_slots
            .acquire(actor, registry.limits().max_concurrent_uploads_per_user)?;
        match registry.inner.upload_slots.clone().try_acquire_owned() {
            Ok(permit) => Some((permit, user_slot)),
            Err(_) => {
                return Err(ApiError::new(
                    ErrorCode::TooManyRequests,
                    "too many uploads in progress; retry shortly",
                )
                .with_header(header::RETRY_AFTER, header_value("1")))
            }
        }
    } else {
        None
    };
    let head = method == Method::HEAD;
    match endpoint {
        Endpoint::Catalog => match *method {
            Method::GET => {
                let visible = registry.auth().map_or(NamespaceFilter::All, |state| {
                    access::visible_namespaces(state, &caller)
                });
                listing::catalog(registry, &query, &visible).await
            }
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
        Endpoint::InvalidReference(repo, reference, e) => match *method {
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE => {
                Err(manifests::invalid_reference(&repo, &reference, &e, method))
            }
            _ => Err(unsupported(method, "manifests")),
        },
        Endpoint::Blob(repo, digest) => match *method {
            Method::GET | Method::HEAD => blobs::get(registry, &repo, &digest, headers, head).await,
            Method::DELETE => blobs::delete(registry, &repo, &digest).await,
            _ => Err(unsupported(method, "blobs")),
        },
        Endpoint::UploadStart(repo) => match *method {
            Method::POST => uploads::start(registry, &repo, &query, headers, body, actor).await,
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
