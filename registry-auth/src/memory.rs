//! [`MemoryAuthStore`]: an [`AuthStore`] in process memory, for tests and
//! embedding.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use registry_core::Namespace;
use time::OffsetDateTime;

use crate::credentials::{AccessToken, AccessTokenId, PasswordHash, TokenHash};
use crate::refresh::RefreshToken;
use crate::role::{ClusterRoleBinding, RoleBinding};
use crate::store::{AuthStore, AuthStoreError, ServiceAccount, User};
use crate::subject::{ServiceAccountRef, Subject, UserName};
use crate::token::{KeyId, TokenCa, TokenSigningKey};

mod hashed;

use self::hashed::HashedTable;

#[derive(Debug, Default)]
struct State {
    users: BTreeMap<UserName, User>,
    service_accounts: BTreeMap<ServiceAccountRef, ServiceAccount>,
    tokens: HashedTable<AccessToken>,
    role_bindings: BTreeSet<RoleBinding>,
    cluster_role_bindings: BTreeSet<ClusterRoleBinding>,
    refresh_tokens: HashedTable<RefreshToken>,
    token_ca: Option<TokenCa>,
    signing_keys: BTreeMap<KeyId, TokenSigningKey>,
    markers: BTreeSet<String>,
    server_secret: Option<[u8; 32]>,
}

impl State {
    /// Removes everything that belongs to `subject` (the cascade of a
    /// user or service-account deletion).
    fn cascade(&mut self, subject: &Subject) {
        self.tokens.remove_owned_by(subject);
        self.refresh_tokens.remove_owned_by(subject);
        self.role_bindings.retain(|b| b.subject != *subject);
        self.cluster_role_bindings.retain(|b| b.subject != *subject);
    }
}

/// An [`AuthStore`] held in memory behind one lock. Nothing survives the
/// process. Lock hold times are short and never span an `.await`.
#[derive(Debug, Default)]
pub struct MemoryAuthStore {
    state: RwLock<State>,
}

impl MemoryAuthStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryAuthStore::default()
    }

    fn read(&self) -> Result<RwLockReadGuard<'_, State>, AuthStoreError> {
        self.state
            .read()
            .map_err(|_| AuthStoreError::backend("memory auth store lock poisoned"))
    }

    fn write(&self) -> Result<RwLockWriteGuard<'_, State>, AuthStoreError> {
        self.state
            .write()
            .map_err(|_| AuthStoreError::backend("memory auth store lock poisoned"))
    }
}

#[async_trait]
impl AuthStore for MemoryAuthStore {
    async fn create_user(&self, user: User) -> Result<(), AuthStoreError> {
        let mut s = self.write()?;
        if s.users.contains_key(&user.name) {
            return Err(AuthStoreError::already_exists(format_args!(
                "user {}",
                user.name
            )));
        }
        s.users.insert(user.name.clone(), user);
        Ok(())
    }

    async fn get_user(&self, name: &UserName) -> Result<Option<User>, AuthStoreError> {
        Ok(self.read()?.users.get(name).cloned())
    }

    async fn list_users(&self) -> Result<Vec<User>, AuthStoreError> {
        Ok(self.read()?.users.values().cloned().collect())
    }

    async fn delete_user(&self, name: &UserName) -> Result<(), AuthStoreError> {
        let mut s = self.write()?;
        if s.users.remove(name).is_none() {
            return Err(AuthStoreError::not_found(format_args!("user {name}")));
        }
        s.cascade(&Subject::User(name.clone()));
        Ok(())
    }

    async fn set_password(
        &self,
        name: &UserName,
        hash: Option<PasswordHash>,
    ) -> Result<(), AuthStoreError> {
        let mut s = self.write()?;
        let user = s
            .users
            .get_mut(name)
            .ok_or_else(|| AuthStoreError::not_found(format_args!("user {name}")))?;
        user.password_hash = hash;
        Ok(())
    }

    async fn create_service_account(&self, sa: ServiceAccount) -> Result<(), AuthStoreError> {
        let mut s = self.write()?;
        if s.service_accounts.contains_key(&sa.account) {
            return Err(AuthStoreError::already_exists(&sa.account));
        }
        s.service_accounts.insert(sa.account.clone(), sa);
        Ok(())
    }

