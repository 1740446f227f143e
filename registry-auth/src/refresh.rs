//! Refresh tokens: what the token endpoint's OAuth2 grants hand out for
//! offline access (`access_type=offline`), which Docker keeps as its
//! identity token instead of the password, and trades for registry tokens
//! (`grant_type=refresh_token`).
//!
//! A refresh token is a long-lived credential like an access token: random
//! (`rgr_` + 43 base64url characters), shown once, stored only as its
//! SHA-256 with its owner, the provider that authenticated the owner and
//! the groups it gave, the OAuth2 client it was issued to, an expiry and
//! its last use; listed and deleted where access tokens are, gone with its
//! owner. [`RefreshTokens`] accepts one wherever an access token is
//! accepted (as a password or a bearer token) and at the token endpoint.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use time::{Duration, OffsetDateTime};

use crate::authenticate::{Authenticate, AuthenticationError, Credentials};
use crate::credentials::{random_bytes, AccessTokenId, CredentialError, TokenHash};
use crate::identity::{Identity, LOCAL_PROVIDER};
use crate::names::GroupName;
use crate::store::{AuthStore, AuthStoreError};
use crate::subject::Subject;
use crate::token::TokenSource;

/// The recognisable prefix of every refresh token.
pub const REFRESH_TOKEN_PREFIX: &str = "rgr_";
/// Length of a refresh token's text: the prefix and 43 base64url characters.
pub const REFRESH_TOKEN_LEN: usize = REFRESH_TOKEN_PREFIX.len() + 43;
/// `last_used` is written at most this often per token.
const TOUCH_INTERVAL: Duration = Duration::minutes(1);

/// A refresh token as shown to its owner, once. `Debug` does not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshTokenSecret(Box<str>);

impl RefreshTokenSecret {
    /// 32 fresh random bytes from the CSPRNG.
    pub fn generate() -> Result<Self, CredentialError> {
        let bytes = random_bytes::<32>()?;
        let mut s = String::with_capacity(REFRESH_TOKEN_LEN);
        s.push_str(REFRESH_TOKEN_PREFIX);
        URL_SAFE_NO_PAD.encode_string(bytes, &mut s);
        Ok(RefreshTokenSecret(s.into()))
    }

    /// Whether `candidate` has the shape of a refresh token. Cheap; says
    /// nothing about validity.
    pub fn looks_like(candidate: &str) -> bool {
        candidate.len() == REFRESH_TOKEN_LEN && candidate.starts_with(REFRESH_TOKEN_PREFIX)
    }

    /// The token text, to show once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The hash under which the token is stored.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }
}

impl fmt::Debug for RefreshTokenSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshTokenSecret(rgr_***)")
    }
}

/// Why a string is not a valid OAuth2 client id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientIdError {
    /// Empty, or longer than 64 bytes.
    #[error("client id must be 1 to 64 characters long")]
    Length,
    /// A character outside `[A-Za-z0-9._:/@+-]`.
    #[error("client id contains invalid character {0:?}")]
    InvalidCharacter(char),
}

/// The OAuth2 `client_id` a refresh token was issued to (`docker`,
/// `containerd-client`, `containers/image`, `registryctl`…): printable
/// ASCII without spaces, 1 to 64 characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(Box<str>);

impl ClientId {
    /// The id text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ClientId {
    type Err = ClientIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.len() > 64 {
            return Err(ClientIdError::Length);
        }
        if let Some(bad) = s
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "._:/@+-".contains(*c)))
        {
            return Err(ClientIdError::InvalidCharacter(bad));
        }
        Ok(ClientId(s.into()))
    }
}

impl fmt::Display for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ClientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientId({})", self.0)
    }
}

crate::subject::serde_via_str!(ClientId);

/// A stored refresh token: everything but the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshToken {
    /// Public identifier (to list and revoke it), from the same space as
    /// access tokens' ids.
    pub id: AccessTokenId,
    /// SHA-256 of the token text.
    pub hash: TokenHash,
    /// Whose rights it carries.
    pub owner: Subject,
    /// The provider that authenticated the owner (`local`, `ldap`, …).
    pub provider: String,
    /// The groups that provider gave the owner at login.
    pub groups: Vec<GroupName>,
    /// The OAuth2 client it was issued to.
    pub client_id: ClientId,
    /// When it was made.
    pub created: OffsetDateTime,
    /// When it stops working, if ever.
    pub expires: Option<OffsetDateTime>,
    /// When it was last used, if ever.
    pub last_used: Option<OffsetDateTime>,
}

