//! [`TokenIssuer`]: signs registry tokens with the current key of the
//! store's key ring and verifies them with any key still in it, keeping
//! the ring in step with the store (rotation) and remembering verified
//! tokens.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration as StdDuration, Instant};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use time::{Duration, OffsetDateTime};

use super::cache::VerifiedTokens;
use super::claims::{source_text, Access, TokenClaims, Wire};
use super::jwks::{x5c, Jwk, Jwks};
use super::keys::{KeyId, TokenCa, TokenSigningKey};
use super::rotation::{plan, Rotation};
use super::{IssuedToken, RegistryToken, TokenError, TokenSettings, TokenSource};
use crate::identity::Identity;
use crate::scope::Scope;
use crate::store::{AuthStore, AuthStoreError};

/// The longest token accepted for verification, in bytes: far above what
/// the token endpoint issues (bounded scopes), far below what would make
/// decoding costly.
pub const MAX_TOKEN_LEN: usize = 32 * 1024;
/// How far in the future a `nbf` may be (clock skew between replicas).
const LEEWAY: i64 = 60;
/// Issuing reloads the key ring from the store when it is older than this:
/// how soon a replica signs with a key another one rotated in.
const RELOAD_INTERVAL: StdDuration = StdDuration::from_secs(60);
/// A token signed by a key this replica does not know yet reloads the ring
/// at most this often.
const UNKNOWN_KEY_RELOAD_INTERVAL: StdDuration = StdDuration::from_secs(1);

/// The key that signs, ready to use.
struct Signer {
    kid: KeyId,
    key: EncodingKey,
    x5c: Vec<String>,
}

/// A key that verifies, ready to use.
struct Verifier {
    key: DecodingKey,
    expires: OffsetDateTime,
}

/// The keys as last loaded from the store.
struct KeyRing {
    loaded: Instant,
    signer: Option<Signer>,
    verifiers: HashMap<String, Verifier>,
    jwks: Jwks,
    ca_pem: String,
}

impl KeyRing {
    fn empty() -> Self {
        KeyRing {
            loaded: Instant::now(),
            signer: None,
            verifiers: HashMap::new(),
            jwks: Jwks { keys: Vec::new() },
            ca_pem: String::new(),
        }
    }

    fn build(
        ca: &TokenCa,
        keys: &[TokenSigningKey],
        signer: Option<&KeyId>,
    ) -> Result<Self, TokenError> {
        let mut ring = KeyRing {
            ca_pem: ca.pem(),
            ..KeyRing::empty()
        };
        for key in keys {
            let point = key.public_point()?;
            ring.verifiers.insert(
                key.kid.to_string(),
                Verifier {
                    key: DecodingKey::from_ec_der(&point),
                    expires: key.expires,
                },
            );
            ring.jwks.keys.push(Jwk::of(key, ca)?);
            if Some(&key.kid) == signer {
                ring.signer = Some(Signer {
                    kid: key.kid.clone(),
                    key: EncodingKey::from_ec_der(key.private_key.as_bytes()),
                    x5c: x5c(key, ca),
                });
            }
        }
        Ok(ring)
    }
}

/// Issues and verifies registry tokens: ES256 JWTs in the Docker
/// token-auth format, signed with the keys of an [`AuthStore`].
///
/// The service it is built for (the `service` of the registry's Bearer
/// challenge) is the audience of the tokens it verifies; it also issues
/// tokens for the [accepted services](TokenSettings::accepted_services) of
/// registries that trust it as their token server, which it never accepts
/// itself.
///
/// Keys come from the store and rotate there ([`rotation`](super::rotation)):
/// the ring is reloaded when issuing finds it older than a minute, and
/// when a token names a key it does not know (at most once a second).
/// Verified tokens are remembered until they expire (a bounded cache), so
/// verifying a token again costs a lookup.
pub struct TokenIssuer {
    store: Arc<dyn AuthStore>,
    service: Box<str>,
    issuer: Box<str>,
    accepted: Vec<Box<str>>,
    rotation: Rotation,
    ttl: Duration,
    validation: Validation,
    ring: RwLock<Arc<KeyRing>>,
    reloading: tokio::sync::Mutex<()>,
    last_unknown_key_reload: Mutex<Option<Instant>>,
    verified: VerifiedTokens,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("service", &self.service)
            .field("issuer", &self.issuer)
            .field("accepted", &self.accepted)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"')
}