    async fn get_service_account(
        &self,
        sa: &ServiceAccountRef,
    ) -> Result<Option<ServiceAccount>, AuthStoreError> {
        Ok(self.read()?.service_accounts.get(sa).cloned())
    }

    async fn list_service_accounts(
        &self,
        namespace: Option<&Namespace>,
    ) -> Result<Vec<ServiceAccount>, AuthStoreError> {
        Ok(self
            .read()?
            .service_accounts
            .values()
            .filter(|sa| namespace.is_none_or(|ns| sa.account.namespace == *ns))
            .cloned()
            .collect())
    }

    async fn delete_service_account(&self, sa: &ServiceAccountRef) -> Result<(), AuthStoreError> {
        let mut s = self.write()?;
        if s.service_accounts.remove(sa).is_none() {
            return Err(AuthStoreError::not_found(sa));
        }
        s.cascade(&Subject::ServiceAccount(sa.clone()));
        Ok(())
    }

    async fn create_token(&self, token: AccessToken) -> Result<(), AuthStoreError> {
        let mut s = self.write()?;
        if s.tokens.holds(&token) {
            return Err(AuthStoreError::already_exists(format_args!(
                "token {}",
                token.id
            )));
        }
        if s.tokens
            .values()
            .any(|t| t.owner == token.owner && t.name == token.name)
        {
            return Err(AuthStoreError::already_exists(format_args!(
                "token {} of {}",
                token.name, token.owner
            )));
        }
        s.tokens.insert(token);
        Ok(())
    }

    async fn find_token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<AccessToken>, AuthStoreError> {
        Ok(self.read()?.tokens.find_by_hash(hash))
    }

    async fn list_tokens(
        &self,
        owner: Option<&Subject>,
    ) -> Result<Vec<AccessToken>, AuthStoreError> {
        Ok(self.read()?.tokens.list(owner))
    }

    async fn delete_token(&self, id: &AccessTokenId) -> Result<(), AuthStoreError> {
        self.write()?
            .tokens
            .remove(id)
            .ok_or_else(|| AuthStoreError::not_found(format_args!("token {id}")))
    }

    async fn touch_token(
        &self,
        id: &AccessTokenId,
        at: OffsetDateTime,
    ) -> Result<(), AuthStoreError> {
        self.write()?
            .tokens
            .touch(id, at)
            .ok_or_else(|| AuthStoreError::not_found(format_args!("token {id}")))
    }

    async fn add_role_binding(&self, binding: RoleBinding) -> Result<(), AuthStoreError> {
        let mut s = self.write()?;
        if s.role_bindings.contains(&binding) {
            return Err(AuthStoreError::already_exists(format_args!(
                "binding of {} to {} in {}",
                binding.role, binding.subject, binding.namespace
            )));
        }
        s.role_bindings.insert(binding);
        Ok(())
    }

    async fn remove_role_binding(&self, binding: &RoleBinding) -> Result<(), AuthStoreError> {
        if self.write()?.role_bindings.remove(binding) {
            Ok(())
        } else {
            Err(AuthStoreError::not_found(format_args!(
                "binding of {} to {} in {}",
                binding.role, binding.subject, binding.namespace
            )))
        }
    }

    async fn list_role_bindings(
        &self,
        namespace: Option<&Namespace>,
    ) -> Result<Vec<RoleBinding>, AuthStoreError> {
        Ok(self
            .read()?
            .role_bindings
            .iter()
            .filter(|b| namespace.is_none_or(|ns| b.namespace == *ns))
            .cloned()
            .collect())
    }

    async fn delete_namespace_bindings(
        &self,
        namespace: &Namespace,
    ) -> Result<usize, AuthStoreError> {
        let mut s = self.write()?;
        let before = s.role_bindings.len();
        s.role_bindings.retain(|b| b.namespace != *namespace);
        Ok(before - s.role_bindings.len())
    }

    async fn add_cluster_role_binding(
        &self,
        binding: ClusterRoleBinding,
    ) -> Result<(), AuthStoreError> {
        let mut s = self.write()?;
        if s.cluster_role_bindings.contains(&binding) {
            return Err(AuthStoreError::already_exists(format_args!(
                "cluster binding of {} to {}",
                binding.role, binding.subject
            )));
        }
        s.cluster_role_bindings.insert(binding);
        Ok(())
    }

