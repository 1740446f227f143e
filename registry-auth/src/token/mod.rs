//! Registry tokens: the short-lived bearer tokens of the Docker token
//! protocol, issued by the token endpoint for the scopes it grants and
//! verified on every request that presents one.
//!
//! They are JWTs (RFC 7519) in the Docker token-auth format, so other
//! registries can trust this one as their token server:
//!
//! - header: `alg` `ES256`, `kid` (the signing key's RFC 7638
//!   thumbprint), `x5c` (the signing key's certificate, then the token
//!   CA's);
//! - claims: `iss`, `sub` (the subject's string form), `aud` (one
//!   service, a string), `exp`, `nbf`, `iat` (whole seconds), `jti`,
//!   `access` (`[{"type", "name", "actions"}]`), and the private claims
//!   `provider` and `groups` (who authenticated the subject and the groups
//!   it gave it) and `source` (the credential the token was obtained with:
//!   deleting it, or its owner, revokes the token; see
//!   [`Authenticator::token_source_is_live`](crate::Authenticator::token_source_is_live)).
//!
//! Keys and the CA that certifies them live in the [`AuthStore`](crate::AuthStore)
//! ([`keys`]) and rotate there ([`rotation`]); [`TokenIssuer`] signs and
//! verifies with them.

mod cache;
mod claims;
mod issuer;
pub mod jwks;
pub mod keys;
pub mod rotation;
#[cfg(test)]
mod tests;

use std::fmt;
use std::time::Duration as StdDuration;

use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::credentials::TokenHash;
use crate::store::AuthStoreError;

pub(crate) use claims::identity_of as claims_identity;
pub use claims::TokenClaims;
pub use issuer::{TokenIssuer, MAX_TOKEN_LEN};
pub use jwks::{Jwk, Jwks};
pub use keys::{KeyError, KeyId, KeyIdError, PrivateKeyDer, TokenCa, TokenSigningKey};

/// Default token lifetime.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::minutes(5);
/// Default time a signing key signs before its successor takes over.
pub const DEFAULT_KEY_ROTATION_PERIOD: StdDuration = StdDuration::from_secs(30 * 24 * 3600);

/// Why a token could not be issued or verified.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a JWT of this registry's shape: bad base64 or JSON, a missing
    /// claim, a claim that does not parse.
    #[error("malformed registry token")]
    Malformed,
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("registry token is longer than {MAX_TOKEN_LEN} bytes")]
    TooLarge,
    /// An `alg` other than ES256 (`none` among them).
    #[error("registry token algorithm is not ES256")]
    UnsupportedAlgorithm,
    /// The `kid` names no key of this registry (or one that has expired).
    #[error("registry token was signed by an unknown key")]
    UnknownKey,
    /// The signature does not match: forged, altered, or another key.
    #[error("registry token signature is invalid")]
    BadSignature,
    /// The token has expired.
    #[error("registry token has expired")]
    Expired,
    /// The token is not valid yet (beyond clock-skew leeway).
    #[error("registry token is not yet valid")]
    NotYetValid,
    /// The token was issued for another service.
    #[error("registry token was issued for another service")]
    WrongAudience,
    /// The token was issued by another issuer.
    #[error("registry token was issued by another issuer")]
    WrongIssuer,
    /// A service or issuer name that is empty, too long or contains
    /// whitespace, control characters or quotes.
    #[error(
        "service or issuer name {0:?} must be 1 to 255 characters without whitespace or quotes"
    )]
    InvalidService(String),
    /// A token was asked for a service this registry does not issue
    /// tokens for.
    #[error("this registry issues no tokens for service {0:?}")]
    UnknownService(String),
    /// Token settings out of range.
    #[error("invalid token settings: {0}")]
    InvalidSettings(&'static str),
    /// No key may sign (the keys were never loaded).
    #[error("no token-signing key is loaded")]
    NoSigningKey,
    /// Signing failed.
    #[error("signing the registry token failed: {0}")]
    Signing(String),
    /// A key could not be made or read.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// The store failed while loading or rotating keys.
    #[error(transparent)]
    Store(#[from] AuthStoreError),
}

/// How registry tokens are issued. Start from [`TokenSettings::default`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenSettings {
    /// The `iss` of tokens (what a trusting registry's `issuer` names);
    /// `None`: the registry's service name.
    pub issuer: Option<String>,
    /// Services of other registries that trust this one as their token
    /// server (Distribution's `auth.token.service`): the token endpoint
    /// issues tokens for them too. This registry accepts only tokens for
    /// its own service.
    pub accepted_services: Vec<String>,
    /// Token lifetime (1 s to 1 day).
    pub ttl: StdDuration,
    /// How long a signing key signs before the next one takes over (at
    /// least an hour and four token lifetimes).
    pub rotation_period: StdDuration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        TokenSettings {
            issuer: None,
            accepted_services: Vec::new(),
            ttl: StdDuration::from_secs(DEFAULT_TOKEN_TTL.whole_seconds().unsigned_abs()),
            rotation_period: DEFAULT_KEY_ROTATION_PERIOD,
        }
    }
}

/// A signed registry token. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryToken(String);

impl RegistryToken {
    /// The token text, to send to the client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RegistryToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RegistryToken(***)")
    }
}

/// A freshly issued token and its times.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The token.
    pub token: RegistryToken,
    /// When it was issued.
    pub issued_at: OffsetDateTime,
    /// Its lifetime.
    pub expires_in: Duration,
}

impl IssuedToken {
    /// The token endpoint's JSON body.
    pub fn response(&self) -> TokenResponse<'_> {
        TokenResponse {
            token: self.token.expose(),
            access_token: self.token.expose(),
            expires_in: self.expires_in.whole_seconds(),
            issued_at: self.issued_at,
            refresh_token: None,
            scope: None,
        }
    }
}

/// The token endpoint's JSON body (`token` and its OAuth2 alias
/// `access_token`, `expires_in` seconds, `issued_at` RFC 3339; with an
/// OAuth2 grant also `scope`, and `refresh_token` for offline access).
#[derive(Debug, Serialize)]
pub struct TokenResponse<'a> {
    /// The token (Docker clients read this).
    pub token: &'a str,
    /// The same token (OAuth2 clients read this).
    pub access_token: &'a str,
    /// Lifetime in seconds.
    pub expires_in: i64,
    /// Issue time.
    #[serde(with = "time::serde::rfc3339")]
    pub issued_at: OffsetDateTime,
    /// A refresh token (Docker's identity token), when offline access was
    /// asked for and granted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<&'a str>,
    /// The granted scopes, space-separated (OAuth2 grants).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// The primary credential a registry token was obtained with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource {
    /// None: an anonymous token.
    Anonymous,
    /// The subject's password: the token lives while the subject does.
    Password,
    /// An access token, by the hash it is stored under: the token lives
    /// while that access token does (and its owner).
    AccessToken(TokenHash),
    /// A refresh token, by the hash it is stored under: the token lives
    /// while that refresh token does (and its owner).
    RefreshToken(TokenHash),
    /// An identity provider's login: the registry cannot revoke it, so the
    /// token lives until it expires.
    External,
}
