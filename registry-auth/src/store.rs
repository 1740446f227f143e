//! Persistence of users, service accounts, access tokens and role bindings:
//! the [`AuthStore`] trait and its error.

use std::error::Error as StdError;
use std::fmt;

use async_trait::async_trait;
use registry_core::{Namespace, NewEvent};
use time::OffsetDateTime;

use crate::change::AuthChange;
use crate::credentials::{AccessToken, AccessTokenId, PasswordHash, TokenHash};
use crate::refresh::RefreshToken;
use crate::role::{ClusterRoleBinding, RoleBinding};
use crate::subject::{ServiceAccountRef, Subject, UserName};
use crate::token::{KeyId, TokenCa, TokenSigningKey};

/// What went wrong in an [`AuthStore`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthStoreError {
    /// The record does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A record with the same key exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The backend failed (IO, database, corrupt data).
    #[error("auth store backend failed: {source}")]
    Backend {
        /// What failed underneath.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl AuthStoreError {
    /// A `NotFound` naming what is missing.
    pub fn not_found(what: impl fmt::Display) -> Self {
        AuthStoreError::NotFound(what.to_string())
    }

    /// An `AlreadyExists` naming what collides.
    pub fn already_exists(what: impl fmt::Display) -> Self {
        AuthStoreError::AlreadyExists(what.to_string())
    }

    /// Wraps a backend failure.
    pub fn backend(source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        AuthStoreError::Backend {
            source: source.into(),
        }
    }
}

/// A stored user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The login name.
    pub name: UserName,
    /// argon2id hash of the password; `None` for token-only users.
    pub password_hash: Option<PasswordHash>,
    /// When the user was created.
    pub created: OffsetDateTime,
}

/// A stored service account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    /// Namespace and name.
    pub account: ServiceAccountRef,
    /// When it was created.
    pub created: OffsetDateTime,
}

/// Persistence for authentication and authorization records.
///
/// # Contract
///
/// Every implementation passes the conformance suite in
/// `registry_auth::testing` (feature `testing`). In words:
///
/// - **Keys.** Users are keyed by name, service accounts by (namespace,
///   name), tokens by id and, uniquely, by hash; a token's name is unique per
///   owner. Refresh tokens are keyed by id and, uniquely, by hash. Bindings
///   are sets: adding an existing binding is `AlreadyExists`, removing a
///   missing one is `NotFound`. Token-signing keys are keyed by key id; the
///   token CA is one per store, made once and kept (creating a second one
///   is `AlreadyExists`).
/// - **Errors.** A missing record is [`AuthStoreError::NotFound`], a
///   duplicate key [`AuthStoreError::AlreadyExists`]; everything else is
///   [`AuthStoreError::Backend`]. `get_*`/`find_*` return `Ok(None)` for a
///   missing record, never `NotFound`.
/// - **Cascades.** Deleting a user or a service account deletes, in the same
///   transaction, its access and refresh tokens and every role and cluster
///   role binding whose subject it is. Deleting a namespace is not this trait's business; the
///   caller deletes its service accounts and calls
///   [`AuthStore::delete_namespace_bindings`].
/// - **Referential checks.** Creating a token or a binding does not check
///   that the subject exists (bindings may be made ahead of the account); a
///   dangling token never authenticates because the
///   [`Authenticator`](crate::Authenticator) checks the owner.
/// - **Ordering.** Lists are sorted: users by name, service accounts by
///   (namespace, name), access and refresh tokens by (created, id), bindings
///   by their `Ord`, token-signing keys by (signs_from, key id).
/// - **Secrets.** The token CA's and the signing keys' private keys are the
///   only secrets kept (everything else is a hash): whoever reads the store
///   can sign registry tokens.
/// - **Consistency.** A completed write is visible to every later read from
///   any handle on the same store.
///
/// The trait is object-safe: use it as `Arc<dyn AuthStore>`.
#[async_trait]
pub trait AuthStore: Send + Sync + fmt::Debug {
    // Users.

