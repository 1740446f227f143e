//! Hardening of authentication (issue 8): bounded password checks and
//! failed-login limits, registry tokens confined to the distribution API
//! and revoked with their source, token lifetimes in range, forwarded
//! headers only from trusted proxies, and pull secrets that a read does not
//! rotate.

#[path = "../common/mod.rs"]
mod common;
mod forwarded_headers;
mod login_limits;
mod pull_secrets;
mod registry_tokens;
mod support;
