//! Access control: who the caller is ([`Caller`]), what an endpoint needs,
//! and the answer when it is not allowed (401 with a Bearer challenge, or
//! 403). The decision itself is always [`registry_auth::Authorizer::check`]
//! or the scopes of a token it granted.

mod token_endpoint;

use std::sync::Arc;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use base64::Engine as _;
use registry_auth::{
    Action, AuthStore, AuthenticationError, Authenticator, Authorizer, AuthorizerHandle, Identity,
    NamespaceFilter, PasswordHasher, PullSecretPolicy, Resource, ScopeAction, SigningKey,
    TokenClaims, TokenIssuer,
};
use registry_core::{ErrorCode, RepositoryName};

use crate::error::{ApiError, ApiResult};
use crate::http_util::header_value;

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
}

impl AuthState {
    pub(crate) async fn new(config: AuthConfig) -> Result<Self, String> {
        let authenticator = Authenticator::new(config.store.clone(), config.hasher.clone())
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
        })
    }

    /// The base URL clients use, from the configuration or the request.
    pub(crate) fn base_url(&self, headers: &HeaderMap) -> String {
        if let Some(url) = &self.public_url {
            return url.trim_end_matches('/').to_owned();
        }
        let host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("localhost");
        let scheme = headers
            .get("x-forwarded-proto")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("http");
        format!("{scheme}://{host}")
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

/// Establishes the caller from the `Authorization` header. Wrong
/// credentials are a 401 (logged, never saying which part was wrong).
pub(crate) async fn authenticate(state: &AuthState, headers: &HeaderMap) -> ApiResult<Caller> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Caller::anonymous());
    };
    let failed = |e: AuthenticationError| -> ApiError {
        match e {
            AuthenticationError::InvalidCredentials => {
                tracing::warn!(target: "auth", "authentication failed: invalid credentials");
                challenge(state, headers, None, "invalid credentials")
            }
            other => ApiError::internal(other),
        }
    };
    let text = value.to_str().unwrap_or("");
    if let Some(token) = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
    {
        let token = token.trim();
        if let Ok(claims) = state.issuer.verify(token) {
            return Ok(Caller {
                identity: claims.identity(),
                token: Some(Arc::new(claims)),
            });
        }
        return match state.authenticator.bearer(token).await {
            Ok(identity) => Ok(Caller {
                identity,
                token: None,
            }),
            Err(e) => Err(failed(e)),
        };
    }
    let Some((user, pass)) = basic_credentials(value) else {
        tracing::warn!(target: "auth", "authentication failed: malformed Authorization header");
        return Err(challenge(
            state,
            headers,
            None,
            "malformed Authorization header",
        ));
    };
    match state.authenticator.basic(&user, &pass).await {
        Ok(identity) => Ok(Caller {
            identity,
            token: None,
        }),
        Err(e) => Err(failed(e)),
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