    /// Stores a new user. `AlreadyExists` if the name is taken.
    async fn create_user(&self, user: User) -> Result<(), AuthStoreError>;
    /// The user called `name`, if any.
    async fn get_user(&self, name: &UserName) -> Result<Option<User>, AuthStoreError>;
    /// Every user, by name.
    async fn list_users(&self) -> Result<Vec<User>, AuthStoreError>;
    /// Deletes a user, its tokens and its bindings. `NotFound` if missing.
    async fn delete_user(&self, name: &UserName) -> Result<(), AuthStoreError>;
    /// Replaces a user's password hash (`None` disables password login).
    /// `NotFound` if missing.
    async fn set_password(
        &self,
        name: &UserName,
        hash: Option<PasswordHash>,
    ) -> Result<(), AuthStoreError>;

    // Service accounts.

    /// Stores a new service account. `AlreadyExists` if taken.
    async fn create_service_account(&self, sa: ServiceAccount) -> Result<(), AuthStoreError>;
    /// The service account, if any.
    async fn get_service_account(
        &self,
        sa: &ServiceAccountRef,
    ) -> Result<Option<ServiceAccount>, AuthStoreError>;
    /// The service accounts of `namespace`, or of every namespace.
    async fn list_service_accounts(
        &self,
        namespace: Option<&Namespace>,
    ) -> Result<Vec<ServiceAccount>, AuthStoreError>;
    /// Deletes a service account, its tokens and its bindings. `NotFound`
    /// if missing.
    async fn delete_service_account(&self, sa: &ServiceAccountRef) -> Result<(), AuthStoreError>;

    // Access tokens.

    /// Stores a new token. `AlreadyExists` if the id or hash is taken, or
    /// the owner has a token of that name.
    async fn create_token(&self, token: AccessToken) -> Result<(), AuthStoreError>;
    /// The token with this hash, if any (expired ones too: the caller
    /// checks expiry).
    async fn find_token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<AccessToken>, AuthStoreError>;
    /// The tokens owned by `owner`, or every token.
    async fn list_tokens(
        &self,
        owner: Option<&Subject>,
    ) -> Result<Vec<AccessToken>, AuthStoreError>;
    /// Deletes a token. `NotFound` if missing.
    async fn delete_token(&self, id: &AccessTokenId) -> Result<(), AuthStoreError>;
    /// Records a use of the token at `at`. `NotFound` if missing.
    /// Implementations may skip the write when the stored value is recent.
    async fn touch_token(
        &self,
        id: &AccessTokenId,
        at: OffsetDateTime,
    ) -> Result<(), AuthStoreError>;

    // Role bindings.

    /// Adds a binding. `AlreadyExists` if present.
    async fn add_role_binding(&self, binding: RoleBinding) -> Result<(), AuthStoreError>;
    /// Removes a binding. `NotFound` if absent.
    async fn remove_role_binding(&self, binding: &RoleBinding) -> Result<(), AuthStoreError>;
    /// The bindings of `namespace`, or of every namespace.
    async fn list_role_bindings(
        &self,
        namespace: Option<&Namespace>,
    ) -> Result<Vec<RoleBinding>, AuthStoreError>;
    /// Removes every binding in `namespace` (when the namespace is deleted);
    /// returns how many there were.
    async fn delete_namespace_bindings(
        &self,
        namespace: &Namespace,
    ) -> Result<usize, AuthStoreError>;

    // Cluster role bindings.

    /// Adds a cluster binding. `AlreadyExists` if present.
    async fn add_cluster_role_binding(
        &self,
        binding: ClusterRoleBinding,
    ) -> Result<(), AuthStoreError>;
    /// Removes a cluster binding. `NotFound` if absent.
    async fn remove_cluster_role_binding(
        &self,
        binding: &ClusterRoleBinding,
    ) -> Result<(), AuthStoreError>;
    /// Every cluster binding.
    async fn list_cluster_role_bindings(&self) -> Result<Vec<ClusterRoleBinding>, AuthStoreError>;

