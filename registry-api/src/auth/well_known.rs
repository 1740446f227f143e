//! What other registries and token consumers fetch to trust this registry's
//! tokens, without credentials: the public keys (`/.well-known/jwks.json`)
//! and the token CA's certificate (`/.well-known/registry-token-ca.pem`,
//! the `rootcertbundle` of CNCF Distribution's `auth.token`).

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::http::error::ApiResult;
use crate::service::{Registry, RegistryError};

/// Where the JWKS is served.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";
/// Where the token CA's certificate is served.
pub const TOKEN_CA_PATH: &str = "/.well-known/registry-token-ca.pem";

/// Verifiers may keep what they fetched this long: keys are published a
/// day ahead of their turn (a quarter of the rotation period when that is
/// shorter), and a token naming a key not yet seen makes careful verifiers
/// fetch again anyway.
const CACHE_CONTROL: &str = "public, max-age=300";

async fn fresh_issuer(registry: &Registry) -> Result<&registry_auth::TokenIssuer, RegistryError> {
    let state = registry.auth().ok_or(RegistryError::AccessControlOff)?;
    if let Err(e) = state.issuer.refresh_if_stale().await {
        tracing::warn!(target: "auth", error = %e, "reloading token keys failed");
    }
    Ok(&state.issuer)
}

/// `GET /.well-known/jwks.json`.
pub(crate) async fn jwks(State(registry): State<Registry>) -> ApiResult<Response> {
    let jwks = fresh_issuer(&registry).await?.jwks();
    let mut response = Json(jwks).into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(CACHE_CONTROL),
    );
    Ok(response)
}

/// `GET /.well-known/registry-token-ca.pem`.
pub(crate) async fn token_ca(State(registry): State<Registry>) -> ApiResult<Response> {
    let pem = fresh_issuer(&registry).await?.ca_pem();
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-pem-file"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static(CACHE_CONTROL),
            ),
        ],
        pem,
    )
        .into_response())
}
