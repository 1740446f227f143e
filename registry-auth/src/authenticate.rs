//! Turning presented credentials into an [`Identity`].

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use hmac::{KeyInit, Mac};
use time::{Duration, OffsetDateTime};

use crate::credentials::{
    random_bytes, AccessToken, AccessTokenSecret, CredentialError, Password, PasswordHash,
    PasswordHasher, TokenHash,
};
use crate::identity::Identity;
use crate::store::{AuthStore, AuthStoreError};
use crate::subject::{Subject, UserName};
use crate::throttle::{FailedLogins, LoginGuard, LoginLimits};
use crate::token::{TokenClaims, TokenSource};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// Why credentials did not yield an identity.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthenticationError {
    /// Wrong user, wrong password, unknown, expired or orphaned token: one
    /// answer for all, so a caller learns nothing about which part failed.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The store failed: a server error, not the caller's fault.
    #[error(transparent)]
    Store(#[from] AuthStoreError),
    /// Password verification could not run.
    #[error(transparent)]
    Credential(#[from] CredentialError),
    /// Too many failed logins for this user name or from this address:
    /// refused without checking the password.
    #[error("too many failed logins; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited {
        /// How long until the lock ends.
        retry_after: std::time::Duration,
    },
    /// Every password-verification slot stayed busy for the configured
    /// wait: the server is saturated with logins.
    #[error("too many logins in progress; retry shortly")]
    Busy {
        /// A hint for the client's `Retry-After`.
        retry_after: std::time::Duration,
    },
}

/// Credentials as a client presented them.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credentials {
    /// HTTP Basic: a user name and a password (or an access token as the
    /// password).
    Basic {
        /// The user name as sent.
        user: String,
        /// The password as sent.
        password: String,
    },
    /// A bearer token that is not one of the registry's own signed tokens
    /// (an access token, or a provider's token).
    Bearer(String),
}

impl Credentials {
    /// The user name, for log lines (`(bearer)` for a token).
    pub fn user(&self) -> &str {
        match self {
            Credentials::Basic { user, .. } => user,
            Credentials::Bearer(_) => "(bearer)",
        }
    }
}

impl fmt::Debug for Credentials {
    /// Never shows the secret.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .finish_non_exhaustive(),
            Credentials::Bearer(_) => f.write_str("Bearer(..)"),
        }
    }
}

/// An identity provider: turns presented credentials into an identity.
///
/// Providers are asked in a configured order, as kube-apiserver's
/// authenticator chain: each answers "not mine" (`Ok(None)`: the next one is
/// asked), "yes" (`Ok(Some(..))`: the identity and the credential it came
/// from, which registry tokens derived from it record), or "no" (`Err`: the
/// request is refused, no later provider is asked). The registry's own
/// users and access tokens ([`Authenticator`]) come last and say "no" to
/// anything they cannot verify.
#[async_trait::async_trait]
pub trait Authenticate: Send + Sync + fmt::Debug {
    /// Authenticates `credentials` presented from `peer` (the client's
    /// address, for rate limiting).
    async fn authenticate(
        &self,
        credentials: &Credentials,
        peer: Option<IpAddr>,
    ) -> Result<Option<(Identity, TokenSource)>, AuthenticationError>;
}

#[async_trait::async_trait]
impl Authenticate for Authenticator {
    async fn authenticate(
        &self,
        credentials: &Credentials,
        peer: Option<IpAddr>,
    ) -> Result<Option<(Identity, TokenSource)>, AuthenticationError> {
        match credentials {
            Credentials::Basic { user, password } => {
                self.basic_from(user, password, peer).await.map(Some)
            }
            Credentials::Bearer(token) => self.bearer_with_source(token).await.map(Some),
        }
    }
}

/// How many successful Basic logins are remembered (see [`Authenticator`]).
const VERIFIED_CACHE_CAPACITY: usize = 4096;
/// `last_used` is written at most this often per token.
const TOUCH_INTERVAL: Duration = Duration::minutes(1);

