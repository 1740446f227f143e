//! Short-lived registry bearer tokens for the Docker token protocol: issued
//! by the token endpoint for the granted scopes, verified on every request.
//!
//! Format: `base64url(payload) "." base64url(HMAC-SHA256(key, base64url(payload)))`,
//! where the payload is seven lines of text:
//!
//! ```text
//! rrt2
//! <service (audience)>
//! <subject>
//! <issued at, unix seconds>
//! <expires at, unix seconds>
//! <granted scopes, space-separated, Docker syntax>
//! <source: "-" (anonymous), "pw" (password), "ext" (an identity provider) or "at:<hex SHA-256 of the access token>">
//! <provider that vouched for the subject>
//! <the provider's groups of the subject, space-separated>
//! ```
//!
//! The built-in groups follow from the subject (see [`Identity`]), so only
//! a provider's groups are encoded. The source names the primary credential the token was obtained
//! with, so that deleting that credential (or its owner) revokes the token:
//! see [`Authenticator::token_source_is_live`](crate::Authenticator::token_source_is_live).
//! Older versions are refused; they lived five minutes. Clients treat the token as opaque. Every replica that verifies
//! tokens must share the issuer's [`SigningKey`].

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{KeyInit, Mac};
use registry_core::RepositoryName;
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use crate::credentials::{random_bytes, CredentialError, TokenHash};
use crate::identity::Identity;
use crate::names::GroupName;
use crate::scope::{Scope, ScopeAction};
use crate::subject::Subject;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

const VERSION: &str = "rrt3";
/// How far in the future an `issued at` may be (clock skew between replicas).
const LEEWAY: Duration = Duration::seconds(60);
/// Default token lifetime.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::minutes(5);

/// Why a token could not be issued or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not `payload.signature`, bad base64, or a payload that does not parse.
    #[error("malformed registry token")]
    Malformed,
    /// The signature does not match: forged, altered, or another key.
    #[error("registry token signature is invalid")]
    BadSignature,
    /// The payload format version is not one this code reads.
    #[error("unsupported registry token version")]
    UnsupportedVersion,
    /// The token has expired.
    #[error("registry token has expired")]
    Expired,
    /// The token was issued in the future (beyond clock-skew leeway).
    #[error("registry token is not yet valid")]
    NotYetValid,
    /// The token was issued for another service.
    #[error("registry token was issued for another service")]
    WrongAudience,
    /// The service name is empty or contains whitespace.
    #[error("service name must be non-empty and contain no whitespace")]
    InvalidService,
}

/// The 32-byte HMAC key. `Debug` does not show it.
#[derive(Clone)]
pub struct SigningKey([u8; 32]);

impl SigningKey {
    /// 32 fresh random bytes from the CSPRNG (tokens die with the process:
    /// give a fixed key to every replica instead).
    pub fn generate() -> Result<Self, CredentialError> {
        Ok(SigningKey(random_bytes::<32>()?))
    }

    /// A key from configuration.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SigningKey(bytes)
    }

    /// A key for another purpose derived from this one (HMAC of `label`),
    /// so that one configured secret serves several uses without reuse.
    pub(crate) fn derive(&self, label: &str) -> [u8; 32] {
        // HMAC accepts keys of any length: this cannot fail.
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(label.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SigningKey(***)")
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
        }
    }
}

/// The token endpoint's JSON body (`token` and its OAuth2 alias
/// `access_token`, `expires_in` seconds, `issued_at` RFC 3339).
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
    /// An identity provider (LDAP, OIDC, htpasswd) vouched for the subject:
    /// the registry cannot revoke that login, so the token lives until it
    /// expires.
    External,
}

impl TokenSource {
    fn write(&self, out: &mut String) {
        match self {
            TokenSource::Anonymous => out.push('-'),
            TokenSource::Password => out.push_str("pw"),
            TokenSource::External => out.push_str("ext"),
            TokenSource::AccessToken(hash) => {
                out.push_str("at:");
                out.push_str(&hex::encode(hash.as_bytes()));
            }
        }
    }

