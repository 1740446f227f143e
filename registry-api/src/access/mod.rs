//! Access control: who the caller is ([`Caller`]), what an endpoint needs,
//! and the answer when it is not allowed (401 with a Bearer challenge, or
//! 403). The decision itself is always [`registry_auth::Authorizer::check`]
//! or the scopes of a token it granted.

mod connection;
mod token_endpoint;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use base64::Engine as _;
use registry_auth::{
    Action, AuthStore, AuthenticationError, Authenticator, Authorizer, AuthorizerHandle, Identity,
    LoginLimits, NamespaceFilter, PasswordHasher, PullSecretPolicy, Resource, ScopeAction,
    SigningKey, TokenClaims, TokenIssuer, TokenSource,
};
use registry_core::{ErrorCode, RepositoryName};

use crate::error::{ApiError, ApiResult};
use crate::http_util::header_value;

pub(crate) use connection::ScopeLayer as ConnectionScopeLayer;
pub use connection::{IpCidr, IpCidrError, SecureListener};
pub(crate) use token_endpoint::token;

/// How the registry authenticates and authorizes.
#[derive(Debug)]
pub struct AuthConfig {
    /// Where users, service accounts, tokens and bindings live.
    pub store: Arc<dyn AuthStore>,
    /// Password hashing parameters.
    pub hasher: PasswordHasher,
    /// Key that signs registry bearer tokens (shared by all replicas).
    pub signing_key: SigningKey,
    /// The `service` of the Bearer challenge (token audience).
    pub service: String,
    /// Base URL clients reach the registry at (`https://registry.example`),
    /// for the token realm and pull secrets; derived from `Host` when `None`.
    pub public_url: Option<String>,
    /// Namespaces whose service accounts get no managed pull secret.
    pub pull_secrets: PullSecretPolicy,
    /// Bounds on logins, trusted proxies and managed-token lifetimes.
    pub settings: AuthSettings,
}

/// Hardening settings of access control, each with a server-sane default.
#[derive(Debug, Clone)]
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
}

/// Default lifetime of managed pull-secret tokens: 90 days.
pub const DEFAULT_PULL_SECRET_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            login: LoginLimits::default(),
            trusted_proxies: Vec::new(),
            pull_secret_lifetime: DEFAULT_PULL_SECRET_LIFETIME,
        }
    }
}

/// Live auth state of a registry.
#[derive(Debug)]
pub(crate) struct AuthState {
    pub(crate) store: Arc<dyn AuthStore>,
    pub(crate) hasher: PasswordHasher,
    pub(crate) authenticator: Authenticator,
    pub(crate) authorizer: AuthorizerHandle,
    pub(crate) issuer: TokenIssuer,
    pub(crate) public_url: Option<String>,
    pub(crate) pull_secrets: PullSecretPolicy,
    pub(crate) signing_key: SigningKey,
    pub(crate) settings: AuthSettings,
}