/// Verifies Basic credentials and bearer access tokens against an
/// [`AuthStore`].
///
/// - **Basic** (`username`, `password`): if the password has the shape of an
///   access token and is a valid, unexpired token whose owner still exists,
///   the identity is the token's owner, whatever the username (so
///   `podman login -u any -p TOKEN` works). Otherwise the user's argon2id
///   hash must verify.
/// - **Bearer access token**: the same token check, without a username.
///
/// Every failure is [`AuthenticationError::InvalidCredentials`]. An unknown
/// user costs an argon2 verification too, so timing does not reveal which
/// users exist.
///
/// argon2 runs on tokio's blocking pool when called inside a tokio runtime,
/// at most [`LoginLimits::password_checks`] at once; a login that waits
/// longer than [`LoginLimits::password_check_wait`] for a slot is
/// [`AuthenticationError::Busy`], and a user name or peer address with too
/// many recent failures is [`AuthenticationError::RateLimited`] without any
/// argon2 work. Because clients that use Basic auth send it on every request, a
/// successful verification is remembered (keyed by an HMAC of the
/// credentials under a per-process random key, bound to the stored hash): a
/// repeat costs one store read and one HMAC, and a password change takes
/// effect at once.
pub struct Authenticator {
    store: Arc<dyn AuthStore>,
    hasher: PasswordHasher,
    dummy_hash: PasswordHash,
    cache_key: HmacSha256,
    verified: Mutex<HashMap<[u8; 32], PasswordHash>>,
    guard: Arc<LoginGuard>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("store", &self.store)
            .field("hasher", &self.hasher)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator over `store`, hashing with `hasher`, with the
    /// default [`LoginLimits`].
    pub fn new(store: Arc<dyn AuthStore>, hasher: PasswordHasher) -> Result<Self, CredentialError> {
        Self::with_limits(store, hasher, LoginLimits::default())
    }

    /// An authenticator with explicit bounds on password checking.
    pub fn with_limits(
        store: Arc<dyn AuthStore>,
        hasher: PasswordHasher,
        limits: LoginLimits,
    ) -> Result<Self, CredentialError> {
        Self::with_guard(store, hasher, Arc::new(LoginGuard::new(limits)))
    }

    /// An authenticator whose password checks and failed-login counts go
    /// through `guard`, shared with identity providers that check
    /// passwords too.
    pub fn with_guard(
        store: Arc<dyn AuthStore>,
        hasher: PasswordHasher,
        guard: Arc<LoginGuard>,
    ) -> Result<Self, CredentialError> {
        let dummy_hash = hasher.hash(&Password::generate()?)?;
        let key = random_bytes::<32>()?;
        let cache_key = HmacSha256::new_from_slice(&key)
            .map_err(|e| CredentialError::Hashing(e.to_string()))?;
        Ok(Authenticator {
            store,
            hasher,
            dummy_hash,
            cache_key,
            verified: Mutex::new(HashMap::new()),
            guard,
        })
    }

    /// The bounds on password checking.
    pub fn limits(&self) -> &LoginLimits {
        self.guard.limits()
    }

    /// The failed-login counters (to inspect in tests and metrics).
    pub fn failed_logins(&self) -> &FailedLogins {
        self.guard.failures()
    }

    /// The password-check pool and failed-login limiter, to share with
    /// identity providers.
    pub fn login_guard(&self) -> &Arc<LoginGuard> {
        &self.guard
    }

    /// The store this authenticator reads.
    pub fn store(&self) -> &Arc<dyn AuthStore> {
        &self.store
    }