    fn parse(text: &str) -> Result<Self, TokenError> {
        match text {
            "-" => Ok(TokenSource::Anonymous),
            "pw" => Ok(TokenSource::Password),
            "ext" => Ok(TokenSource::External),
            _ => {
                let hex_hash = text.strip_prefix("at:").ok_or(TokenError::Malformed)?;
                let mut bytes = [0u8; 32];
                hex::decode_to_slice(hex_hash, &mut bytes).map_err(|_| TokenError::Malformed)?;
                Ok(TokenSource::AccessToken(TokenHash::from_bytes(bytes)))
            }
        }
    }
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    /// Who it was issued to.
    pub subject: Subject,
    /// The provider that vouched for the subject.
    pub provider: String,
    /// The provider's groups of the subject.
    pub groups: Vec<GroupName>,
    /// When it was issued.
    pub issued_at: OffsetDateTime,
    /// When it expires.
    pub expires_at: OffsetDateTime,
    /// What it grants.
    pub scopes: Vec<Scope>,
    /// What it was obtained with.
    pub source: TokenSource,
}

impl TokenClaims {
    /// The caller, as an identity.
    pub fn identity(&self) -> Identity {
        // A provider user without a prefix reads back as a local user's
        // subject: the source says who vouched for it.
        let external = match (&self.subject, self.source) {
            (Subject::External(name), _) => Some(name.clone()),
            (Subject::User(name), TokenSource::External) => name.as_str().parse().ok(),
            _ => None,
        };
        match external {
            Some(name) => Identity::external(&self.provider, name, self.groups.iter().cloned()),
            None => {
                Identity::authenticated(self.subject.clone()).unwrap_or_else(Identity::anonymous)
            }
        }
    }

    /// Whether the token grants `action` on `repository`.
    pub fn allows(&self, repository: &RepositoryName, action: ScopeAction) -> bool {
        self.scopes.iter().any(|s| match s {
            Scope::Repository { name, actions } => name == repository && actions.contains(action),
            Scope::Catalog => false,
        })
    }

    /// Whether the token grants `registry:catalog:*`.
    pub fn allows_catalog(&self) -> bool {
        self.scopes.iter().any(|s| matches!(s, Scope::Catalog))
    }
}

/// Issues and verifies registry tokens for one service (the `service`
/// parameter of the `WWW-Authenticate` challenge, used as the audience).
#[derive(Clone)]
pub struct TokenIssuer {
    /// Keyed once; cloned (a memcpy) per use instead of re-keying.
    mac: HmacSha256,
    service: Box<str>,
    ttl: Duration,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("service", &self.service)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TokenIssuer {
    /// An issuer for `service` signing with `key`; tokens live
    /// [`DEFAULT_TOKEN_TTL`].
    pub fn new(key: &SigningKey, service: &str) -> Result<Self, TokenError> {
        if service.is_empty() || service.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(TokenError::InvalidService);
        }
        let mac = HmacSha256::new_from_slice(&key.0).map_err(|_| TokenError::Malformed)?;
        Ok(TokenIssuer {
            mac,
            service: service.into(),
            ttl: DEFAULT_TOKEN_TTL,
        })
    }

    /// The same issuer with another token lifetime.
    #[must_use]
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The service (audience) name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The token lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Issues a token for `identity` granting `scopes` (already intersected
    /// with the authorizer: see [`grant_scopes`](crate::grant_scopes)),
    /// obtained with the subject's password (or anonymously).
    pub fn issue(&self, identity: &Identity, scopes: &[Scope]) -> IssuedToken {
        let source = if identity.is_anonymous() {
            TokenSource::Anonymous
        } else if identity.provider() != crate::identity::LOCAL_PROVIDER {
            TokenSource::External
        } else {
            TokenSource::Password
        };
        self.issue_at(identity, scopes, source, OffsetDateTime::now_utc())
    }

    /// [`issue`](Self::issue) recording the credential it was obtained with.
    pub fn issue_from(
        &self,
        identity: &Identity,
        scopes: &[Scope],
        source: TokenSource,
    ) -> IssuedToken {
        self.issue_at(identity, scopes, source, OffsetDateTime::now_utc())
    }

    /// [`issue_from`](Self::issue_from) with an explicit clock.
    pub fn issue_at(
        &self,
        identity: &Identity,
        scopes: &[Scope],
        source: TokenSource,
        now: OffsetDateTime,
    ) -> IssuedToken {
        use std::fmt::Write as _;
        let iat = now.unix_timestamp();
        // Saturates: a huge configured lifetime must not panic the issuer.
        let exp = now
            .checked_add(self.ttl)
            .unwrap_or(time::PrimitiveDateTime::MAX.assume_utc())
            .unix_timestamp();
        let mut payload = String::with_capacity(96 + scopes.len() * 48);
        // Writing to a String cannot fail.
        let _ = write!(
            payload,
            "{VERSION}\n{}\n{}\n{iat}\n{exp}\n",
            self.service,
            identity.subject()
        );
        for (i, s) in scopes.iter().enumerate() {
            if i > 0 {
                payload.push(' ');
            }
            let _ = write!(payload, "{s}");
        }
        payload.push('\n');
        source.write(&mut payload);
        payload.push('\n');
        payload.push_str(identity.provider());
        payload.push('\n');
        for (i, g) in identity.provider_groups().iter().enumerate() {
            if i > 0 {
                payload.push(' ');
            }
            payload.push_str(g.as_str());
        }
        let mut token = URL_SAFE_NO_PAD.encode(payload.as_bytes());
        let mut mac = self.mac.clone();
        mac.update(token.as_bytes());
        let tag = mac.finalize().into_bytes();
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut token);
        IssuedToken {
            token: RegistryToken(token),
            issued_at: OffsetDateTime::from_unix_timestamp(iat).unwrap_or(now),
            expires_in: self.ttl,
        }
    }

