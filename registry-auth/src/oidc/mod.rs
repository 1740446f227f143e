//! OpenID Connect identity provider (feature `oidc`), with kube-apiserver's
//! `--oidc-*` semantics.
//!
//! [`OidcProvider`] accepts an ID token from the configured issuer as the
//! password of HTTP Basic auth (any user name) or as a Bearer token, and
//! answers with an [`Identity::external`] of provider `oidc`: the user
//! named by the username claim and the groups of the groups claim, each
//! with its prefix (`oidc:alice`, `oidc:devs`).
//!
//! - **Recognition is cheap and local**: a credential is this provider's
//!   only if it is shaped like a JWT and its (unverified) `iss` is exactly
//!   the configured issuer. Anything else is "not mine", so a local
//!   password is never sent anywhere.
//! - **Verification** (RFC 7519, OpenID Connect Core 3.1.3.7): an
//!   asymmetric signature (RS*, PS*, ES256, ES384, EdDSA; never `none` or
//!   HMAC) by a key of the issuer's JWKS whose type and `alg` fit the
//!   header; `iss` equal to the issuer; `aud` naming the client id; `exp`
//!   in the future and `nbf` in the past (with a small leeway).
//! - **Keys** come from discovery (`/.well-known/openid-configuration`,
//!   whose `issuer` must match) and its `jwks_uri`, over HTTPS with a
//!   timeout. They are cached, fetched again when a token names an unknown
//!   `kid` or they grow old, at most once per
//!   [`OidcLimits::min_refresh_interval`]. If the issuer is unreachable,
//!   its tokens are refused (and the reason logged); other providers and
//!   local users are unaffected.
//! - **Verified tokens are remembered** by their SHA-256 until they expire
//!   (at most [`OidcLimits::verified_capacity`] of them), so a pull burst
//!   costs one signature check.
//!
//! ```no_run
//! use std::sync::Arc;
//! use registry_auth::oidc::{OidcConfig, OidcProvider};
//!
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! let config = OidcConfig::new("https://idp.example".parse()?, "registry")?
//!     .with_ca_pem(std::fs::read("idp-ca.pem")?);
//! let provider = Arc::new(OidcProvider::new(config)?);
//! provider.load_keys().await?; // optional: fail early on a misconfigured issuer
//! // AuthConfig::providers.push(provider) in registry-api.
//! # Ok(()) }
//! ```

mod claims;
mod config;
mod http;
mod keys;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use sha2::{Digest as _, Sha256};

use crate::authenticate::{Authenticate, AuthenticationError, Credentials};
use crate::token::TokenSource;
use crate::Identity;

pub use config::{
    parse_prefix, IssuerUrl, OidcConfig, OidcConfigError, OidcLimits, DEFAULT_PREFIX,
};
pub use http::{discover, https_client, HttpKeySource, ProviderMetadata, MAX_DOCUMENT_BYTES};
pub use keys::{KeySource, MAX_KEYS};

use claims::{name_user, unverified_issuer, UnverifiedHeader, VerifiedClaims};
use keys::{KeyCache, KeyLookup};

/// The provider name of OIDC identities.
pub const PROVIDER: &str = "oidc";

