//! Registry tokens and refresh tokens: what the token endpoint grants an
//! authenticated identity, whichever way the request came (GET with
//! credentials, or an OAuth2 form grant).

use registry_auth::{
    grant_scopes, ClientId, Identity, IssuedToken, RefreshToken, RefreshTokenSecret, Scope,
    TokenError, TokenSource,
};
use time::OffsetDateTime;

use super::{Caller, Registry, RegistryError, RegistryResult};
use crate::auth::AuthState;

/// Most scopes one token request may ask for: a token carries what it
/// grants, and every request that presents it is checked against them.
pub const MAX_SCOPES_PER_TOKEN: usize = 64;
/// Most refresh tokens one owner keeps: every login with offline access
/// makes one; beyond this the oldest go.
pub const MAX_REFRESH_TOKENS_PER_OWNER: usize = 32;

/// A token request.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TokenRequest {
    /// The `service` asked for (the audience); `None`: this registry's.
    pub service: Option<String>,
    /// The scopes asked for.
    pub scopes: Vec<Scope>,
    /// Offline access for this OAuth2 client: a refresh token too.
    pub offline: Option<ClientId>,
}

impl TokenRequest {
    /// A request for `scopes` of `service` (`None`: this registry's).
    pub fn new(service: Option<String>, scopes: Vec<Scope>) -> Self {
        TokenRequest {
            service,
            scopes,
            offline: None,
        }
    }

    /// The same request, asking for a refresh token for `client`.
    #[must_use]
    pub fn offline(mut self, client: ClientId) -> Self {
        self.offline = Some(client);
        self
    }
}

/// What the token endpoint hands out.
#[derive(Debug)]
#[non_exhaustive]
pub struct GrantedToken {
    /// The registry token.
    pub issued: IssuedToken,
    /// The scopes it grants: those asked for, as far as allowed.
    pub scopes: Vec<Scope>,
    /// A refresh token, when offline access was asked for and the
    /// credential allows one (a password or a provider's login; an access
    /// or refresh token is already the long-lived credential).
    pub refresh_token: Option<RefreshTokenSecret>,
}

impl Registry {
    /// A registry token for `identity`, who authenticated with `source`:
    /// the scopes asked for, as far as the bindings allow, for the service
    /// asked for (this registry's, or one of the accepted services of
    /// registries that trust this one).
    pub async fn issue_token(
        &self,
        identity: &Identity,
        source: TokenSource,
        request: TokenRequest,
    ) -> RegistryResult<GrantedToken> {
        let state = self.auth().ok_or(RegistryError::AccessControlOff)?;
        if request.scopes.len() > MAX_SCOPES_PER_TOKEN {
            return Err(RegistryError::invalid(
                "scope",
                format!("at most {MAX_SCOPES_PER_TOKEN} scopes per token"),
            ));
        }
        let audience = state
            .issuer
            .audience(request.service.as_deref())
            .map_err(|e| RegistryError::invalid("service", e))?;
        let granted = grant_scopes(&state.authorizer.current(), identity, &request.scopes);
        // A store that fails now leaves the keys as last loaded: they sign
        // until they may not.
        if let Err(e) = state.issuer.refresh_if_stale().await {
            tracing::warn!(target: "auth", error = %e, "reloading token keys failed");
        }
        let issued = state
            .issuer
            .issue_at(
                identity,
                &granted,
                source,
                audience,
                OffsetDateTime::now_utc(),
            )
            .map_err(|e| match e {
                TokenError::UnknownService(_) => RegistryError::invalid("service", e),
                other => RegistryError::internal(other),
            })?;
        let refresh_token = match &request.offline {
            Some(client) => new_refresh_token(state, identity, source, client).await?,
            None => None,
        };
        tracing::info!(
            target: "auth",
            subject = %identity.subject(),
            audience,
            requested = request.scopes.len(),
            granted = granted.len(),
            refresh_token = refresh_token.is_some(),
            "token issued"
        );
        Ok(GrantedToken {
            issued,
            scopes: granted,
            refresh_token,
        })
    }

    /// The caller's own refresh tokens.
    pub async fn refresh_tokens(&self, caller: &Caller) -> RegistryResult<Vec<RefreshToken>> {
        let state = self.logged_in(caller)?;
        Ok(state
            .store
            .list_refresh_tokens(Some(caller.subject()))
            .await?)
    }
}

/// A refresh token for `identity` when `source` allows one, bounded in
/// lifetime (shorter for a provider's identity, which the registry cannot
/// see revoked) and in number per owner.
async fn new_refresh_token(
    state: &AuthState,
    identity: &Identity,
    source: TokenSource,
    client: &ClientId,
) -> RegistryResult<Option<RefreshTokenSecret>> {
    let lifetime = match source {
        TokenSource::Password => state.settings.refresh_token_lifetime,
        TokenSource::External => state.settings.external_refresh_token_lifetime,
        TokenSource::Anonymous | TokenSource::AccessToken(_) | TokenSource::RefreshToken(_) => {
            return Ok(None)
        }
    };
    let now = OffsetDateTime::now_utc();
    let expires = time::Duration::try_from(lifetime)
        .ok()
        .and_then(|l| now.checked_add(l));
    let (record, secret) = RefreshToken::generate(identity, client.clone(), expires, now)
        .map_err(RegistryError::internal)?;
    state.store.create_refresh_token(record.clone()).await?;
    tracing::info!(target: "audit", actor = %identity.subject(), token = %record.id, client = %client, "refresh token issued");
    // Expired ones, and the oldest beyond the bound, go.
    let mine = state
        .store
        .list_refresh_tokens(Some(identity.subject()))
        .await?;
    let (expired, live): (Vec<_>, Vec<_>) = mine.iter().partition(|t| t.is_expired(now));
    let excess = live.len().saturating_sub(MAX_REFRESH_TOKENS_PER_OWNER);
    // Oldest first (the list is by creation): the new one is never among them.
    for old in expired.into_iter().chain(live.into_iter().take(excess)) {
        match state.store.delete_refresh_token(&old.id).await {
            Ok(()) | Err(registry_auth::AuthStoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Some(secret))
}

/// Deletes every refresh token of `owner` (when its password changes).
pub(crate) async fn revoke_refresh_tokens(
    state: &AuthState,
    caller: &Caller,
    owner: &registry_auth::Subject,
) -> RegistryResult<()> {
    let tokens = state.store.list_refresh_tokens(Some(owner)).await?;
    for token in &tokens {
        match state.store.delete_refresh_token(&token.id).await {
            Ok(()) | Err(registry_auth::AuthStoreError::NotFound(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if !tokens.is_empty() {
        tracing::info!(target: "audit", actor = %caller.subject(), owner = %owner, count = tokens.len(), "refresh tokens revoked");
    }
    Ok(())
}