impl RefreshToken {
    /// A fresh refresh token for `identity` (who logged in through its
    /// provider), for `client_id`, expiring at `expires`: the record to
    /// store and the secret to show once.
    pub fn generate(
        identity: &Identity,
        client_id: ClientId,
        expires: Option<OffsetDateTime>,
        now: OffsetDateTime,
    ) -> Result<(RefreshToken, RefreshTokenSecret), CredentialError> {
        let secret = RefreshTokenSecret::generate()?;
        let record = RefreshToken {
            id: AccessTokenId::generate(),
            hash: secret.hash(),
            owner: identity.subject().clone(),
            provider: identity.provider().to_owned(),
            groups: identity.provider_groups().to_vec(),
            client_id,
            created: now,
            expires,
            last_used: None,
        };
        Ok((record, secret))
    }

    /// Whether it has expired at `now`.
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        self.expires.is_some_and(|e| e <= now)
    }

    /// The identity it stands for, as its provider gave it at login.
    pub fn identity(&self) -> Option<Identity> {
        self.owner
            .is_principal()
            .then(|| crate::token::claims_identity(&self.owner, &self.provider, &self.groups))
    }

    /// Whether a provider other than the registry's own users vouched for
    /// the owner (the registry cannot see that identity revoked).
    pub fn is_external(&self) -> bool {
        self.provider != LOCAL_PROVIDER
    }
}

/// The identity provider for refresh tokens presented as a password (any
/// user name) or a bearer token, and the checks the token endpoint makes.
///
/// A refresh token is accepted only while it exists, is unexpired, and its
/// local owner exists; anything else, a dead refresh token included, is
/// not its business (`Ok(None)`): the registry's own users and access
/// tokens, asked last, refuse it (and count a wrong password).
#[derive(Debug, Clone)]
pub struct RefreshTokens {
    store: Arc<dyn AuthStore>,
}

impl RefreshTokens {
    /// The refresh tokens of `store`.
    pub fn new(store: Arc<dyn AuthStore>) -> Self {
        RefreshTokens { store }
    }

