//! `registry`: an embeddable OCI container image registry.
//!
//! This facade re-exports the layers: [`core`] (digests, names, manifests,
//! error codes), [`storage`] (blob, upload and metadata stores with memory,
//! filesystem and SQLite backends), [`auth`] (namespaces, roles, tokens) and
//! [`api`] (the axum service, its public request and response documents in
//! `api::model`, and with the `client` feature the typed client
//! `api::client`).

pub use registry_api as api;
pub use registry_auth as auth;
pub use registry_core as core;
pub use registry_storage as storage;

/// The README's code, compiled by `cargo test --doc`.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
