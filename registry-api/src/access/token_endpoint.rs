//! `GET /v2/token`: the Docker token protocol. Basic credentials (a
//! password, or an access token as the password; never a registry token)
//! or none (anonymous) in;
//! a short-lived signed token granting what was asked and allowed out.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use registry_auth::{grant_scopes, Scope};
use registry_core::ErrorCode;

use super::authenticate_source;
use crate::error::ApiError;
use crate::http_util::query_pairs;
use crate::state::Registry;

/// The token endpoint handler.
pub(crate) async fn token(State(registry): State<Registry>, request: Request) -> Response {
    let Some(state) = registry.auth() else {
        return ApiError::new(
            ErrorCode::Unsupported,
            "this registry does not require authentication",
        )
        .with_status(axum::http::StatusCode::NOT_FOUND)
        .into_response();
    };
    // Primary credentials only: a registry token cannot be swapped for
    // another (wider, or outliving its source) one.
    let (caller, source) = match authenticate_source(state, request.headers()).await {
        Ok(a) => (a.caller, a.source),
        Err(e) => return e.into_response(),
    };
    let query = query_pairs(request.uri().query());
    let requested = match Scope::parse_all(
        query
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    ) {
        Ok(s) => s,
        Err(e) => {
            return ApiError::new(ErrorCode::Unsupported, format!("invalid scope: {e}"))
                .with_status(axum::http::StatusCode::BAD_REQUEST)
                .into_response()
        }
    };
    let granted = grant_scopes(&state.authorizer.current(), &caller.identity, &requested);
    tracing::info!(
        target: "auth",
        subject = %caller.identity.subject(),
        requested = requested.len(),
        granted = granted.len(),
        "token issued"
    );
    let issued = state.issuer.issue_from(&caller.identity, &granted, source);
    axum::Json(issued.response()).into_response()
}
