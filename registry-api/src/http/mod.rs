//! The HTTP layer: thin handlers (typed extractors and one service call)
//! grouped in routers a host can compose, and the one conversion of
//! [`RegistryError`](crate::RegistryError) into the OCI error envelope.

pub(crate) mod admin;
pub(crate) mod blobs;
pub(crate) mod body;
pub(crate) mod distribution;
pub mod endpoint;
pub mod error;
pub(crate) mod health;
pub(crate) mod image_api;
pub(crate) mod listing;
pub(crate) mod manifests;
pub(crate) mod mirror;
pub(crate) mod uploads;
pub(crate) mod util;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{any, get};
use axum::Router;

use crate::auth::AuthLayer;
use crate::metrics::MetricsLayer;
use crate::service::{Caller, Registry};
use body::IdleBodyLayer;

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = std::convert::Infallible;

    /// The caller the authentication layer (or the host) established;
    /// anonymous when no layer ran.
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .remove::<Caller>()
            .unwrap_or_else(Caller::anonymous))
    }
}

/// The OCI distribution API under `/v2/` and the token service: the token
/// endpoint `/v2/token` (GET, and POST for OAuth2 form grants) and, with no
/// credentials needed, the token keys at `/.well-known/jwks.json` and the
/// token CA at `/.well-known/registry-token-ca.pem`; with authentication
/// and metrics.
pub fn distribution_router(registry: &Registry) -> Router {
    let token = Router::new()
        .route(
            "/v2/token",
            get(crate::auth::token).post(crate::auth::token_form),
        )
        .layer(AuthLayer::primary_only(registry));
    let keys = Router::new()
        .route(crate::auth::JWKS_PATH, get(crate::auth::jwks))
        .route(crate::auth::TOKEN_CA_PATH, get(crate::auth::token_ca));
    Router::new()
        .route("/v2/", get(distribution::base))
        .route("/v2", get(distribution::base))
        .route("/v2/{*rest}", any(distribution::dispatch))
        .layer(AuthLayer::registry_tokens(registry))
        .merge(token)
        .merge(keys)
        .layer(IdleBodyLayer::new(registry))
        .layer(MetricsLayer::new(registry))
        .with_state(registry.clone())
}

/// The Image API under `/apis/image/v1`, with authentication and metrics.
pub fn image_api_router(registry: &Registry) -> Router {
    image_api::routes()
        .layer(AuthLayer::primary_only(registry))
        .layer(IdleBodyLayer::new(registry))
        .layer(MetricsLayer::new(registry))
        .with_state(registry.clone())
}

/// The admin API under `/apis/admin/v1`, with authentication and metrics.
pub fn admin_router(registry: &Registry) -> Router {
    admin::routes()
        .layer(AuthLayer::primary_only(registry))
        .layer(IdleBodyLayer::new(registry))
        .layer(MetricsLayer::new(registry))
        .with_state(registry.clone())
}

/// Operations: `/healthz`, `/readyz` (no credentials needed) and the
/// Prometheus metrics at `/extensions/v2/metrics` (`metrics-viewer`).
pub fn ops_router(registry: &Registry) -> Router {
    let metrics = Router::new()
        .route(crate::metrics::METRICS_PATH, get(crate::metrics::serve))
        .layer(AuthLayer::primary_only(registry));
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .merge(metrics)
        .layer(IdleBodyLayer::new(registry))
        .layer(MetricsLayer::new(registry))
        .with_state(registry.clone())
}

/// Every router of the registry: the distribution API, the Image API,
/// the admin API and the operational endpoints.
pub fn router(registry: &Registry) -> Router {
    distribution_router(registry)
        .merge(image_api_router(registry))
        .merge(admin_router(registry))
        .merge(ops_router(registry))
}
