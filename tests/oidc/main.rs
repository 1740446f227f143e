//! The OIDC provider against issuers over real HTTPS.
//!
//! - Always: an issuer stand-in served here over HTTPS (a throwaway CA from
//!   rcgen, keys from `registry_auth::oidc::testing`): discovery and JWKS
//!   with `--oidc-ca-file`, and the refusals of a bad issuer (untrusted
//!   certificate, another issuer's discovery document, keys over plain
//!   HTTP, an oversized JWKS, an issuer that never answers).
//! - With `REGISTRY_TEST_OIDC_ISSUER` (`bash .ci/services/oidc.sh start
//!   DIR`: the `oidc-provider` npm package, a certified OpenID Connect
//!   implementation): `registry-server` started with the `--oidc-*` flags
//!   accepts the provider's ID tokens as Basic passwords, as Bearer tokens
//!   and at `/v2/token`, pulls through a `group:oidc:devs` binding and is
//!   refused elsewhere; `registryctl login --oidc` completes the device flow
//!   and the auth file it writes pulls.

#[path = "../common/examples.rs"]
mod examples;
mod https_issuer;
mod real_provider;
mod server_settings;
mod support;
