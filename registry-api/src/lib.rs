//! The registry's embeddable HTTP service.
//!
//! [`router`] returns an [`axum::Router`] with its state applied that serves
//! the OCI distribution API under `/v2/` plus health endpoints. A host
//! application merges it into its own router (clients always call `/v2/` at
//! the host root); a `Router` is a tower `Service`, so non-axum hosts can
//! serve it too.
//!
//! [`model`] holds the public request and response documents of the Image
//! and admin APIs and the distribution listings; with the `client` feature,
//! `client::Client` is an async client of all three APIs built on them
//! (token flow, digest-verified blobs and manifests, paging helpers).
//!
//! ```
//! use registry_api::{router, Registry};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let app = axum::Router::new()
//!     .route("/hello", axum::routing::get(|| async { "hi" }))
//!     .merge(router(Registry::in_memory()));
//!
//! use tower::ServiceExt;
//! let response = app
//!     .oneshot(axum::http::Request::get("/v2/").body(axum::body::Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(response.status(), 200);
//! # });
//! ```

pub mod access;
mod admin;
mod blobs;
#[cfg(feature = "client")]
pub mod client;
mod distribution;
pub mod endpoint;
pub mod error;
mod health;
mod http_util;
mod image_api;
mod listing;
mod manifests;
pub mod metrics;
pub mod model;
mod state;
mod upload_limits;
mod uploads;

use axum::routing::{any, get};
use axum::Router;

pub use access::{AuthConfig, AuthSettings, Caller};
pub use error::{ApiError, ApiResult};
pub use state::{Limits, MaintenanceHandle, Registry};

/// The registry's routes with `registry` as their state.
pub fn router(registry: Registry) -> Router {
    Router::new()
        .route("/v2/", get(distribution::base))
        .route("/v2", get(distribution::base))
        .route("/v2/token", get(access::token))
        .route("/v2/{*rest}", any(distribution::dispatch))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route(metrics::METRICS_PATH, get(metrics::serve))
        .merge(admin::routes())
        .merge(image_api::routes())
        // Last, so that it measures every route above.
        .layer(metrics::MetricsLayer::new(&registry))
        // Outermost: the peer address and listener scheme, for auth.
        .layer(access::ConnectionScopeLayer)
        .with_state(registry)
}
