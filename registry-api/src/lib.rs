//! The registry as a Rust library and an embeddable HTTP service.
//!
//! Three layers, each in its own module:
//! - the **service core** ([`Registry`]): typed operations (uploads, blobs,
//!   manifests and tags, listings, the Image API and admin operations)
//!   taking the [`Caller`] they run for, with one [`Registry::authorize`]
//!   and one error type, [`RegistryError`]. No HTTP in it: embedders,
//!   background jobs and tests call it directly.
//! - **authentication** ([`AuthLayer`]): a tower layer that establishes the
//!   caller of each request once and puts it in the request extensions, or
//!   trusts the one a host's own layer put there.
//! - **HTTP**: thin handlers in routers a host composes —
//!   [`distribution_router`], [`image_api_router`], [`admin_router`],
//!   [`ops_router`], or all of them with [`router`] — and the one
//!   conversion of [`RegistryError`] into the OCI error envelope
//!   ([`ApiError`]).
//!
//! [`model`] holds the public request and response documents of the Image
//! and admin APIs and the distribution listings, shared by the server and
//! clients; `client::Client` is an async client of all three APIs built on
//! them (token flow, digest-verified blobs and manifests, paging helpers).
//! [`proxy`] configures proxy namespaces: pull-through caches of upstream
//! registries (Docker Hub, quay.io, ghcr.io, …) served like any namespace.
//!
//! ```
//! use registry_api::{router, Registry};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let registry = Registry::in_memory();
//! let app = axum::Router::new()
//!     .route("/hello", axum::routing::get(|| async { "hi" }))
//!     .merge(router(&registry));
//!
//! use tower::ServiceExt;
//! let response = app
//!     .oneshot(axum::http::Request::get("/v2/").body(axum::body::Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(response.status(), 200);
//! # });
//! ```

pub mod auth;
pub mod client;
pub mod events;
pub mod http;
pub mod metrics;
pub mod model;
pub mod proxy;
pub mod service;

pub use auth::{AuthConfig, AuthLayer, AuthSettings};
pub use events::EventsConfig;
pub use http::error::{ApiError, ApiResult};
pub use http::{admin_router, distribution_router, image_api_router, ops_router, router};
pub use service::{
    BuildError, Caller, Limits, MaintenanceHandle, Registry, RegistryBuilder, RegistryError,
};
