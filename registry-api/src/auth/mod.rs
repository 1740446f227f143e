//! Authentication: who the caller of a request is. [`AuthLayer`] runs
//! once per request, establishes a [`Caller`] from the `Authorization`
//! header (through the [`Authenticate`] providers, or the registry's own
//! tokens) and puts it in the request extensions, unless a host layer put
//! one there already (bring your own authentication). What the caller may
//! do is decided later, by [`Registry::authorize`](crate::Registry::authorize).

mod connection;
mod layer;
mod oauth;
mod token_endpoint;
mod well_known;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use registry_auth::{
    AuthStore, Authenticate, AuthenticationError, Authenticator, Authorizer, AuthorizerHandle,
    Credentials, LoginGuard, LoginLimits, PasswordHasher, PullSecretPolicy, RefreshTokens,
    SigningKey, TokenError, TokenIssuer, TokenSettings, TokenSource,
};

use crate::service::{BuildError, Caller};

pub(crate) use connection::Origin;
pub use connection::{IpCidr, IpCidrError, SecureListener};
pub use layer::{AuthLayer, AuthService};
pub(crate) use oauth::token_form;
pub(crate) use token_endpoint::token;
pub(crate) use well_known::{jwks, token_ca};
pub use well_known::{JWKS_PATH, TOKEN_CA_PATH};

/// How the registry authenticates and authorizes. Start from
/// [`AuthConfig::new`] and set what differs from the defaults.
#[derive(Debug)]
#[non_exhaustive]
pub struct AuthConfig {
    /// Where users, service accounts, tokens and bindings live; `None`:
    /// the auth store of the registry's `Stores`.
    pub store: Option<Arc<dyn AuthStore>>,
    /// Password hashing parameters.
    pub hasher: PasswordHasher,
    /// The server secret managed pull-secret tokens derive from (shared by
    /// all replicas). Registry tokens are signed with the ES256 keys of the
    /// auth store instead (see [`AuthConfig::tokens`]).
    pub signing_key: SigningKey,
    /// The `service` of the Bearer challenge (token audience).
    pub service: String,
    /// How registry tokens are issued: issuer name, other services to
    /// issue tokens for, lifetime, key rotation.
    pub tokens: TokenSettings,
    /// Base URL clients reach the registry at (`https://registry.example`),
    /// for the token realm and pull secrets; derived from `Host` when `None`.
    pub public_url: Option<String>,
    /// Namespaces whose service accounts get no managed pull secret.
    pub pull_secrets: PullSecretPolicy,
    /// Bounds on logins, trusted proxies and managed-token lifetimes.
    pub settings: AuthSettings,
    /// Identity providers asked in order before the registry's own users
    /// and access tokens (see [`Authenticate`]).
    pub providers: Vec<Arc<dyn Authenticate>>,
    /// The password-check pool and failed-login limiter, shared with the
    /// providers that check passwords (htpasswd, LDAP) so that guesses
    /// through any of them count together; `None`: one made from
    /// [`AuthSettings::login`] for the registry's own users alone.
    pub login_guard: Option<Arc<LoginGuard>>,
}

impl AuthConfig {
    /// Defaults: the `Stores`' auth store, default hashing, service
    /// `registry`, no public URL, pull secrets for every namespace.
    pub fn new(signing_key: SigningKey) -> Self {
        AuthConfig {
            store: None,
            hasher: PasswordHasher::new(),
            signing_key,
            service: "registry".to_owned(),
            tokens: TokenSettings::default(),
            public_url: None,
            pull_secrets: PullSecretPolicy::default(),
            settings: AuthSettings::default(),
            providers: Vec::new(),
            login_guard: None,
        }
    }

    /// Keeps auth records in `store` instead of the `Stores`' own.
    pub fn with_store(mut self, store: Arc<dyn AuthStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Sets the base URL clients reach the registry at.
    pub fn with_public_url(mut self, url: impl Into<String>) -> Self {
        self.public_url = Some(url.into());
        self
    }
}

/// Hardening settings of access control, each with a server-sane default.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthSettings {
    /// Bounds on password checking: the argon2 pool and failed-login
    /// limits per user and per peer address.
    pub login: LoginLimits,
    /// Peers whose `Forwarded` / `X-Forwarded-*` headers are believed
    /// (reverse proxies). Empty (the default): no forwarded header is.
    pub trusted_proxies: Vec<IpCidr>,
    /// Lifetime of a service account's managed pull-secret token; it is
    /// renewed (a new token) once less than a third of it is left.
    pub pull_secret_lifetime: Duration,
    /// Lifetime of a refresh token (Docker's identity token) issued to a
    /// user who logged in with the registry's own password.
    pub refresh_token_lifetime: Duration,
    /// Lifetime of a refresh token issued to an identity from an external
    /// provider (LDAP, OIDC, htpasswd): the registry cannot see that
    /// identity revoked at its source, so this bounds how long the groups
    /// it had at login keep working without a new login.
    pub external_refresh_token_lifetime: Duration,
}

