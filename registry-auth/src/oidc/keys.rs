//! The issuer's signing keys: which algorithm each may verify, and a cache
//! refreshed when a token names a `kid` it does not know, at most once per
//! [`OidcLimits::min_refresh_interval`](super::OidcLimits).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::OidcError;

/// Most keys taken from one JWKS document; the rest are ignored.
pub const MAX_KEYS: usize = 64;

/// Where the issuer's keys come from. [`HttpKeySource`](super::HttpKeySource)
/// reads them over HTTPS through discovery; tests and embedders may supply
/// their own.
#[async_trait::async_trait]
pub trait KeySource: Send + Sync + fmt::Debug {
    /// Fetches the issuer's current JWKS document (the `keys` array's
    /// entries, each still to be parsed: an entry of a kind this registry
    /// does not know must not spoil the others).
    async fn fetch(&self) -> Result<Vec<serde_json::Value>, OidcError>;
}

/// One key that verifies signatures, and the algorithms it may verify.
pub(crate) struct VerifyingKey {
    pub(crate) key: DecodingKey,
    algorithms: &'static [Algorithm],
}

impl VerifyingKey {
    /// Whether a token signed with `alg` may be verified with this key:
    /// the JWK's own `alg` if it has one, else what its key type allows.
    /// Never an HMAC algorithm: a public key is not a shared secret.
    pub(crate) fn allows(&self, alg: Algorithm) -> bool {
        self.algorithms.contains(&alg)
    }

    /// The key of a JWK, if it is a public signing key this registry can
    /// use; `None` for symmetric, encryption and unknown keys.
    pub(crate) fn from_jwk(jwk: &Jwk) -> Option<Self> {
        if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
            return None;
        }
        let family: &'static [Algorithm] = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
            AlgorithmParameters::EllipticCurve(p) => match p.curve {
                EllipticCurve::P256 => &[Algorithm::ES256],
                EllipticCurve::P384 => &[Algorithm::ES384],
                _ => return None,
            },
            AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
                &[Algorithm::EdDSA]
            }
            _ => return None,
        };
        let algorithms = match &jwk.common.key_algorithm {
            None => family,
            Some(declared) => {
                let alg = signing_algorithm(*declared)?;
                let i = family.iter().position(|a| *a == alg)?;
                &family[i..=i]
            }
        };
        let key = DecodingKey::from_jwk(jwk).ok()?;
        Some(VerifyingKey { key, algorithms })
    }
}