    // Refresh tokens.

    /// Stores a new refresh token. `AlreadyExists` if the id or hash is
    /// taken.
    async fn create_refresh_token(&self, token: RefreshToken) -> Result<(), AuthStoreError>;
    /// The refresh token with this hash, if any (expired ones too).
    async fn find_refresh_token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<RefreshToken>, AuthStoreError>;
    /// The refresh tokens owned by `owner`, or every one.
    async fn list_refresh_tokens(
        &self,
        owner: Option<&Subject>,
    ) -> Result<Vec<RefreshToken>, AuthStoreError>;
    /// Deletes a refresh token. `NotFound` if missing.
    async fn delete_refresh_token(&self, id: &AccessTokenId) -> Result<(), AuthStoreError>;
    /// Records a use of the refresh token at `at`. `NotFound` if missing.
    async fn touch_refresh_token(
        &self,
        id: &AccessTokenId,
        at: OffsetDateTime,
    ) -> Result<(), AuthStoreError>;

    // Token-signing keys.

    /// The token CA, if one was made.
    async fn token_ca(&self) -> Result<Option<TokenCa>, AuthStoreError>;
    /// Stores the token CA. `AlreadyExists` if the store has one (replicas
    /// racing to make it: the loser reads the winner's).
    async fn create_token_ca(&self, ca: TokenCa) -> Result<(), AuthStoreError>;
    /// Stores a token-signing key. `AlreadyExists` if its id is taken.
    async fn add_token_signing_key(&self, key: TokenSigningKey) -> Result<(), AuthStoreError>;
    /// Every token-signing key, by (signs_from, key id).
    async fn list_token_signing_keys(&self) -> Result<Vec<TokenSigningKey>, AuthStoreError>;
    /// Deletes a token-signing key. `NotFound` if missing.
    async fn delete_token_signing_key(&self, kid: &KeyId) -> Result<(), AuthStoreError>;

    // Markers: one-time steps that must not run again once done, even when
    // what they made is deleted later (such as the bootstrap of `admin`).

    /// Whether the one-time step `name` was recorded.
    async fn marker_exists(&self, name: &str) -> Result<bool, AuthStoreError>;
    /// Records the one-time step `name`; recording it again changes nothing.
    async fn set_marker(&self, name: &str) -> Result<(), AuthStoreError>;

    /// The store's server secret: 32 bytes shared by every process on this
    /// store, which managed pull-secret tokens derive from (see
    /// [`SigningKey`](crate::SigningKey)). The first call stores
    /// `candidate`; every call returns what is stored, so replicas starting
    /// at once agree on one secret.
    async fn server_secret(&self, candidate: [u8; 32]) -> Result<[u8; 32], AuthStoreError>;

    /// Drops whatever this store caches: another process changed auth
    /// records. Stores without a cache keep the default, which does
    /// nothing; wrappers pass it on.
    fn invalidate_cache(&self) {}

    /// Whether [`apply_raising`](Self::apply_raising) records events in
    /// the change's own transaction: true for a store whose database also
    /// holds the registry's event outbox (the SQLite and PostgreSQL stores
    /// of `registry-storage`); wrappers pass it on. Default: false.
    fn records_events(&self) -> bool {
        false
    }

    /// Applies `change` and records `events` in the same transaction, so an
    /// acknowledged change always has its events and a failed one never
    /// does. Called only when [`records_events`](Self::records_events) is
    /// true; the default refuses.
    async fn apply_raising(
        &self,
        change: &AuthChange,
        events: &[NewEvent],
    ) -> Result<(), AuthStoreError> {
        let _ = (change, events);
        Err(AuthStoreError::backend(
            "this auth store records no events (records_events is false)",
        ))
    }
}
