//! The token service: JWTs in the Docker token-auth format, the keys at
//! `/.well-known/`, OAuth2 form grants on `POST /v2/token`, refresh tokens
//! (offline access) and their revocation, tokens for other registries.

#[path = "../common/mod.rs"]
mod common;
mod keys;
mod oauth_grants;
mod refresh_tokens;
mod support;