/// The signature algorithm a JWK's `alg` names (`None` for encryption and
/// HMAC algorithms).
fn signing_algorithm(declared: KeyAlgorithm) -> Option<Algorithm> {
    Some(match declared {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// The usable keys of one JWKS document, by `kid` (keys without one are
/// tried for tokens without one).
#[derive(Default)]
pub(crate) struct KeySet {
    by_kid: HashMap<String, Arc<VerifyingKey>>,
    without_kid: Vec<Arc<VerifyingKey>>,
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeySet")
            .field("kids", &self.by_kid.keys().collect::<Vec<_>>())
            .field("without_kid", &self.without_kid.len())
            .finish()
    }
}

impl KeySet {
    /// Parses the entries of a JWKS `keys` array, skipping what is not a
    /// usable signing key and anything past [`MAX_KEYS`].
    pub(crate) fn parse(entries: Vec<serde_json::Value>) -> Self {
        let mut set = KeySet::default();
        for entry in entries.into_iter().take(MAX_KEYS) {
            let Ok(jwk) = serde_json::from_value::<Jwk>(entry) else {
                continue;
            };
            let Some(key) = VerifyingKey::from_jwk(&jwk) else {
                continue;
            };
            let key = Arc::new(key);
            match jwk.common.key_id {
                Some(kid) => {
                    set.by_kid.insert(kid, key);
                }
                None => set.without_kid.push(key),
            }
        }
        set
    }

    /// How many usable keys there are.
    pub(crate) fn len(&self) -> usize {
        self.by_kid.len() + self.without_kid.len()
    }

    /// The keys that may verify a token with header `kid` and `alg`.
    pub(crate) fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Vec<Arc<VerifyingKey>> {
        let keys: Vec<&Arc<VerifyingKey>> = match kid {
            Some(kid) => self.by_kid.get(kid).into_iter().collect(),
            None => self.without_kid.iter().collect(),
        };
        keys.into_iter()
            .filter(|k| k.allows(alg))
            .cloned()
            .collect()
    }

    /// Whether a key with `kid` is known (whatever its algorithms).
    pub(crate) fn knows(&self, kid: Option<&str>) -> bool {
        match kid {
            Some(kid) => self.by_kid.contains_key(kid),
            None => !self.without_kid.is_empty(),
        }
    }
}

/// The keys in force and when they were fetched.
#[derive(Debug, Default)]
struct Loaded {
    keys: Arc<KeySet>,
    fetched: Option<Instant>,
    /// Bumped on every successful fetch, so a waiter can see that someone
    /// else refreshed while it queued.
    generation: u64,
}

/// The issuer's keys, fetched on first use, again when they grow old, and
/// again (rate-limited) when a token names an unknown `kid`. Fetches are
/// single-flight: concurrent requests wait for the one in progress.
#[derive(Debug)]
pub(crate) struct KeyCache {
    source: Arc<dyn KeySource>,
    loaded: RwLock<Loaded>,
    /// Held while fetching; holds when the last attempt started.
    refresh: tokio::sync::Mutex<Option<Instant>>,
    min_interval: Duration,
    max_age: Duration,
    timeout: Duration,
}

/// Why no key could be had for a token.
#[derive(Debug)]
pub(crate) enum KeyLookup {
    /// The keys could not be fetched (and none are cached).
    Unavailable(OidcError),
    /// Keys are there, none has the token's `kid`.
    NoSuchKey,
    /// A key has the token's `kid` but may not verify its `alg`.
    WrongAlgorithm,
}

impl KeyCache {
    pub(crate) fn new(
        source: Arc<dyn KeySource>,
        min_interval: Duration,
        max_age: Duration,
        timeout: Duration,
    ) -> Self {
        KeyCache {
            source,
            loaded: RwLock::new(Loaded::default()),
            refresh: tokio::sync::Mutex::new(None),
            min_interval,
            max_age,
            timeout,
        }
    }

    fn snapshot(&self) -> (Arc<KeySet>, Option<Instant>, u64) {
        let loaded = self.loaded.read().unwrap_or_else(|e| e.into_inner());
        (loaded.keys.clone(), loaded.fetched, loaded.generation)
    }

    /// The keys that may verify a token with `kid` and `alg`, fetching
    /// when there are none yet, when they are older than the maximum age,
    /// or when `kid` is unknown (each at most once per minimum interval).
    pub(crate) async fn candidates(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Vec<Arc<VerifyingKey>>, KeyLookup> {
        let (keys, fetched, generation) = self.snapshot();
        let stale = fetched.is_none_or(|t| t.elapsed() >= self.max_age);
        if !stale && keys.knows(kid) {
            return fitting(&keys, kid, alg);
        }
        match self.refresh(generation).await {
            Ok(keys) => fitting(&keys, kid, alg),
            // Old keys beat none while the issuer is away.
            Err(e) if fetched.is_some() => {
                log_unavailable(&e);
                fitting(&keys, kid, alg)
            }
            Err(e) => Err(KeyLookup::Unavailable(e)),
        }
    }

    /// Fetches the keys unless someone else did since `seen`, or the last
    /// attempt was less than the minimum interval ago (then the keys in
    /// hand are the answer).
    pub(crate) async fn refresh(&self, seen: u64) -> Result<Arc<KeySet>, OidcError> {
        let mut last_attempt = self.refresh.lock().await;
        let (keys, fetched, generation) = self.snapshot();
        if generation != seen {
            return Ok(keys);
        }
        if last_attempt.is_some_and(|t| t.elapsed() < self.min_interval) {
            return match fetched {
                Some(_) => Ok(keys),
                None => Err(OidcError::RefreshLimited),
            };
        }
        *last_attempt = Some(Instant::now());
        let entries = tokio::time::timeout(self.timeout, self.source.fetch())
            .await
            .map_err(|_| OidcError::Timeout(self.timeout))??;
        let set = Arc::new(KeySet::parse(entries));
        if set.len() == 0 {
            return Err(OidcError::NoUsableKeys);
        }
        let mut loaded = self.loaded.write().unwrap_or_else(|e| e.into_inner());
        loaded.keys = set.clone();
        loaded.fetched = Some(Instant::now());
        loaded.generation += 1;
        Ok(set)
    }

    /// Fetches the keys now (at start-up), returning how many are usable.
    pub(crate) async fn load(&self) -> Result<usize, OidcError> {
        let (_, _, generation) = self.snapshot();
        Ok(self.refresh(generation).await?.len())
    }
}

fn fitting(
    keys: &KeySet,
    kid: Option<&str>,
    alg: Algorithm,
) -> Result<Vec<Arc<VerifyingKey>>, KeyLookup> {
    let fit = keys.candidates(kid, alg);
    match (fit.is_empty(), keys.knows(kid)) {
        (false, _) => Ok(fit),
        (true, true) => Err(KeyLookup::WrongAlgorithm),
        (true, false) => Err(KeyLookup::NoSuchKey),
    }
}

fn log_unavailable(e: &OidcError) {
    tracing::warn!(target: "auth", error = %e, "OIDC keys could not be refreshed; using the keys fetched before");
}