impl AuthState {
    pub(crate) async fn new(config: AuthConfig) -> Result<Self, String> {
        let authenticator = Authenticator::with_limits(
            config.store.clone(),
            config.hasher.clone(),
            config.settings.login.clone(),
        )
        .map_err(|e| e.to_string())?;
        let authorizer = Authorizer::load(config.store.as_ref())
            .await
            .map_err(|e| e.to_string())?;
        let issuer =
            TokenIssuer::new(&config.signing_key, &config.service).map_err(|e| e.to_string())?;
        Ok(AuthState {
            store: config.store,
            hasher: config.hasher,
            authenticator,
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
    pub(crate) fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        connection::request_base(&self.settings.trusted_proxies, headers)
    }
}

/// The base URL clients use (`scheme://host[:port]`): with access control
/// on, [`AuthState::base_url`]; without it (no public URL, no trusted
/// proxies configured), the listener's scheme and the request's `Host`.
pub(crate) fn base_url(registry: &crate::state::Registry, headers: &HeaderMap) -> String {
    match registry.auth() {
        Some(state) => state.base_url(headers),
        None => connection::request_base(&[], headers),
    }
}

/// The caller of a request, as established from its credentials.
#[derive(Debug, Clone)]
pub struct Caller {
    /// Who it is (anonymous without credentials).
    pub identity: Identity,
    /// The registry token it presented, if any: its scopes bound what it may do.
    pub token: Option<Arc<TokenClaims>>,
}

impl Caller {
    /// An anonymous caller.
    pub fn anonymous() -> Self {
        Caller {
            identity: Identity::anonymous(),
            token: None,
        }
    }

    /// The name recorded in tag history and logs.
    pub fn actor(&self) -> String {
        self.identity.subject().to_string()
    }
}

/// 401 with a Bearer challenge for `scope` (if any).
pub(crate) fn challenge(
    state: &AuthState,
    headers: &HeaderMap,
    scope: Option<&str>,
    message: &str,
) -> ApiError {
    challenge_with(state, headers, scope, None, message)
}

/// 401 with a Bearer challenge, optionally naming an OAuth2 `error`
/// (`insufficient_scope` when a token lacks the scope).
fn challenge_with(
    state: &AuthState,
    headers: &HeaderMap,
    scope: Option<&str>,
    error: Option<&str>,
    message: &str,
) -> ApiError {
    let realm = format!("{}/v2/token", state.base_url(headers));
    let mut value = format!(
        "Bearer realm=\"{realm}\",service=\"{}\"",
        state.issuer.service()
    );
    if let Some(scope) = scope {
        value.push_str(&format!(",scope=\"{scope}\""));
    }
    if let Some(error) = error {
        value.push_str(&format!(",error=\"{error}\""));
    }
    ApiError::new(ErrorCode::Unauthorized, message)
        .with_header(header::WWW_AUTHENTICATE, header_value(value))
}

/// Parses `Authorization: Basic …` into user and password.
pub(crate) fn basic_credentials(value: &HeaderValue) -> Option<(String, String)> {
    let text = value.to_str().ok()?;
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

/// Which credentials an endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Accepts {
    /// The distribution API: primary credentials and registry tokens.
    RegistryTokens,
    /// Everything else: passwords and access tokens only.
    PrimaryOnly,
}

/// Establishes the caller of a distribution-API request from the
/// `Authorization` header: Basic credentials, an access token, or a
/// registry token (bounded by its scopes). Wrong credentials are a 401
/// (logged, never saying which part was wrong).
pub(crate) async fn authenticate(state: &AuthState, headers: &HeaderMap) -> ApiResult<Caller> {
    Ok(authenticate_as(state, headers, Accepts::RegistryTokens)
        .await?
        .caller)
}

/// Establishes the caller from primary credentials only (a password or an
/// access token): for the admin API, the Image API and the token endpoint,
/// where a registry token is refused.
pub(crate) async fn authenticate_primary(
    state: &AuthState,
    headers: &HeaderMap,
) -> ApiResult<Caller> {
    Ok(authenticate_as(state, headers, Accepts::PrimaryOnly)
        .await?
        .caller)
}

/// A caller and the credential it authenticated with.
pub(crate) struct Authenticated {
    pub(crate) caller: Caller,
    pub(crate) source: TokenSource,
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

/// 429 with a `Retry-After` in whole seconds (at least one).
fn too_many(message: String, retry_after: Duration) -> ApiError {
    let seconds = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    ApiError::new(ErrorCode::TooManyRequests, message).with_header(
        header::RETRY_AFTER,
        header_value(seconds.max(1).to_string()),
    )
}

/// [`authenticate_primary`], also saying which credential it was (the
/// token endpoint records it in the tokens it issues).
pub(crate) async fn authenticate_source(
    state: &AuthState,
    headers: &HeaderMap,
) -> ApiResult<Authenticated> {
    authenticate_as(state, headers, Accepts::PrimaryOnly).await
}

async fn authenticate_as(
    state: &AuthState,
    headers: &HeaderMap,
    accepts: Accepts,
) -> ApiResult<Authenticated> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Authenticated {
            caller: Caller::anonymous(),
            source: TokenSource::Anonymous,
        });
    };
    let peer = connection::client_ip(&state.settings.trusted_proxies, headers);
    // Formatted only when logged: the success path stays allocation-free.
    let peer_text = PeerText(peer);
    let failed = |user: &str, e: AuthenticationError| -> ApiError {
        match e {
            AuthenticationError::InvalidCredentials => {
                tracing::warn!(target: "auth", user, peer = %peer_text, "authentication failed: invalid credentials");
                challenge(state, headers, None, "invalid credentials")
            }
            AuthenticationError::RateLimited { retry_after } => {
                tracing::warn!(target: "auth", user, peer = %peer_text, "authentication refused: too many failed logins");
                too_many(e.to_string(), retry_after)
            }
            AuthenticationError::Busy { retry_after } => {
                tracing::warn!(target: "auth", user, peer = %peer_text, "authentication refused: password checks saturated");
                too_many(e.to_string(), retry_after)
            }
            other => ApiError::internal(other),
        }
    };
    let primary = |(identity, source): (Identity, TokenSource)| Authenticated {
        caller: Caller {
            identity,
            token: None,
        },
        source,
    };
    let text = value.to_str().unwrap_or("");
    if let Some(token) = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
    {
        let token = token.trim();
        if let Ok(claims) = state.issuer.verify(token) {
            if accepts == Accepts::PrimaryOnly {
                tracing::warn!(target: "auth", user = %claims.subject, peer = %peer_text, "registry token refused outside the distribution API");
                return Err(challenge(
                    state,
                    headers,
                    None,
                    "a registry token is valid only on the distribution API (/v2/); use a password or an access token",
                ));
            }
            // Deleting the credential it came from (or its owner) revokes it.
            if !state
                .authenticator
                .token_source_is_live(&claims)
                .await
                .map_err(ApiError::internal)?
            {
                return Err(failed(
                    &claims.subject.to_string(),
                    AuthenticationError::InvalidCredentials,
                ));
            }
            return Ok(Authenticated {
                caller: Caller {
                    identity: claims.identity(),
                    token: Some(Arc::new(claims)),
                },
                source: TokenSource::Anonymous,
            });
        }
        return match state.authenticator.bearer_with_source(token).await {
            Ok(found) => Ok(primary(found)),
            Err(e) => Err(failed("(bearer)", e)),
        };
    }
    let Some((user, pass)) = basic_credentials(value) else {
        tracing::warn!(target: "auth", peer = %peer_text, "authentication failed: malformed Authorization header");
        return Err(challenge(
            state,
            headers,
            None,
            "malformed Authorization header",
        ));
    };
    match state.authenticator.basic_from(&user, &pass, peer).await {
        Ok(found) => Ok(primary(found)),
        Err(e) => Err(failed(&user, e)),
    }
}