    /// Verifies a token: signature (constant-time), version, audience and
    /// expiry.
    pub fn verify(&self, token: &str) -> Result<TokenClaims, TokenError> {
        self.verify_at(token, OffsetDateTime::now_utc())
    }

    /// [`verify`](Self::verify) with an explicit clock.
    pub fn verify_at(&self, token: &str, now: OffsetDateTime) -> Result<TokenClaims, TokenError> {
        let (payload_b64, tag_b64) = token.split_once('.').ok_or(TokenError::Malformed)?;
        if tag_b64.len() != 43 {
            return Err(TokenError::Malformed);
        }
        let mut tag = [0u8; 33];
        let n = URL_SAFE_NO_PAD
            .decode_slice(tag_b64, &mut tag)
            .map_err(|_| TokenError::Malformed)?;
        let mut mac = self.mac.clone();
        mac.update(payload_b64.as_bytes());
        mac.verify_slice(&tag[..n])
            .map_err(|_| TokenError::BadSignature)?;

        let payload = URL_SAFE_NO_PAD
            .decode(payload_b64)
            .map_err(|_| TokenError::Malformed)?;
        let payload = std::str::from_utf8(&payload).map_err(|_| TokenError::Malformed)?;
        let mut lines = payload.split('\n');
        let mut next = || lines.next().ok_or(TokenError::Malformed);
        if next()? != VERSION {
            return Err(TokenError::UnsupportedVersion);
        }
        if next()? != &*self.service {
            return Err(TokenError::WrongAudience);
        }
        let subject = next()?;
        let time = |s: &str| {
            s.parse::<i64>()
                .ok()
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
                .ok_or(TokenError::Malformed)
        };
        let issued_at = time(next()?)?;
        let expires_at = time(next()?)?;
        let scopes = next()?;
        let source = TokenSource::parse(next()?)?;
        let provider = next()?.to_owned();
        let groups = next()?
            .split(' ')
            .filter(|g| !g.is_empty())
            .map(|g| g.parse().map_err(|_| TokenError::Malformed))
            .collect::<Result<_, _>>()?;
        if expires_at <= now {
            return Err(TokenError::Expired);
        }
        if now
            .checked_add(LEEWAY)
            .is_some_and(|limit| issued_at > limit)
        {
            return Err(TokenError::NotYetValid);
        }
        Ok(TokenClaims {
            subject: subject.parse().map_err(|_| TokenError::Malformed)?,
            issued_at,
            expires_at,
            scopes: Scope::parse_all([scopes]).map_err(|_| TokenError::Malformed)?,
            source,
            provider,
            groups,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(&SigningKey::from_bytes([7; 32]), "registry.test").unwrap()
    }

    fn scopes() -> Vec<Scope> {
        Scope::parse_all(["repository:team/app:pull,push registry:catalog:*"]).unwrap()
    }

    #[test]
    fn round_trip() {
        let issuer = issuer();
        let alice = Identity::user("alice".parse().unwrap());
        let issued = issuer.issue(&alice, &scopes());
        let claims = issuer.verify(issued.token.expose()).unwrap();
        assert_eq!(claims.identity(), alice);
        assert_eq!(claims.scopes, scopes());
        let app: RepositoryName = "team/app".parse().unwrap();
        assert!(claims.allows(&app, ScopeAction::Pull));
        assert!(claims.allows(&app, ScopeAction::Push));
        assert!(!claims.allows(&app, ScopeAction::Delete));
        assert!(!claims.allows(&"team/other".parse().unwrap(), ScopeAction::Pull));
        assert!(claims.allows_catalog());
        assert_eq!(claims.expires_at - claims.issued_at, DEFAULT_TOKEN_TTL);
        let json = serde_json::to_value(issued.response()).unwrap();
        assert_eq!(json["token"], json["access_token"]);
        assert_eq!(json["expires_in"], 300);
        assert!(!format!("{issued:?}").contains(issued.token.expose()));
    }

    #[test]
    fn anonymous_and_service_account_tokens() {
        let issuer = issuer();
        let claims = issuer
            .verify(issuer.issue(&Identity::anonymous(), &[]).token.expose())
            .unwrap();
        assert!(claims.identity().is_anonymous());
        assert!(claims.scopes.is_empty());
        let sa: Subject = "system:serviceaccount:team:builder".parse().unwrap();
        let id = Identity::authenticated(sa.clone()).unwrap();
        let claims = issuer
            .verify(issuer.issue(&id, &scopes()).token.expose())
            .unwrap();
        assert_eq!(claims.subject, sa);
    }

    #[test]
    fn provider_identities_keep_their_provider_and_groups() {
        let issuer = issuer();
        let bob = Identity::external(
            "ldap",
            "ldap:bob".parse().unwrap(),
            ["ldap:ops".parse().unwrap(), "ldap:dev".parse().unwrap()],
        );
        let claims = issuer
            .verify(issuer.issue(&bob, &scopes()).token.expose())
            .unwrap();
        assert_eq!(claims.source, TokenSource::External);
        assert_eq!(claims.identity(), bob);
    }

    #[test]
    fn rejections() {
        let issuer = issuer();
        let alice = Identity::user("alice".parse().unwrap());
        let now = OffsetDateTime::now_utc();
        let token = issuer
            .issue_at(&alice, &scopes(), TokenSource::Password, now)
            .token;
        let t = token.expose();

        assert_eq!(
            issuer.verify_at(t, now + Duration::minutes(6)),
            Err(TokenError::Expired)
        );
        assert_eq!(
            issuer.verify_at(t, now - Duration::minutes(2)),
            Err(TokenError::NotYetValid)
        );
        let other_key =
            TokenIssuer::new(&SigningKey::from_bytes([8; 32]), "registry.test").unwrap();
        assert_eq!(other_key.verify(t), Err(TokenError::BadSignature));
        let other_service =
            TokenIssuer::new(&SigningKey::from_bytes([7; 32]), "elsewhere").unwrap();
        assert_eq!(other_service.verify(t), Err(TokenError::WrongAudience));

        // Altering the payload (here: granting delete) breaks the signature.
        let (payload, tag) = t.split_once('.').unwrap();
        let decoded = String::from_utf8(URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        let forged = URL_SAFE_NO_PAD.encode(decoded.replace("pull,push", "pull,push,delete"));
        assert_eq!(
            issuer.verify(&format!("{forged}.{tag}")),
            Err(TokenError::BadSignature)
        );
        for bad in ["", "abc", "a.b", &format!("{payload}.{}", "!".repeat(43))] {
            assert_eq!(issuer.verify(bad), Err(TokenError::Malformed), "{bad}");
        }
        assert_eq!(
            TokenIssuer::new(&SigningKey::from_bytes([0; 32]), "a b").unwrap_err(),
            TokenError::InvalidService
        );
        assert!(!format!("{:?}", SigningKey::from_bytes([7; 32])).contains('7'));
    }

    #[test]
    fn source_round_trips_and_huge_ttl_saturates() {
        let issuer = issuer();
        let alice = Identity::user("alice".parse().unwrap());
        let hash = TokenHash::of("rgt_example");
        for source in [TokenSource::AccessToken(hash), TokenSource::Password] {
            let token = issuer.issue_from(&alice, &scopes(), source).token;
            assert_eq!(issuer.verify(token.expose()).unwrap().source, source);
        }
        let anonymous = issuer.issue(&Identity::anonymous(), &[]).token;
        assert_eq!(
            issuer.verify(anonymous.expose()).unwrap().source,
            TokenSource::Anonymous
        );
        // Used to panic adding the lifetime to the clock.
        let forever = issuer.with_ttl(Duration::MAX);
        let token = forever.issue(&alice, &[]).token;
        assert!(forever.verify(token.expose()).is_ok());
    }

    #[test]
    fn many_verifications_are_cheap() {
        // A smoke check of the hot path, not a benchmark: 10k verifications
        // of a token with a few scopes run well under a second in debug.
        let issuer = issuer();
        let alice = Identity::user("alice".parse().unwrap());
        let token = issuer.issue(&alice, &scopes()).token;
        for _ in 0..10_000 {
            assert!(issuer.verify(token.expose()).is_ok());
        }
    }
}
