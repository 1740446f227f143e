//! `GET /v2/token`: the Docker token protocol. Basic credentials (a
//! password, or an access or refresh token as the password; never a
//! registry token) or none (anonymous) in; a short-lived signed token
//! granting what was asked and allowed out, and with `offline_token=true`
//! a refresh token too (what `docker login` keeps as its identity token).

use axum::extract::{RawQuery, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use registry_auth::{ClientId, Scope, TokenSource};

use crate::http::error::ApiResult;
use crate::http::util::{query_get, query_pairs};
use crate::service::{Caller, GrantedToken, Registry, RegistryError, TokenRequest};

/// The token endpoint handler. Its router authenticates with primary
/// credentials only: a registry token cannot be swapped for another
/// (wider, or outliving its source) one.
pub(crate) async fn token(
    State(registry): State<Registry>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> ApiResult<Response> {
    let query = query_pairs(query.as_deref());
    let scopes = Scope::parse_all(
        query
            .iter()
            .filter(|(k, _)| k == "scope")
            .map(|(_, v)| v.as_str()),
    )
    .map_err(|e| RegistryError::invalid("scope", e))?;
    let mut request = TokenRequest::new(query_get(&query, "service").map(str::to_owned), scopes);
    if query_get(&query, "offline_token") == Some("true") {
        // Docker sends its client id along; offline access needs one to
        // record what the refresh token was issued to.
        let client = query_get(&query, "client_id")
            .ok_or_else(|| RegistryError::invalid("client_id", "offline_token=true needs one"))?;
        request = request.offline(client_id(client)?);
    }
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
    let granted = registry
        .issue_token(caller.identity(), source, request)
        .await?;
    Ok(answer(&granted, false))
}

/// A client id from the request.
pub(super) fn client_id(text: &str) -> Result<ClientId, RegistryError> {
    text.parse()
        .map_err(|e| RegistryError::invalid("client_id", e))
}

/// The JSON answer; an OAuth2 grant also names the granted scopes.
pub(super) fn answer(granted: &GrantedToken, oauth: bool) -> Response {
    let mut body = granted.issued.response();
    body.refresh_token = granted.refresh_token.as_ref().map(|r| r.expose());
    if oauth {
        let scopes: Vec<String> = granted.scopes.iter().map(Scope::to_string).collect();
        body.scope = Some(scopes.join(" "));
    }
    Json(body).into_response()
}
