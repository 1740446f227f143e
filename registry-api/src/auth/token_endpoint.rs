//! `GET /v2/token`: the Docker token protocol. Basic credentials (a
//! password, or an access token as the password; never a registry token)
//! or none (anonymous) in; a short-lived signed token granting what was
//! asked and allowed out.

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use registry_auth::{grant_scopes, Scope, TokenSource};

use crate::http::error::ApiResult;
use crate::http::util::query_pairs;
use crate::service::{Caller, Registry, RegistryError};

/// The token endpoint handler. Its router authenticates with primary
/// credentials only: a registry token cannot be swapped for another
/// (wider, or outliving its source) one.
pub(crate) async fn token(
    State(registry): State<Registry>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let state = registry.auth().ok_or(RegistryError::AccessControlOff)?;
    let query = query_pairs(query.as_deref());
    let requested = Scope::parse_all(
        query
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    )
    .map_err(|e| RegistryError::invalid("scope", e))?;
    let granted = grant_scopes(&state.authorizer.current(), caller.identity(), &requested);
    tracing::info!(
        target: "auth",
        subject = %caller.subject(),
        requested = requested.len(),
        granted = granted.len(),
        "token issued"
    );
    // A caller a host authenticated has no credential of ours behind it: a
    // token would name none and be refused on first use, so say so now.
    let source = match caller.source() {
        Some(source) => *source,
        None if caller.is_anonymous() => TokenSource::Anonymous,
        None => {
            return Err(RegistryError::invalid(
                "credentials",
                "this caller was authenticated by the host application; registry tokens are \
                 issued only for the registry's own credentials",
            )
            .into())
        }
    };
    let issued = state.issuer.issue_from(caller.identity(), &granted, source);
    Ok(Json(issued.response()).into_response())
}