fn scope_action(action: Action) -> Option<ScopeAction> {
    match action {
        Action::Pull => Some(ScopeAction::Pull),
        Action::Push => Some(ScopeAction::Push),
        Action::Delete => Some(ScopeAction::Delete),
        _ => None,
    }
}

/// Whether `caller` may do `action` on `repo`.
pub(crate) fn allowed(
    state: &AuthState,
    caller: &Caller,
    action: Action,
    repo: &RepositoryName,
) -> bool {
    match (&caller.token, scope_action(action)) {
        (Some(claims), Some(sa)) => claims.allows(repo, sa),
        _ => state
            .authorizer
            .current()
            .check(&caller.identity, action, &Resource::Repository(repo))
            .is_allowed(),
    }
}

/// Requires `action` on `repo`: 401 with a challenge for the scope when the
/// caller is anonymous or holds a token lacking it, 403 otherwise.
pub(crate) fn require(
    state: &AuthState,
    headers: &HeaderMap,
    caller: &Caller,
    action: Action,
    repo: &RepositoryName,
) -> ApiResult<()> {
    if allowed(state, caller, action, repo) {
        return Ok(());
    }
    let scope_actions = match action {
        Action::Push => "pull,push",
        Action::Delete => "delete",
        _ => "pull",
    };
    if caller.identity.is_anonymous() || caller.token.is_some() {
        let scope = format!("repository:{repo}:{scope_actions}");
        let error = caller.token.as_ref().map(|_| "insufficient_scope");
        Err(challenge_with(
            state,
            headers,
            Some(&scope),
            error,
            "authentication required",
        ))
    } else {
        Err(ApiError::new(
            ErrorCode::Denied,
            format!("{} may not {action:?} in {repo}", caller.identity.subject()),
        ))
    }
}

/// Requires an action on a namespace or the cluster (admin API).
pub(crate) fn require_resource(
    state: &AuthState,
    headers: &HeaderMap,
    caller: &Caller,
    action: Action,
    resource: &Resource<'_>,
) -> ApiResult<()> {
    if state
        .authorizer
        .current()
        .check(&caller.identity, action, resource)
        .is_allowed()
    {
        Ok(())
    } else if caller.identity.is_anonymous() {
        Err(challenge(state, headers, None, "authentication required"))
    } else {
        Err(ApiError::new(
            ErrorCode::Denied,
            format!("{} may not {action:?} here", caller.identity.subject()),
        )
        .with_status(StatusCode::FORBIDDEN))
    }
}

/// Which namespaces' repositories the caller may see in listings.
pub(crate) fn visible_namespaces(state: &AuthState, caller: &Caller) -> NamespaceFilter {
    state
        .authorizer
        .current()
        .namespaces_allowing(&caller.identity, Action::Pull)
}