/// Default lifetime of managed pull-secret tokens: 90 days.
pub const DEFAULT_PULL_SECRET_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);
/// Default lifetime of refresh tokens of local users: 30 days.
pub const DEFAULT_REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default lifetime of refresh tokens of external identities: 12 hours.
pub const DEFAULT_EXTERNAL_REFRESH_TOKEN_LIFETIME: Duration = Duration::from_secs(12 * 3600);

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            login: LoginLimits::default(),
            trusted_proxies: Vec::new(),
            pull_secret_lifetime: DEFAULT_PULL_SECRET_LIFETIME,
            refresh_token_lifetime: DEFAULT_REFRESH_TOKEN_LIFETIME,
            external_refresh_token_lifetime: DEFAULT_EXTERNAL_REFRESH_TOKEN_LIFETIME,
        }
    }
}

/// Live auth state of a registry.
#[derive(Debug)]
pub(crate) struct AuthState {
    pub(crate) store: Arc<dyn AuthStore>,
    pub(crate) hasher: PasswordHasher,
    /// The providers, then the registry's refresh tokens, then its own
    /// users and access tokens.
    pub(crate) providers: Vec<Arc<dyn Authenticate>>,
    pub(crate) local: Arc<Authenticator>,
    pub(crate) refresh_tokens: Arc<RefreshTokens>,
    pub(crate) authorizer: AuthorizerHandle,
    pub(crate) issuer: TokenIssuer,
    pub(crate) public_url: Option<String>,
    pub(crate) pull_secrets: PullSecretPolicy,
    pub(crate) signing_key: SigningKey,
    pub(crate) settings: AuthSettings,
}

impl AuthState {
    pub(crate) async fn new(
        config: AuthConfig,
        store: Arc<dyn AuthStore>,
    ) -> Result<Self, BuildError> {
        let guard = config
            .login_guard
            .unwrap_or_else(|| Arc::new(LoginGuard::new(config.settings.login.clone())));
        let local = Arc::new(
            Authenticator::with_guard(store.clone(), config.hasher.clone(), guard)
                .map_err(|e| BuildError::Auth(e.into()))?,
        );
        let authorizer = Authorizer::load(store.as_ref())
            .await
            .map_err(BuildError::Bindings)?;
        let issuer = TokenIssuer::load(store.clone(), &config.service, &config.tokens)
            .await
            .map_err(|e| BuildError::Auth(e.into()))?;
        let refresh_tokens = Arc::new(RefreshTokens::new(store.clone()));
        let mut providers = config.providers;
        providers.push(refresh_tokens.clone());
        providers.push(local.clone());
        Ok(AuthState {
            store,
            hasher: config.hasher,
            providers,
            local,
            refresh_tokens,
            authorizer: AuthorizerHandle::new(authorizer),
            issuer,
            public_url: config.public_url,
            pull_secrets: config.pull_secrets,
            signing_key: config.signing_key,
            settings: config.settings,
        })
    }

    /// The base URL clients use: the configured public URL; else the
    /// listener's scheme and the request's `Host`, which forwarded headers
    /// override only when the peer is a trusted proxy.
    pub(crate) fn base_url(&self, origin: &Origin) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        origin.base(&self.settings.trusted_proxies)
    }
}

/// The base URL clients use for a request (`scheme://host[:port]`): with
/// access control on, [`AuthState::base_url`]; without it, the listener's
/// scheme and the request's `Host`.
pub(crate) fn base_url(registry: &crate::Registry, origin: &Origin) -> String {
    match registry.auth() {
        Some(state) => state.base_url(origin),
        None => origin.base(&[]),
    }
}

/// Parses `Authorization: Basic …` into user and password.
pub(crate) fn basic_credentials(text: &str) -> Option<(String, String)> {
    let encoded = text
        .strip_prefix("Basic ")
        .or_else(|| text.strip_prefix("basic "))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some((user.to_owned(), pass.to_owned()))
}

/// Which credentials a router takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Accepts {
    /// The distribution API: primary credentials and registry tokens.
    RegistryTokens,
    /// Everything else: passwords and access tokens only.
    PrimaryOnly,
}

/// The caller of a request and the credential it authenticated with (the
/// token endpoint records it in the tokens it issues).
#[derive(Debug, Clone)]
pub(crate) struct Authenticated {
    pub(crate) caller: Caller,
    pub(crate) source: TokenSource,
}