    /// The identity a presented refresh token stands for, recording the
    /// use; `InvalidCredentials` for anything but a live token.
    pub async fn redeem(
        &self,
        presented: &str,
    ) -> Result<(Identity, TokenSource), AuthenticationError> {
        if !RefreshTokenSecret::looks_like(presented) {
            return Err(AuthenticationError::InvalidCredentials);
        }
        let hash = TokenHash::of(presented);
        let token = self
            .live(&hash)
            .await?
            .ok_or(AuthenticationError::InvalidCredentials)?;
        let now = OffsetDateTime::now_utc();
        if token.last_used.is_none_or(|t| now - t >= TOUCH_INTERVAL) {
            match self.store.touch_refresh_token(&token.id, now).await {
                // Revoked in between: this use still goes through, like any
                // request already past the check.
                Ok(()) | Err(AuthStoreError::NotFound(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        let identity = token
            .identity()
            .ok_or(AuthenticationError::InvalidCredentials)?;
        Ok((identity, TokenSource::RefreshToken(hash)))
    }

    /// Whether the refresh token stored under `hash` still stands (for
    /// the registry tokens obtained with it).
    pub async fn is_live(&self, hash: &TokenHash, owner: &Subject) -> Result<bool, AuthStoreError> {
        Ok(self.live(hash).await?.is_some_and(|t| &t.owner == owner))
    }

    async fn live(&self, hash: &TokenHash) -> Result<Option<RefreshToken>, AuthStoreError> {
        let Some(token) = self.store.find_refresh_token_by_hash(hash).await? else {
            return Ok(None);
        };
        if !token.hash.ct_eq(hash) || token.is_expired(OffsetDateTime::now_utc()) {
            return Ok(None);
        }
        // A provider's identity has no record here: its refresh tokens are
        // bounded in lifetime instead.
        let owner_exists = match &token.owner {
            _ if token.is_external() => token.owner.is_principal(),
            Subject::User(u) => self.store.get_user(u).await?.is_some(),
            Subject::ServiceAccount(sa) => self.store.get_service_account(sa).await?.is_some(),
            Subject::External(_) | Subject::Group(_) => false,
        };
        Ok(owner_exists.then_some(token))
    }
}

#[async_trait::async_trait]
impl Authenticate for RefreshTokens {
    async fn authenticate(
        &self,
        credentials: &Credentials,
        _peer: Option<IpAddr>,
    ) -> Result<Option<(Identity, TokenSource)>, AuthenticationError> {
        let presented = match credentials {
            Credentials::Basic { password, .. } => password,
            Credentials::Bearer(token) => token,
        };
        if !RefreshTokenSecret::looks_like(presented) {
            return Ok(None);
        }
        match self.redeem(presented).await {
            Ok(found) => Ok(Some(found)),
            // Not a live refresh token: as with access tokens, a password
            // of that shape is still a password, for the next provider.
            Err(AuthenticationError::InvalidCredentials) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryAuthStore;
    use crate::store::User;

    #[test]
    fn secrets_and_client_ids() {
        let s = RefreshTokenSecret::generate().unwrap();
        assert!(RefreshTokenSecret::looks_like(s.expose()));
        assert!(!RefreshTokenSecret::looks_like("rgt_x"));
        assert!(!format!("{s:?}").contains(&s.expose()[4..]));
        for ok in [
            "docker",
            "containers/image",
            "containerd-client",
            "a@b.c:1+2",
        ] {
            assert!(ok.parse::<ClientId>().is_ok(), "{ok}");
        }
        assert_eq!("".parse::<ClientId>(), Err(ClientIdError::Length));
        assert_eq!(
            "x".repeat(65).parse::<ClientId>(),
            Err(ClientIdError::Length)
        );
        assert_eq!(
            "a b".parse::<ClientId>(),
            Err(ClientIdError::InvalidCharacter(' '))
        );
    }

    #[tokio::test]
    async fn redeemed_while_live_and_owned() {
        let store: Arc<dyn AuthStore> = Arc::new(MemoryAuthStore::new());
        let alice: crate::UserName = "alice".parse().unwrap();
        store
            .create_user(User {
                name: alice.clone(),
                password_hash: None,
                created: OffsetDateTime::now_utc(),
            })
            .await
            .unwrap();
        let now = OffsetDateTime::now_utc();
        let id = Identity::user(alice.clone());
        let (record, secret) =
            RefreshToken::generate(&id, "docker".parse().unwrap(), None, now).unwrap();
        store.create_refresh_token(record.clone()).await.unwrap();
        let tokens = RefreshTokens::new(store.clone());
        let basic = Credentials::Basic {
            user: "anyone".into(),
            password: secret.expose().into(),
        };
        let (who, source) = tokens.authenticate(&basic, None).await.unwrap().unwrap();
        assert_eq!(who, id);
        assert_eq!(source, TokenSource::RefreshToken(secret.hash()));
        let listed = store.list_refresh_tokens(Some(id.subject())).await.unwrap();
        assert!(listed[0].last_used.is_some());
        assert!(tokens.is_live(&secret.hash(), id.subject()).await.unwrap());
        // Not a refresh token: not this provider's business.
        let other = Credentials::Bearer("rgt_something".into());
        assert!(tokens.authenticate(&other, None).await.unwrap().is_none());
        // Unknown, expired, or owner gone: refused.
        let (_, unknown) =
            RefreshToken::generate(&id, "docker".parse().unwrap(), None, now).unwrap();
        let bearer = Credentials::Bearer(unknown.expose().into());
        assert!(tokens.authenticate(&bearer, None).await.unwrap().is_none());
        assert!(tokens.redeem(unknown.expose()).await.is_err());
        let (expired, expired_secret) = RefreshToken::generate(
            &id,
            "docker".parse().unwrap(),
            Some(now - Duration::seconds(1)),
            now,
        )
        .unwrap();
        store.create_refresh_token(expired).await.unwrap();
        assert!(tokens.redeem(expired_secret.expose()).await.is_err());
        store.delete_user(&alice).await.unwrap();
        assert!(tokens.redeem(secret.expose()).await.is_err());
        assert!(store.list_refresh_tokens(None).await.unwrap().is_empty());
    }
}