    async fn remove_cluster_role_binding(
        &self,
        binding: &ClusterRoleBinding,
    ) -> Result<(), AuthStoreError> {
        if self.write()?.cluster_role_bindings.remove(binding) {
            Ok(())
        } else {
            Err(AuthStoreError::not_found(format_args!(
                "cluster binding of {} to {}",
                binding.role, binding.subject
            )))
        }
    }

    async fn list_cluster_role_bindings(&self) -> Result<Vec<ClusterRoleBinding>, AuthStoreError> {
        Ok(self.read()?.cluster_role_bindings.iter().cloned().collect())
    }

    async fn create_refresh_token(&self, token: RefreshToken) -> Result<(), AuthStoreError> {
        let mut s = self.write()?;
        if s.refresh_tokens.holds(&token) {
            return Err(AuthStoreError::already_exists(format_args!(
                "refresh token {}",
                token.id
            )));
        }
        s.refresh_tokens.insert(token);
        Ok(())
    }

    async fn find_refresh_token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<RefreshToken>, AuthStoreError> {
        Ok(self.read()?.refresh_tokens.find_by_hash(hash))
    }

    async fn list_refresh_tokens(
        &self,
        owner: Option<&Subject>,
    ) -> Result<Vec<RefreshToken>, AuthStoreError> {
        Ok(self.read()?.refresh_tokens.list(owner))
    }

    async fn delete_refresh_token(&self, id: &AccessTokenId) -> Result<(), AuthStoreError> {
        self.write()?
            .refresh_tokens
            .remove(id)
            .ok_or_else(|| AuthStoreError::not_found(format_args!("refresh token {id}")))
    }

    async fn touch_refresh_token(
        &self,
        id: &AccessTokenId,
        at: OffsetDateTime,
    ) -> Result<(), AuthStoreError> {
        self.write()?
            .refresh_tokens
            .touch(id, at)
            .ok_or_else(|| AuthStoreError::not_found(format_args!("refresh token {id}")))
    }

    async fn token_ca(&self) -> Result<Option<TokenCa>, AuthStoreError> {
        Ok(self.read()?.token_ca.clone())
    }

    async fn create_token_ca(&self, ca: TokenCa) -> Result<(), AuthStoreError> {
        let mut s = self.write()?;
        if s.token_ca.is_some() {
            return Err(AuthStoreError::already_exists("token CA"));
        }
        s.token_ca = Some(ca);
        Ok(())
    }

    async fn add_token_signing_key(&self, key: TokenSigningKey) -> Result<(), AuthStoreError> {
        let mut s = self.write()?;
        if s.signing_keys.contains_key(&key.kid) {
            return Err(AuthStoreError::already_exists(format_args!(
                "token-signing key {}",
                key.kid
            )));
        }
        s.signing_keys.insert(key.kid.clone(), key);
        Ok(())
    }

    async fn list_token_signing_keys(&self) -> Result<Vec<TokenSigningKey>, AuthStoreError> {
        let mut keys: Vec<TokenSigningKey> = self.read()?.signing_keys.values().cloned().collect();
        keys.sort_by(|a, b| (a.signs_from, &a.kid).cmp(&(b.signs_from, &b.kid)));
        Ok(keys)
    }

    async fn delete_token_signing_key(&self, kid: &KeyId) -> Result<(), AuthStoreError> {
        match self.write()?.signing_keys.remove(kid) {
            Some(_) => Ok(()),
            None => Err(AuthStoreError::not_found(format_args!(
                "token-signing key {kid}"
            ))),
        }
    }

    async fn marker_exists(&self, name: &str) -> Result<bool, AuthStoreError> {
        Ok(self.read()?.markers.contains(name))
    }

    async fn server_secret(&self, candidate: [u8; 32]) -> Result<[u8; 32], AuthStoreError> {
        Ok(*self.write()?.server_secret.get_or_insert(candidate))
    }

    async fn set_marker(&self, name: &str) -> Result<(), AuthStoreError> {
        self.write()?.markers.insert(name.to_owned());
        Ok(())
    }
}