    /// The password hasher (to hash new passwords with the same parameters).
    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// Resolves HTTP Basic credentials.
    pub async fn basic(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Identity, AuthenticationError> {
        Ok(self.basic_from(username, password, None).await?.0)
    }

    /// Resolves HTTP Basic credentials presented from `peer`, saying which
    /// credential authenticated (for the registry tokens derived from it).
    /// Failed password checks count against the user name and the peer.
    pub async fn basic_from(
        &self,
        username: &str,
        password: &str,
        peer: Option<IpAddr>,
    ) -> Result<(Identity, TokenSource), AuthenticationError> {
        if AccessTokenSecret::looks_like(password) {
            if let Some(found) = self.try_access_token(password).await? {
                return Ok(found);
            }
        }
        let password = Password::new(password);
        let name = username.parse::<UserName>().ok();
        let user = match &name {
            Some(name) => self.store.get_user(name).await?,
            None => None,
        };
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        // A locked address is refused before anything is checked, a
        // remembered success included: else a guesser whose address is
        // locked would still learn the password from the one answer that
        // is not 429, at the cost of an HMAC per guess.
        if let Some(retry_after) = self.guard.failures().peer_locked(peer) {
            return Err(AuthenticationError::RateLimited { retry_after });
        }
        if let Some((user, hash)) = user.as_ref().zip(stored.as_ref()) {
            // A remembered success costs one HMAC and lets its owner in even
            // while someone else's guesses have locked the name.
            let fingerprint = self.fingerprint(user.name.as_str(), &password);
            let remembered = self
                .verified
                .lock()
                .ok()
                .and_then(|m| m.get(&fingerprint).cloned());
            if remembered.is_some_and(|h| &h == hash) {
                return Ok((Identity::user(user.name.clone()), TokenSource::Password));
            }
        }
        if let Some(retry_after) = self.guard.failures().locked(username, peer) {
            // Only the name is locked, and this was no remembered success:
            // it counts against the address, which cannot go on asking.
            self.guard.failures().failed(None, peer);
            return Err(AuthenticationError::RateLimited { retry_after });
        }
        let counted_name = name.as_ref().map(UserName::as_str);
        let Some((user, hash)) = user.zip(stored) else {
            // Spend the same time as a real check.
            let _ = self.verify(password, self.dummy_hash.clone()).await?;
            self.guard.failures().failed(counted_name, peer);
            return Err(AuthenticationError::InvalidCredentials);
        };
        let fingerprint = self.fingerprint(user.name.as_str(), &password);
        if !self.verify(password, hash.clone()).await? {
            self.guard.failures().failed(counted_name, peer);
            return Err(AuthenticationError::InvalidCredentials);
        }
        self.guard.failures().succeeded(user.name.as_str());
        if let Ok(mut m) = self.verified.lock() {
            if m.len() >= VERIFIED_CACHE_CAPACITY {
                m.clear();
            }
            m.insert(fingerprint, hash);
        }
        Ok((Identity::user(user.name), TokenSource::Password))
    }

    /// Resolves an access token presented as a bearer token.
    pub async fn bearer(&self, token: &str) -> Result<Identity, AuthenticationError> {
        Ok(self.bearer_with_source(token).await?.0)
    }

    /// [`bearer`](Self::bearer), saying which credential authenticated.
    pub async fn bearer_with_source(
        &self,
        token: &str,
    ) -> Result<(Identity, TokenSource), AuthenticationError> {
        if !AccessTokenSecret::looks_like(token) {
            return Err(AuthenticationError::InvalidCredentials);
        }
        self.try_access_token(token)
            .await?
            .ok_or(AuthenticationError::InvalidCredentials)
    }

    /// Whether the credential a registry token was derived from still
    /// stands: its access or refresh token exists, is unexpired and its
    /// owner is the token's subject and exists; for a password, the subject
    /// exists; a provider's login stands until the token expires.
    /// Served by the store's cache on the hot path.
    pub async fn token_source_is_live(&self, claims: &TokenClaims) -> Result<bool, AuthStoreError> {
        match claims.source {
            TokenSource::Anonymous => Ok(claims.identity().is_anonymous()),
            // Lives until it expires: a provider's login cannot be revoked here.
            TokenSource::External => Ok(claims.subject.is_principal()),
            TokenSource::Password => Ok(match &claims.subject {
                Subject::User(u) => self.store.get_user(u).await?.is_some(),
                _ => false,
            }),
            TokenSource::AccessToken(hash) => Ok(self
                .live_token(&hash)
                .await?
                .is_some_and(|t| t.owner == claims.subject)),
            TokenSource::RefreshToken(hash) => {
                crate::refresh::RefreshTokens::new(self.store.clone())
                    .is_live(&hash, &claims.subject)
                    .await
            }
        }
    }

    /// `Ok(None)` when the token does not authenticate; errors only for
    /// store failures.
    async fn try_access_token(
        &self,
        presented: &str,
    ) -> Result<Option<(Identity, TokenSource)>, AuthStoreError> {
        let hash = TokenHash::of(presented);
        let Some(token) = self.live_token(&hash).await? else {
            return Ok(None);
        };
        let now = OffsetDateTime::now_utc();
        if token.last_used.is_none_or(|t| now - t >= TOUCH_INTERVAL) {
            match self.store.touch_token(&token.id, now).await {
                // Revoked in between: the caller still gets in this once,
                // like any request already past the check.
                Ok(()) | Err(AuthStoreError::NotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Identity::authenticated(token.owner).map(|id| (id, TokenSource::AccessToken(hash))))
    }

    /// The stored token with `hash` if it is unexpired and its owner exists.
    async fn live_token(&self, hash: &TokenHash) -> Result<Option<AccessToken>, AuthStoreError> {
        let Some(token) = self.store.find_token_by_hash(hash).await? else {
            return Ok(None);
        };
        if !token.hash.ct_eq(hash) || token.is_expired(OffsetDateTime::now_utc()) {
            return Ok(None);
        }
        if !self.owner_exists(&token).await? {
            return Ok(None);
        }
        Ok(Some(token))
    }

    async fn owner_exists(&self, token: &AccessToken) -> Result<bool, AuthStoreError> {
        Ok(match &token.owner {
            Subject::User(u) => self.store.get_user(u).await?.is_some(),
            Subject::ServiceAccount(sa) => self.store.get_service_account(sa).await?.is_some(),
            Subject::External(_) | Subject::Group(_) => false,
        })
    }

    fn fingerprint(&self, user: &str, password: &Password) -> [u8; 32] {
        let mut mac = self.cache_key.clone();
        mac.update(user.as_bytes());
        mac.update(&[0]);
        mac.update(password.expose().as_bytes());
        mac.finalize().into_bytes().into()
    }

    /// Runs one argon2 verification in a slot of the shared bounded pool.
    async fn verify(
        &self,
        password: Password,
        hash: PasswordHash,
    ) -> Result<bool, AuthenticationError> {
        let hasher = self.hasher.clone();
        self.guard
            .run_check(move || hasher.verify(&password, &hash))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::TokenName;
    use crate::memory::MemoryAuthStore;
    use crate::store::{ServiceAccount, User};
    use crate::subject::ServiceAccountRef;

    async fn setup() -> (Authenticator, Arc<dyn AuthStore>) {
        let store: Arc<dyn AuthStore> = Arc::new(MemoryAuthStore::new());
        let hasher = PasswordHasher::insecure_fast();
        store
            .create_user(User {
                name: "alice".parse().unwrap(),
                password_hash: Some(hasher.hash(&Password::new("s3cret")).unwrap()),
                created: OffsetDateTime::now_utc(),
            })
            .await
            .unwrap();
        (Authenticator::new(store.clone(), hasher).unwrap(), store)
    }

    fn is_invalid<T: fmt::Debug>(r: Result<T, AuthenticationError>) -> bool {
        matches!(r, Err(AuthenticationError::InvalidCredentials))
    }

    #[tokio::test]
    async fn basic_password() {
        let (auth, store) = setup().await;
        let id = auth.basic("alice", "s3cret").await.unwrap();
        assert_eq!(id.subject().to_string(), "alice");
        // Second time through the verified cache.
        assert_eq!(auth.basic("alice", "s3cret").await.unwrap(), id);
        assert!(is_invalid(auth.basic("alice", "wrong").await));
        assert!(is_invalid(auth.basic("bob", "s3cret").await));
        assert!(is_invalid(auth.basic("Not A Name", "s3cret").await));
        // A password change invalidates the remembered login at once.
        let name: UserName = "alice".parse().unwrap();
        let new_hash = auth.hasher().hash(&Password::new("n3w")).unwrap();
        store.set_password(&name, Some(new_hash)).await.unwrap();
        assert!(is_invalid(auth.basic("alice", "s3cret").await));
        assert!(auth.basic("alice", "n3w").await.is_ok());
        store.set_password(&name, None).await.unwrap();
        assert!(is_invalid(auth.basic("alice", "n3w").await));
    }

    #[tokio::test]
    async fn access_tokens_as_password_and_bearer() {
        let (auth, store) = setup().await;
        let alice: Subject = "alice".parse().unwrap();
        let (token, secret) =
            AccessToken::generate(alice.clone(), "ci".parse().unwrap(), None).unwrap();
        let id = token.id;
        store.create_token(token).await.unwrap();
        for user in ["any", "alice", ""] {
            let identity = auth.basic(user, secret.expose()).await.unwrap();
            assert_eq!(identity.subject(), &alice);
        }
        assert_eq!(
            auth.bearer(secret.expose()).await.unwrap().subject(),
            &alice
        );
        let stored = store.list_tokens(Some(&alice)).await.unwrap();
        assert!(stored[0].last_used.is_some());
        assert!(is_invalid(auth.bearer("rgt_nope").await));
        let (_, unknown) =
            AccessToken::generate(alice.clone(), "x".parse().unwrap(), None).unwrap();
        assert!(is_invalid(auth.bearer(unknown.expose()).await));
        assert!(is_invalid(auth.basic("alice", unknown.expose()).await));
        store.delete_token(&id).await.unwrap();
        assert!(is_invalid(auth.bearer(secret.expose()).await));
    }

    #[tokio::test]
    async fn expired_and_orphaned_tokens_fail() {
        let (auth, store) = setup().await;
        let past = OffsetDateTime::now_utc() - Duration::hours(1);
        let (token, expired) = AccessToken::generate(
            "alice".parse().unwrap(),
            "old".parse::<TokenName>().unwrap(),
            Some(past),
        )
        .unwrap();
        store.create_token(token).await.unwrap();
        assert!(is_invalid(auth.bearer(expired.expose()).await));

        let sa = ServiceAccountRef::new("team".parse().unwrap(), "builder".parse().unwrap());
        store
            .create_service_account(ServiceAccount {
                account: sa.clone(),
                created: OffsetDateTime::now_utc(),
            })
            .await
            .unwrap();
        let (token, secret) =
            AccessToken::generate(sa.clone().into(), "pull".parse().unwrap(), None).unwrap();
        // A token whose owner is missing (written behind the store's back).
        let (orphan, orphan_secret) =
            AccessToken::generate("ghost".parse().unwrap(), "t".parse().unwrap(), None).unwrap();
        store.create_token(token).await.unwrap();
        store.create_token(orphan).await.unwrap();
        let id = auth.bearer(secret.expose()).await.unwrap();
        assert_eq!(
            id.subject().to_string(),
            "system:serviceaccount:team:builder"
        );
        assert!(is_invalid(auth.bearer(orphan_secret.expose()).await));
        store.delete_service_account(&sa).await.unwrap();
        assert!(is_invalid(auth.bearer(secret.expose()).await));
    }

    #[test]
    fn works_without_a_runtime() {
        let store: Arc<dyn AuthStore> = Arc::new(MemoryAuthStore::new());
        let auth = Authenticator::new(store, PasswordHasher::insecure_fast()).unwrap();
        // The memory store never pends, so polling with a no-op waker ends.
        let mut fut = std::pin::pin!(auth.basic("nobody", "x"));
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let r = loop {
            if let std::task::Poll::Ready(r) = std::future::Future::poll(fut.as_mut(), &mut cx) {
                break r;
            }
        };
        assert!(is_invalid(r));
    }
}