/// Why the issuer (or its keys) could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OidcError {
    /// A setting is unusable.
    #[error(transparent)]
    Config(#[from] OidcConfigError),
    /// The HTTPS client could not be set up (a bad CA bundle, say).
    #[error("cannot set up the HTTPS client for the OIDC issuer: {0}")]
    Client(#[source] reqwest::Error),
    /// A request to the issuer failed (connection, TLS, timeout).
    #[error("cannot fetch {url}: {source}")]
    Fetch {
        /// What was fetched.
        url: String,
        /// Why it failed.
        #[source]
        source: reqwest::Error,
    },
    /// The issuer answered with an error status.
    #[error("{url} answered HTTP {status}")]
    Status {
        /// What was fetched.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The answer was larger than [`MAX_DOCUMENT_BYTES`].
    #[error("{url} sent more than {limit} bytes")]
    TooLarge {
        /// What was fetched.
        url: String,
        /// The limit.
        limit: usize,
    },
    /// The answer is not the JSON document expected.
    #[error("{url} is not a valid document: {source}")]
    InvalidDocument {
        /// What was fetched.
        url: String,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
    /// The discovery document names another issuer.
    #[error("the discovery document is for issuer {found:?}, not {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The document's `issuer`.
        found: String,
    },
    /// An endpoint the issuer named is not `https://`.
    #[error("OIDC endpoint {0:?} is not https")]
    NotHttps(String),
    /// The JWKS document holds no key this registry can verify with.
    #[error("the issuer's JWKS holds no usable signing key")]
    NoUsableKeys,
    /// The issuer did not answer in time.
    #[error("the OIDC issuer did not answer within {0:?}")]
    Timeout(std::time::Duration),
    /// Keys were fetched (or tried) too recently to try again.
    #[error("OIDC keys were fetched less than the minimum refresh interval ago")]
    RefreshLimited,
}

/// Why a token that claims to come from the configured issuer was refused
/// (for the log; the caller only ever sees "invalid credentials").
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OidcRefusal {
    /// Not a well-formed JWS/JWT.
    #[error("malformed token")]
    Malformed,
    /// `alg` is `none`, HMAC, unknown, or not one the key may verify.
    #[error("algorithm {0:?} is not accepted")]
    Algorithm(String),
    /// No key of the issuer has the token's `kid` (after a refresh).
    #[error("no issuer key with kid {0:?}")]
    UnknownKey(Option<String>),
    /// The issuer's keys could not be fetched.
    #[error("issuer keys unavailable: {0}")]
    KeysUnavailable(#[source] OidcError),
    /// The signature does not verify.
    #[error("bad signature")]
    Signature,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` is still ahead.
    #[error("token not valid yet")]
    NotYetValid,
    /// `aud` does not name the client id.
    #[error("wrong audience")]
    Audience,
    /// `iss` is not the issuer.
    #[error("wrong issuer")]
    Issuer,
    /// A required claim is missing.
    #[error("claim {0:?} missing")]
    MissingClaim(String),
    /// A claim has the wrong type (the username claim must be a string,
    /// the groups claim a string or a list of strings).
    #[error("claim {0:?} has the wrong type")]
    ClaimType(String),
    /// The username claim is `email` and `email_verified` is not true.
    #[error("email not verified")]
    EmailNotVerified,
    /// The prefixed user name is not a valid external user name.
    #[error("invalid user name: {0}")]
    UserName(String),
    /// More groups than [`OidcLimits::max_groups`].
    #[error("{0} groups, more than allowed")]
    TooManyGroups(usize),
}

/// Algorithms an ID token may be signed with.
const ACCEPTED: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// A verified token, remembered until it expires.
#[derive(Debug)]
struct Verified {
    identity: Identity,
    /// `exp`, in seconds since the epoch.
    expires: u64,
}

/// The OpenID Connect identity provider: see the [module docs](self).
pub struct OidcProvider {
    config: OidcConfig,
    keys: KeyCache,
    verified: Mutex<HashMap<[u8; 32], Verified>>,
}

impl fmt::Debug for OidcProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcProvider")
            .field("issuer", &self.config.issuer)
            .field("client_id", &self.config.client_id)
            .finish_non_exhaustive()
    }
}

impl OidcProvider {
    /// A provider fetching keys from `config`'s issuer over HTTPS. Nothing
    /// is fetched yet: see [`OidcProvider::load_keys`].
    pub fn new(config: OidcConfig) -> Result<Self, OidcError> {
        let source = Arc::new(HttpKeySource::new(&config)?);
        Self::with_key_source(config, source)
    }

    /// A provider taking keys from `source` (tests, or keys obtained some
    /// other way).
    pub fn with_key_source(
        config: OidcConfig,
        source: Arc<dyn KeySource>,
    ) -> Result<Self, OidcError> {
        config.validate()?;
        let limits = &config.limits;
        let keys = KeyCache::new(
            source,
            limits.min_refresh_interval,
            limits.keys_max_age,
            limits.request_timeout,
        );
        Ok(OidcProvider {
            keys,
            verified: Mutex::new(HashMap::new()),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    /// Fetches the issuer's keys now; how many are usable. A server calls
    /// this at start-up to report a misconfigured or unreachable issuer
    /// early (tokens are refused until keys arrive, fetched again on use).
    pub async fn load_keys(&self) -> Result<usize, OidcError> {
        self.keys.load().await
    }

    /// Whether `token` claims to come from the configured issuer (a
    /// JWT-shaped string whose unverified `iss` is the issuer). Nothing is
    /// verified: only such tokens are this provider's to verify or refuse.
    pub fn recognises(&self, token: &str) -> bool {
        unverified_issuer(token, self.config.limits.max_token_bytes)
            .is_some_and(|iss| iss == self.config.issuer.as_str())
    }

    /// Verifies an ID token and names its user (see the module docs).
    pub async fn verify(&self, token: &str) -> Result<Identity, OidcRefusal> {
        if token.len() > self.config.limits.max_token_bytes {
            return Err(OidcRefusal::Malformed);
        }
        let fingerprint: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(identity) = self.remembered(&fingerprint, now) {
            return Ok(identity);
        }
        let header = UnverifiedHeader::parse(token).ok_or(OidcRefusal::Malformed)?;
        let alg = header
            .alg
            .parse::<Algorithm>()
            .ok()
            .filter(|a| ACCEPTED.contains(a))
            .ok_or_else(|| OidcRefusal::Algorithm(header.alg.clone()))?;
        let kid = header.kid.as_deref();
        let candidates = match self.keys.candidates(kid, alg).await {
            Ok(keys) => keys,
            Err(KeyLookup::NoSuchKey) => return Err(OidcRefusal::UnknownKey(header.kid)),
            Err(KeyLookup::WrongAlgorithm) => return Err(OidcRefusal::Algorithm(header.alg)),
            Err(KeyLookup::Unavailable(e)) => return Err(OidcRefusal::KeysUnavailable(e)),
        };
        let validation = self.validation(alg);
        let mut refusal = OidcRefusal::Signature;
        for key in candidates {
            match jsonwebtoken::decode::<VerifiedClaims>(token, &key.key, &validation) {
                Ok(data) => {
                    let named = name_user(&self.config, &data.claims)?;
                    let identity = Identity::external(PROVIDER, named.name, named.groups);
                    let expires = data.claims.exp.unwrap_or(0.0).max(0.0) as u64;
                    self.remember(fingerprint, &identity, expires, now);
                    return Ok(identity);
                }
                Err(e) => {
                    refusal = refusal_of(e.kind());
                    if !matches!(refusal, OidcRefusal::Signature) {
                        break;
                    }
                }
            }
        }
        Err(refusal)
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg);
        v.set_issuer(&[self.config.issuer.as_str()]);
        v.set_audience(&[self.config.client_id.as_str()]);
        v.set_required_spec_claims(&["exp", "iss", "aud"]);
        v.validate_nbf = true;
        v.leeway = self.config.limits.leeway.as_secs();
        v
    }

    fn remembered(&self, fingerprint: &[u8; 32], now: u64) -> Option<Identity> {
        let cache = self.verified.lock().ok()?;
        cache
            .get(fingerprint)
            .filter(|v| v.expires > now)
            .map(|v| v.identity.clone())
    }

    fn remember(&self, fingerprint: [u8; 32], identity: &Identity, expires: u64, now: u64) {
        let capacity = self.config.limits.verified_capacity;
        if capacity == 0 || expires <= now {
            return;
        }
        let Ok(mut cache) = self.verified.lock() else {
            return;
        };
        if cache.len() >= capacity {
            cache.retain(|_, v| v.expires > now);
            if cache.len() >= capacity {
                cache.clear();
            }
        }
        cache.insert(
            fingerprint,
            Verified {
                identity: identity.clone(),
                expires,
            },
        );
    }

    /// How many verified tokens are remembered (for tests and metrics).
    pub fn remembered_tokens(&self) -> usize {
        self.verified.lock().map(|c| c.len()).unwrap_or(0)
    }
}

fn refusal_of(kind: &ErrorKind) -> OidcRefusal {
    match kind {
        ErrorKind::InvalidSignature => OidcRefusal::Signature,
        ErrorKind::ExpiredSignature => OidcRefusal::Expired,
        ErrorKind::ImmatureSignature => OidcRefusal::NotYetValid,
        ErrorKind::InvalidAudience => OidcRefusal::Audience,
        ErrorKind::InvalidIssuer => OidcRefusal::Issuer,
        ErrorKind::InvalidAlgorithm => OidcRefusal::Algorithm("mismatch".to_owned()),
        ErrorKind::MissingRequiredClaim(c) => OidcRefusal::MissingClaim(c.clone()),
        _ => OidcRefusal::Malformed,
    }
}

#[async_trait::async_trait]
impl Authenticate for OidcProvider {
    async fn authenticate(
        &self,
        credentials: &Credentials,
        peer: Option<IpAddr>,
    ) -> Result<Option<(Identity, TokenSource)>, AuthenticationError> {
        let token = match credentials {
            Credentials::Basic { password, .. } => password,
            Credentials::Bearer(token) => token,
        };
        if !self.recognises(token) {
            return Ok(None);
        }
        match self.verify(token).await {
            Ok(identity) => Ok(Some((identity, TokenSource::External))),
            Err(refusal) => {
                let peer = peer.map(|p| p.to_string());
                let peer = peer.as_deref().unwrap_or("unknown");
                match &refusal {
                    OidcRefusal::KeysUnavailable(_) => {
                        tracing::error!(target: "auth", issuer = %self.config.issuer, peer, reason = %refusal, "OIDC login refused: the issuer's keys are unavailable")
                    }
                    _ => {
                        tracing::warn!(target: "auth", issuer = %self.config.issuer, peer, reason = %refusal, "OIDC token refused")
                    }
                }
                Err(AuthenticationError::InvalidCredentials)
            }
        }
    }
}