impl TokenIssuer {
    /// An issuer for `service` with the keys of `store`: makes the token CA
    /// and a first signing key when the store has none, rotates what is due.
    pub async fn load(
        store: Arc<dyn AuthStore>,
        service: &str,
        settings: &TokenSettings,
    ) -> Result<Self, TokenError> {
        let issuer = Self::new(store, service, settings)?;
        issuer.refresh().await?;
        Ok(issuer)
    }

    /// The issuer without loading keys (it signs nothing until
    /// [`refresh`](Self::refresh)).
    fn new(
        store: Arc<dyn AuthStore>,
        service: &str,
        settings: &TokenSettings,
    ) -> Result<Self, TokenError> {
        let issuer = settings.issuer.as_deref().unwrap_or(service);
        for name in [service, issuer]
            .into_iter()
            .chain(settings.accepted_services.iter().map(String::as_str))
        {
            if !valid_name(name) {
                return Err(TokenError::InvalidService(name.to_owned()));
            }
        }
        let ttl = Duration::try_from(settings.ttl)
            .ok()
            .filter(|t| (Duration::SECOND..=Duration::DAY).contains(t))
            .ok_or_else(|| TokenError::InvalidSettings("token lifetime must be 1 s to 1 day"))?;
        let period = Duration::try_from(settings.rotation_period)
            .ok()
            .filter(|p| *p >= Duration::HOUR && *p >= ttl * 4 && *p <= Duration::days(3650))
            .ok_or_else(|| {
                TokenError::InvalidSettings(
                    "key rotation period must be at least an hour and four token lifetimes, at most 10 years",
                )
            })?;
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        validation.set_audience(&[service]);
        validation.set_issuer(&[issuer]);
        // Times are checked against the caller's clock (`verify_at`).
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        Ok(TokenIssuer {
            store,
            service: service.into(),
            issuer: issuer.into(),
            accepted: settings
                .accepted_services
                .iter()
                .map(|s| s.as_str().into())
                .collect(),
            rotation: Rotation {
                period,
                token_ttl: ttl,
            },
            ttl,
            validation,
            ring: RwLock::new(Arc::new(KeyRing::empty())),
            reloading: tokio::sync::Mutex::new(()),
            last_unknown_key_reload: Mutex::new(None),
            verified: VerifiedTokens::default(),
        })
    }

    /// The service (audience) of the tokens this registry accepts.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The `iss` of the tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The token lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The services tokens are issued for: this registry's, then the
    /// accepted ones.
    pub fn services(&self) -> impl Iterator<Item = &str> {
        std::iter::once(&*self.service).chain(self.accepted.iter().map(|s| &**s))
    }

