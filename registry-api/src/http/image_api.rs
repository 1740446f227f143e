//! The Image API (JSON) under `/apis/image/v1`: ImageStreams (the
//! repositories of a namespace), tag history, image metadata and the
//! repositories a caller may pull. Read-only. `docs/image-api.md` shows
//! every route and document.
//!
//! Authorization: ImageStream routes need
//! [`Action::ListImageStreams`] / [`Action::ReadImageStreams`] on the
//! namespace (`registry-viewer` and up); image metadata and the repository
//! list show only repositories the caller may pull. With access control off
//! everything is readable. An anonymous caller without the right gets 401
//! with a Bearer challenge (so clients know to log in), anyone else 403.

mod images;
mod streams;

use std::time::SystemTime;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use registry_auth::{Action, NamespaceFilter, Resource};
use registry_core::{ErrorCode, Namespace, RepositoryName};
use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::access::{self, AuthState, Caller};
use crate::error::{ApiError, ApiResult};
use crate::http_util::header_value;
use crate::state::Registry;

/// Where the Image API lives.
const PREFIX: &str = "/apis/image/v1";

/// The Image API routes (state applied by the caller).
pub(crate) fn routes() -> Router<Registry> {
    Router::new()
        .route(
            "/apis/image/v1/namespaces/{ns}/imagestreams",
            get(streams::list),
        )
        .route(
            "/apis/image/v1/namespaces/{ns}/imagestreams/{*name}",
            get(streams::show),
        )
        .route(
            "/apis/image/v1/namespaces/{ns}/imagestreamtags/{*name_tag}",
            get(streams::tag),
        )
        .route("/apis/image/v1/images/{digest}", get(images::show))
        .route("/apis/image/v1/repositories", get(images::repositories))
}

/// Who is asking, and the auth state to check them against (`None` when
/// access control is off: then everything is allowed).
struct Access<'a> {
    state: Option<&'a AuthState>,
    caller: Caller,
}

impl<'a> Access<'a> {
    /// Authenticates the request (wrong credentials are a 401).
    async fn of(registry: &'a Registry, headers: &HeaderMap) -> ApiResult<Self> {
        let state = registry.auth();
        let caller = match state {
            Some(state) => access::authenticate_primary(state, headers).await?,
            None => Caller::anonymous(),
        };
        Ok(Access { state, caller })
    }

    /// Requires `action` on namespace `ns`: 401 for an anonymous caller,
    /// 403 for anyone else.
    fn require(&self, headers: &HeaderMap, action: Action, ns: &Namespace) -> ApiResult<()> {
        match self.state {
            None => Ok(()),
            Some(state) => access::require_resource(
                state,
                headers,
                &self.caller,
                action,
                &Resource::Namespace(ns),
            ),
        }
    }

    /// Whether the caller may pull from `repo` (a registry token's scopes
    /// bound this as they do on `/v2/`).
    fn may_pull(&self, repo: &RepositoryName) -> bool {
        self.state
            .is_none_or(|state| access::allowed(state, &self.caller, Action::Pull, repo))
    }

    /// Namespaces whose repositories the caller may pull.
    fn visible(&self) -> NamespaceFilter {
        match self.state {
            None => NamespaceFilter::All,
            Some(state) => access::visible_namespaces(state, &self.caller),
        }
    }

    /// A 401 with a Bearer challenge when access control is on and the
    /// caller is anonymous (logging in may help), else `None`.
    fn anonymous_challenge(&self, headers: &HeaderMap) -> Option<ApiError> {
        self.state
            .filter(|_| self.caller.identity.is_anonymous())
            .map(|state| access::challenge(state, headers, None, "authentication required"))
    }

    /// The answer when nothing the caller may see matched:
    /// [`Self::anonymous_challenge`], else `not_found`.
    fn hidden(&self, headers: &HeaderMap, not_found: ApiError) -> ApiError {
        self.anonymous_challenge(headers).unwrap_or(not_found)
    }
}

/// The host (and port) clients pull from, for `dockerImageRepository`: the
/// registry's base URL without its scheme, decided as for token realms (the
/// configured public URL, else forwarded headers from trusted proxies only,
/// else the request's `Host` if it can be a host).
fn pull_host(registry: &Registry, headers: &HeaderMap) -> String {
    let base = crate::access::base_url(registry, headers);
    base.split_once("://")
        .map_or(base.as_str(), |(_, host)| host)
        .to_owned()
}

/// A stored time as RFC 3339 (UTC).
fn rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(t).format(&Rfc3339).unwrap_or_default()
}

fn parse_namespace(ns: &str) -> ApiResult<Namespace> {
    ns.parse()
        .map_err(|e| ApiError::new(ErrorCode::NameInvalid, format!("invalid namespace: {e}")))
}

/// `{ns}/{stream}` as a repository name (streams may contain `/`).
fn parse_repository(ns: &Namespace, stream: &str) -> ApiResult<RepositoryName> {
    RepositoryName::from_parts(ns.as_str(), stream.trim_matches('/')).map_err(|e| {
        ApiError::new(
            ErrorCode::NameInvalid,
            format!("invalid ImageStream name {stream:?}: {e}"),
        )
    })
}

fn bad_query(message: String) -> ApiError {
    ApiError::new(ErrorCode::Unsupported, message).with_status(StatusCode::BAD_REQUEST)
}

/// A JSON answer, with `Link: <path?n=&last=>; rel="next"` when a page
/// was full (the same paging as `/v2/_catalog`).
fn json_page(value: &impl Serialize, path: &str, n: usize, next: Option<&str>) -> Response {
    let mut response = Json(value).into_response();
    if let Some(last) = next {
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("n", &n.to_string())
            .append_pair("last", last)
            .finish();
        response.headers_mut().insert(
            header::LINK,
            header_value(format!("<{path}?{query}>; rel=\"next\"")),
        );
    }
    response
}