/// Why a request's credentials were not accepted.
#[derive(Debug)]
pub(crate) enum Rejected {
    /// Wrong, malformed, revoked or misplaced credentials: 401.
    Invalid(&'static str),
    /// Too many failures or password checks: 429 after the delay.
    Throttled(AuthenticationError, Duration),
    /// The store failed.
    Internal(registry_auth::AuthStoreError),
}

/// Establishes the caller from an `Authorization` header value: Basic
/// credentials or a bearer access token through the providers, or (where
/// `accepts` allows) a registry token, bounded by its scopes.
pub(crate) async fn authenticate(
    state: &AuthState,
    value: &str,
    peer: Option<std::net::IpAddr>,
    accepts: Accepts,
) -> Result<Authenticated, Rejected> {
    let credentials = match value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
    {
        Some(token) => {
            let token = token.trim();
            match state.issuer.verify(token).await {
                Ok(claims) => return registry_token(state, claims, peer, accepts).await,
                Err(TokenError::Store(e)) => return Err(Rejected::Internal(e)),
                // Not one of ours: an access or refresh token, or a
                // provider's token.
                Err(_) => Credentials::Bearer(token.to_owned()),
            }
        }
        None => match basic_credentials(value) {
            Some((user, password)) => Credentials::Basic { user, password },
            None => {
                tracing::warn!(target: "auth", peer = %PeerText(peer), "authentication failed: malformed Authorization header");
                return Err(Rejected::Invalid("malformed Authorization header"));
            }
        },
    };
    authenticate_credentials(state, &credentials, peer).await
}

/// Asks the providers in order about `credentials` (primary credentials:
/// a password, an access or refresh token, a provider's token).
pub(crate) async fn authenticate_credentials(
    state: &AuthState,
    credentials: &Credentials,
    peer: Option<std::net::IpAddr>,
) -> Result<Authenticated, Rejected> {
    for provider in &state.providers {
        match provider.authenticate(credentials, peer).await {
            Ok(None) => continue,
            Ok(Some((identity, source))) => {
                return Ok(Authenticated {
                    caller: Caller::new(identity),
                    source,
                })
            }
            Err(e) => return Err(failed(credentials.user(), peer, e)),
        }
    }
    Err(failed(
        credentials.user(),
        peer,
        AuthenticationError::InvalidCredentials,
    ))
}

/// A registry token this registry signed: valid only where `accepts`
/// allows, and only while the credential it came from lives.
async fn registry_token(
    state: &AuthState,
    claims: Arc<registry_auth::TokenClaims>,
    peer: Option<std::net::IpAddr>,
    accepts: Accepts,
) -> Result<Authenticated, Rejected> {
    if accepts == Accepts::PrimaryOnly {
        tracing::warn!(target: "auth", user = %claims.subject, peer = %PeerText(peer), "registry token refused outside the distribution API");
        return Err(Rejected::Invalid(
            "a registry token is valid only on the distribution API (/v2/); use a password or an access token",
        ));
    }
    // Deleting the credential it came from (or its owner) revokes it.
    match state.local.token_source_is_live(&claims).await {
        Ok(true) => Ok(Authenticated {
            caller: Caller::from_token(claims),
            source: TokenSource::Anonymous,
        }),
        Ok(false) => Err(failed(
            &claims.subject.to_string(),
            peer,
            AuthenticationError::InvalidCredentials,
        )),
        Err(e) => Err(Rejected::Internal(e)),
    }
}

/// Logs a failed authentication (naming user and peer, never the secret)
/// and says how to answer it.
fn failed(user: &str, peer: Option<std::net::IpAddr>, e: AuthenticationError) -> Rejected {
    let peer = PeerText(peer);
    match e {
        AuthenticationError::InvalidCredentials => {
            tracing::warn!(target: "auth", user, peer = %peer, "authentication failed: invalid credentials");
            Rejected::Invalid("invalid credentials")
        }
        AuthenticationError::RateLimited { retry_after } => {
            tracing::warn!(target: "auth", user, peer = %peer, "authentication refused: too many failed logins");
            Rejected::Throttled(e, retry_after)
        }
        AuthenticationError::Busy { retry_after } => {
            tracing::warn!(target: "auth", user, peer = %peer, "authentication refused: password checks saturated");
            Rejected::Throttled(e, retry_after)
        }
        AuthenticationError::Store(e) => Rejected::Internal(e),
        other => Rejected::Internal(registry_auth::AuthStoreError::backend(other)),
    }
}

/// A peer address for log lines (`unknown` when the server recorded none).
struct PeerText(Option<std::net::IpAddr>);

impl std::fmt::Display for PeerText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => f.write_str("unknown"),
        }
    }
}
