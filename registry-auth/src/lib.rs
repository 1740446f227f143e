//! Who may do what in the registry: identities, credentials, roles and
//! bindings, the [`Authorizer`], registry tokens (standard JWTs), and the
//! [`AuthStore`] that persists it all.
//!
//! This crate is pure policy: no HTTP, no SQL. The HTTP layer authenticates
//! a request with the [`Authenticator`] (Basic credentials or an access
//! token), [`RefreshTokens`] or the [`TokenIssuer`] (a registry bearer
//! token), maps it to an [`Action`] on a [`Resource`], and asks
//! [`Authorizer::check`]; nothing else decides. `registry-storage`
//! implements [`AuthStore`] over SQL; the [`MemoryAuthStore`] serves tests
//! and embedding.
//!
//! ```
//! use std::sync::Arc;
//! use registry_auth::{
//!     grant_scopes, Action, AuthStore, Authenticator, Authorizer, MemoryAuthStore, Password,
//!     PasswordHasher, Resource, Role, RoleBinding, Scope, Subject, TokenIssuer, TokenSettings,
//!     TokenSource, User,
//! };
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store: Arc<dyn AuthStore> = Arc::new(MemoryAuthStore::new());
//! let hasher = PasswordHasher::insecure_fast(); // PasswordHasher::new() in production
//!
//! // alice may push to namespace `team`, which anyone may pull from.
//! store.create_user(User {
//!     name: "alice".parse().unwrap(),
//!     password_hash: Some(hasher.hash(&Password::new("s3cret")).unwrap()),
//!     created: time::OffsetDateTime::now_utc(),
//! }).await.unwrap();
//! for (role, subject) in [(Role::Editor, "alice"), (Role::Viewer, "system:anonymous")] {
//!     store.add_role_binding(RoleBinding {
//!         namespace: "team".parse().unwrap(),
//!         role,
//!         subject: subject.parse::<Subject>().unwrap(),
//!     }).await.unwrap();
//! }
//!
//! // Log in, then decide.
//! let authn = Authenticator::new(store.clone(), hasher).unwrap();
//! let alice = authn.basic("alice", "s3cret").await.unwrap();
//! let authz = Authorizer::load(store.as_ref()).await.unwrap();
//! let repo = "team/app".parse().unwrap();
//! assert!(authz.check(&alice, Action::Push, &Resource::Repository(&repo)).is_allowed());
//! assert!(!authz.check(&alice, Action::Delete, &Resource::Repository(&repo)).is_allowed());
//!
//! // The Docker token protocol: grant what was asked and allowed, sign it
//! // (an ES256 JWT; the keys are made in the store on first use).
//! let requested = Scope::parse_all(["repository:team/app:pull,push,delete"]).unwrap();
//! let granted = grant_scopes(&authz, &alice, &requested);
//! assert_eq!(granted[0].to_string(), "repository:team/app:pull,push");
//! let issuer = TokenIssuer::load(store.clone(), "registry.local", &TokenSettings::default())
//!     .await
//!     .unwrap();
//! let token = issuer
//!     .issue(&alice, &granted, TokenSource::Password, "registry.local")
//!     .await
//!     .unwrap()
//!     .token;
//! let claims = issuer.verify(token.expose()).await.unwrap();
//! assert_eq!(claims.identity(), alice);
//! # });
//! ```

mod argon2_memory;
mod authenticate;
pub mod authorizer;
pub mod bootstrap;
pub mod cached;
pub mod change;
pub mod credentials;
#[cfg(feature = "htpasswd")]
pub mod htpasswd;
pub mod identity;
#[cfg(feature = "ldap")]
pub mod ldap;
pub mod login_cache;
pub mod memory;
pub mod names;
#[cfg(feature = "oidc")]
pub mod oidc;
pub mod refresh;
pub mod role;
pub mod scope;
pub mod secret;
pub mod store;
pub mod subject;
#[cfg(feature = "testing")]
pub mod testing;
pub mod throttle;
pub mod token;

pub use authenticate::{Authenticate, AuthenticationError, Authenticator, Credentials};
pub use authorizer::{Authorizer, AuthorizerHandle, NamespaceFilter};
pub use bootstrap::{
    ensure_admin, BootstrapError, BootstrapOutcome, ADMIN_BOOTSTRAPPED, ADMIN_USER,
};
pub use cached::{CachedAuthStore, DEFAULT_AUTH_CACHE_TTL};
pub use change::AuthChange;
pub use credentials::{
    AccessToken, AccessTokenId, AccessTokenIdError, AccessTokenSecret, CredentialError, Password,
    PasswordHash, PasswordHasher, TokenHash, TokenName, TokenNameError,
};
pub use identity::{Identity, ANONYMOUS_PROVIDER, LOCAL_PROVIDER};
pub use login_cache::{LoginCache, LoginFingerprint};
pub use memory::MemoryAuthStore;
pub use names::{
    ExternalNameError, ExternalUserName, GroupName, ServiceAccountName, ServiceAccountNameError,
    ServiceAccountRef, UserName, UserNameError,
};
pub use refresh::{ClientId, ClientIdError, RefreshToken, RefreshTokenSecret, RefreshTokens};
pub use role::{
    Action, ActionSet, ClusterRole, ClusterRoleBinding, Decision, Resource, Role, RoleBinding,
    RoleError,
};
pub use scope::{grant_scopes, Scope, ScopeAction, ScopeActions, ScopeError};
pub use secret::{
    current_managed_token, docker_config_json, is_managed_token, managed_token, new_managed_token,
    pull_secret, pull_secret_name, PullSecretPolicy, SigningKey,
};
pub use store::{AuthStore, AuthStoreError, ServiceAccount, User};
pub use subject::{Group, Subject, SubjectError};
pub use throttle::{FailedLogins, LoginGuard, LoginLimits};
pub use token::{
    IssuedToken, Jwk, Jwks, KeyId, RegistryToken, TokenCa, TokenClaims, TokenError, TokenIssuer,
    TokenResponse, TokenSettings, TokenSigningKey, TokenSource,
};