    /// The audience of a token asked for `service` (the token endpoint's
    /// `service` parameter): this registry's own when `None`;
    /// [`TokenError::UnknownService`] for a service it does not serve.
    pub fn audience<'a>(&'a self, service: Option<&str>) -> Result<&'a str, TokenError> {
        match service {
            None => Ok(&self.service),
            Some(s) => self
                .services()
                .find(|known| *known == s)
                .ok_or_else(|| TokenError::UnknownService(truncate(s))),
        }
    }

    fn ring(&self) -> Arc<KeyRing> {
        // The ring is replaced whole: a poisoned lock still holds a valid one.
        self.ring.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The public keys (what `/.well-known/jwks.json` serves).
    pub fn jwks(&self) -> Jwks {
        self.ring().jwks.clone()
    }

    /// The token CA's certificate (PEM): the `rootcertbundle` of a
    /// registry that trusts this one's tokens.
    pub fn ca_pem(&self) -> String {
        self.ring().ca_pem.clone()
    }

    /// Reloads the keys from the store, making the CA and signing keys
    /// that are missing or due and deleting retired ones.
    pub async fn refresh(&self) -> Result<(), TokenError> {
        self.refresh_at(OffsetDateTime::now_utc()).await
    }

    /// [`refresh`](Self::refresh) as if it were `now`.
    pub async fn refresh_at(&self, now: OffsetDateTime) -> Result<(), TokenError> {
        let _one_at_a_time = self.reloading.lock().await;
        let ca = self.ca(now).await?;
        let mut keys = self.store.list_token_signing_keys().await?;
        if let Some(signs_from) = plan(&keys, self.rotation, now).create {
            let key =
                TokenSigningKey::generate(&ca, now, signs_from, self.rotation.expiry(signs_from))?;
            match self.store.add_token_signing_key(key).await {
                Ok(()) | Err(AuthStoreError::AlreadyExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
            keys = self.store.list_token_signing_keys().await?;
        }
        let plan = plan(&keys, self.rotation, now);
        for kid in &plan.retire {
            match self.store.delete_token_signing_key(kid).await {
                // Another replica retired it first.
                Ok(()) | Err(AuthStoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        keys.retain(|k| !plan.retire.contains(&k.kid));
        let ring = KeyRing::build(&ca, &keys, plan.signer.as_ref())?;
        *self.ring.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(ring);
        Ok(())
    }

    /// Reloads the ring when it is older than a minute.
    pub async fn refresh_if_stale(&self) -> Result<(), TokenError> {
        if self.ring().loaded.elapsed() >= RELOAD_INTERVAL {
            self.refresh().await?;
        }
        Ok(())
    }

    /// The store's CA, made on first use (a replica that loses the race
    /// takes the winner's).
    async fn ca(&self, now: OffsetDateTime) -> Result<TokenCa, TokenError> {
        if let Some(ca) = self.store.token_ca().await? {
            return Ok(ca);
        }
        match self.store.create_token_ca(TokenCa::generate(now)?).await {
            Ok(()) | Err(AuthStoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.store.token_ca().await?.ok_or_else(|| {
            AuthStoreError::backend("the token CA vanished after it was stored").into()
        })
    }

    /// Issues a token for `identity` granting `scopes` (already intersected
    /// with the authorizer: see [`grant_scopes`](crate::grant_scopes)) to
    /// the `audience` (one of [`services`](Self::services)), recording the
    /// credential it was obtained with. Reloads the keys first when due.
    pub async fn issue(
        &self,
        identity: &Identity,
        scopes: &[Scope],
        source: TokenSource,
        audience: &str,
    ) -> Result<IssuedToken, TokenError> {
        self.refresh_if_stale().await?;
        self.issue_at(
            identity,
            scopes,
            source,
            audience,
            OffsetDateTime::now_utc(),
        )
    }

    /// [`issue`](Self::issue) with the keys as loaded, as if it were `now`.
    pub fn issue_at(
        &self,
        identity: &Identity,
        scopes: &[Scope],
        source: TokenSource,
        audience: &str,
        now: OffsetDateTime,
    ) -> Result<IssuedToken, TokenError> {
        let audience = self.audience(Some(audience))?;
        let ring = self.ring();
        let signer = ring.signer.as_ref().ok_or(TokenError::NoSigningKey)?;
        let iat = now.unix_timestamp();
        let (provider, groups) = provider_of(identity);
        let wire = Wire {
            iss: self.issuer.to_string(),
            sub: identity.subject().to_string(),
            aud: audience.to_owned(),
            exp: iat + self.ttl.whole_seconds(),
            nbf: iat,
            iat,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            access: scopes.iter().map(Access::of).collect(),
            provider,
            groups,
            source: source_text(&source),
        };
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(signer.kid.to_string());
        header.x5c = Some(signer.x5c.clone());
        let token = jsonwebtoken::encode(&header, &wire, &signer.key)
            .map_err(|e| TokenError::Signing(e.to_string()))?;
        Ok(IssuedToken {
            token: RegistryToken(token),
            issued_at: OffsetDateTime::from_unix_timestamp(iat).unwrap_or(now),
            expires_in: self.ttl,
        })
    }

    /// Verifies a token this registry issued for its own service:
    /// signature (ES256, a key of the ring), issuer, audience and times.
    /// A token signed by a key not yet loaded reloads the ring (at most
    /// once a second).
    pub async fn verify(&self, token: &str) -> Result<Arc<TokenClaims>, TokenError> {
        let now = OffsetDateTime::now_utc();
        match self.verify_at(token, now) {
            Err(TokenError::UnknownKey) if self.may_reload_for_unknown_key() => {
                self.refresh().await?;
                self.verify_at(token, now)
            }
            other => other,
        }
    }

    fn may_reload_for_unknown_key(&self) -> bool {
        let mut last = self
            .last_unknown_key_reload
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let due = last.is_none_or(|t| t.elapsed() >= UNKNOWN_KEY_RELOAD_INTERVAL);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    /// [`verify`](Self::verify) with the keys as loaded, as if it were `now`.
    pub fn verify_at(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Arc<TokenClaims>, TokenError> {
        let now_s = now.unix_timestamp();
        if let Some(claims) = self.verified.get(token, now_s) {
            return Ok(claims);
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::TooLarge);
        }
        let header = jsonwebtoken::decode_header(token).map_err(from_jwt)?;
        if header.alg != Algorithm::ES256 {
            return Err(TokenError::UnsupportedAlgorithm);
        }
        let kid = header.kid.ok_or(TokenError::Malformed)?;
        let ring = self.ring();
        let verifier = ring.verifiers.get(&kid).ok_or(TokenError::UnknownKey)?;
        let data = jsonwebtoken::decode::<Wire>(token, &verifier.key, &self.validation)
            .map_err(from_jwt)?;
        let wire = data.claims;
        if wire.exp <= now_s {
            return Err(TokenError::Expired);
        }
        // Keys sign nothing that outlives them; this holds should one have.
        if verifier.expires <= now {
            return Err(TokenError::UnknownKey);
        }
        let valid_from = wire.nbf.max(wire.iat).saturating_sub(LEEWAY);
        if valid_from > now_s {
            return Err(TokenError::NotYetValid);
        }
        let claims = Arc::new(wire.into_claims()?);
        self.verified
            .insert(token, claims.clone(), valid_from, now_s);
        Ok(claims)
    }

    /// How many verified tokens are remembered (for tests and metrics).
    pub fn remembered_tokens(&self) -> usize {
        self.verified.len()
    }
}

/// The provider and provider groups of an identity, as the token records
/// them.
fn provider_of(identity: &Identity) -> (String, Vec<String>) {
    let groups = identity
        .provider_groups()
        .iter()
        .map(|g| g.as_str().to_owned())
        .collect();
    (identity.provider().to_owned(), groups)
}

/// A client-supplied name in an error message: at most 64 characters.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

fn from_jwt(e: jsonwebtoken::errors::Error) -> TokenError {
    match e.kind() {
        ErrorKind::InvalidSignature | ErrorKind::InvalidEcdsaKey | ErrorKind::InvalidKeyFormat => {
            TokenError::BadSignature
        }
        ErrorKind::InvalidAlgorithm
        | ErrorKind::MissingAlgorithm
        | ErrorKind::InvalidAlgorithmName => TokenError::UnsupportedAlgorithm,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        _ => TokenError::Malformed,
    }
}
