//! [`CachedAuthStore`]: an in-memory read cache for the lookups every
//! authenticated request makes (a user by name, an access or refresh token
//! by hash, a service account), in front of any [`AuthStore`].
//!
//! Writes through the wrapper empty the cache, so this process sees its own
//! changes at once; another replica's changes are seen once an entry's time
//! to live has passed. A generation counter keeps a read that raced with a
//! write from caching what it read before the write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use registry_core::{Namespace, NewEvent};
use time::OffsetDateTime;

use crate::change::AuthChange;
use crate::credentials::{AccessToken, AccessTokenId, PasswordHash, TokenHash};
use crate::refresh::RefreshToken;
use crate::role::{ClusterRoleBinding, RoleBinding};
use crate::store::{AuthStore, AuthStoreError, ServiceAccount, User};
use crate::subject::{ServiceAccountRef, Subject, UserName};
use crate::token::{KeyId, TokenCa, TokenSigningKey};

/// Default time to live of cached records.
pub const DEFAULT_AUTH_CACHE_TTL: Duration = Duration::from_secs(5);
/// Most records per map; a full map is emptied.
const MAX_ENTRIES: usize = 16_384;

#[derive(Default)]
struct Maps {
    users: HashMap<UserName, (User, Instant)>,
    tokens: HashMap<TokenHash, (AccessToken, Instant)>,
    refresh_tokens: HashMap<TokenHash, (RefreshToken, Instant)>,
    service_accounts: HashMap<ServiceAccountRef, (ServiceAccount, Instant)>,
}

impl Maps {
    fn clear(&mut self) {
        self.users.clear();
        self.tokens.clear();
        self.refresh_tokens.clear();
        self.service_accounts.clear();
    }
}

fn fresh<V: Clone>(entry: Option<&(V, Instant)>, now: Instant) -> Option<V> {
    entry
        .filter(|(_, expires)| *expires > now)
        .map(|(v, _)| v.clone())
}

fn insert<K: std::hash::Hash + Eq, V>(
    map: &mut HashMap<K, (V, Instant)>,
    k: K,
    v: V,
    expires: Instant,
) {
    if map.len() >= MAX_ENTRIES {
        map.clear();
    }
    map.insert(k, (v, expires));
}

/// An [`AuthStore`] that caches the per-request lookups of another one.
pub struct CachedAuthStore {
    inner: Arc<dyn AuthStore>,
    ttl: Duration,
    generation: AtomicU64,
    maps: Mutex<Maps>,
}

impl std::fmt::Debug for CachedAuthStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedAuthStore")
            .field("inner", &self.inner)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl CachedAuthStore {
    /// Caches `inner` for [`DEFAULT_AUTH_CACHE_TTL`].
    pub fn new(inner: Arc<dyn AuthStore>) -> Self {
        Self::with_ttl(inner, DEFAULT_AUTH_CACHE_TTL)
    }

    /// Caches `inner` for `ttl`: the bound on how long another replica's
    /// change (a deleted token, a new password) may go unseen here.
    pub fn with_ttl(inner: Arc<dyn AuthStore>, ttl: Duration) -> Self {
        CachedAuthStore {
            inner,
            ttl,
            generation: AtomicU64::new(0),
            maps: Mutex::new(Maps::default()),
        }
    }

    fn maps(&self) -> MutexGuard<'_, Maps> {
        // The maps only ever hold valid entries, so a poisoned lock is fine.
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a write and empties the cache; the generation moves before and
    /// after, so no read spanning the write caches its result.
    async fn write<T>(
        &self,
        op: impl std::future::Future<Output = Result<T, AuthStoreError>>,
    ) -> Result<T, AuthStoreError> {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let result = op.await;
        let mut maps = self.maps();
        maps.clear();
        self.generation.fetch_add(1, Ordering::SeqCst);
        result
    }

    fn fill(&self, generation: u64, fill: impl FnOnce(&mut Maps, Instant)) {
        let mut maps = self.maps();
        if self.generation.load(Ordering::SeqCst) == generation {
            // A time to live too large for the clock means "until a write".
            let now = Instant::now();
            let expires = now
                .checked_add(self.ttl)
                .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
            fill(&mut maps, expires);
        }
    }
}

#[async_trait]
impl AuthStore for CachedAuthStore {
    fn invalidate_cache(&self) {
        // As a write does: a read spanning this does not cache.
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.maps().clear();
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.inner.invalidate_cache();
    }

    async fn create_user(&self, user: User) -> Result<(), AuthStoreError> {
        self.write(self.inner.create_user(user)).await
    }

    fn records_events(&self) -> bool {
        self.inner.records_events()
    }

    async fn apply_raising(
        &self,
        change: &AuthChange,
        events: &[NewEvent],
    ) -> Result<(), AuthStoreError> {
        self.write(self.inner.apply_raising(change, events)).await
    }

    async fn get_user(&self, name: &UserName) -> Result<Option<User>, AuthStoreError> {
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some(user) = fresh(self.maps().users.get(name), Instant::now()) {
            return Ok(Some(user));
        }
        let user = self.inner.get_user(name).await?;
        if let Some(u) = &user {
            self.fill(generation, |m, exp| {
                insert(&mut m.users, name.clone(), u.clone(), exp)
            });
        }
        Ok(user)
    }

    async fn list_users(&self) -> Result<Vec<User>, AuthStoreError> {
        self.inner.list_users().await
    }

    async fn delete_user(&self, name: &UserName) -> Result<(), AuthStoreError> {
        self.write(self.inner.delete_user(name)).await
    }

    async fn set_password(
        &self,
        name: &UserName,
        hash: Option<PasswordHash>,
    ) -> Result<(), AuthStoreError> {
        self.write(self.inner.set_password(name, hash)).await
    }

    async fn create_service_account(&self, sa: ServiceAccount) -> Result<(), AuthStoreError> {
        self.write(self.inner.create_service_account(sa)).await
    }

    async fn get_service_account(
        &self,
        sa: &ServiceAccountRef,
    ) -> Result<Option<ServiceAccount>, AuthStoreError> {
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some(found) = fresh(self.maps().service_accounts.get(sa), Instant::now()) {
            return Ok(Some(found));
        }
        let found = self.inner.get_service_account(sa).await?;
        if let Some(record) = &found {
            self.fill(generation, |m, exp| {
                insert(&mut m.service_accounts, sa.clone(), record.clone(), exp)
            });
        }
        Ok(found)
    }

    async fn list_service_accounts(
        &self,
        namespace: Option<&Namespace>,
    ) -> Result<Vec<ServiceAccount>, AuthStoreError> {
        self.inner.list_service_accounts(namespace).await
    }

    async fn delete_service_account(&self, sa: &ServiceAccountRef) -> Result<(), AuthStoreError> {
        self.write(self.inner.delete_service_account(sa)).await
    }

    async fn create_token(&self, token: AccessToken) -> Result<(), AuthStoreError> {
        self.write(self.inner.create_token(token)).await
    }

    async fn find_token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<AccessToken>, AuthStoreError> {
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some(token) = fresh(self.maps().tokens.get(hash), Instant::now()) {
            return Ok(Some(token));
        }
        let token = self.inner.find_token_by_hash(hash).await?;
        if let Some(t) = &token {
            self.fill(generation, |m, exp| {
                insert(&mut m.tokens, *hash, t.clone(), exp)
            });
        }
        Ok(token)
    }

    async fn list_tokens(
        &self,
        owner: Option<&Subject>,
    ) -> Result<Vec<AccessToken>, AuthStoreError> {
        self.inner.list_tokens(owner).await
    }

    async fn delete_token(&self, id: &AccessTokenId) -> Result<(), AuthStoreError> {
        self.write(self.inner.delete_token(id)).await
    }

    async fn touch_token(
        &self,
        id: &AccessTokenId,
        at: OffsetDateTime,
    ) -> Result<(), AuthStoreError> {
        self.inner.touch_token(id, at).await?;
        // Keep cached copies current, so callers that throttle touches by
        // `last_used` see this one.
        for (token, _) in self.maps().tokens.values_mut() {
            if &token.id == id && token.last_used.is_none_or(|t| t < at) {
                token.last_used = Some(at);
            }
        }
        Ok(())
    }

    async fn add_role_binding(&self, binding: RoleBinding) -> Result<(), AuthStoreError> {
        self.inner.add_role_binding(binding).await
    }

    async fn remove_role_binding(&self, binding: &RoleBinding) -> Result<(), AuthStoreError> {
        self.inner.remove_role_binding(binding).await
    }

    async fn list_role_bindings(
        &self,
        namespace: Option<&Namespace>,
    ) -> Result<Vec<RoleBinding>, AuthStoreError> {
        self.inner.list_role_bindings(namespace).await
    }

    async fn delete_namespace_bindings(
        &self,
        namespace: &Namespace,
    ) -> Result<usize, AuthStoreError> {
        self.inner.delete_namespace_bindings(namespace).await
    }

    async fn add_cluster_role_binding(
        &self,
        binding: ClusterRoleBinding,
    ) -> Result<(), AuthStoreError> {
        self.inner.add_cluster_role_binding(binding).await
    }

    async fn remove_cluster_role_binding(
        &self,
        binding: &ClusterRoleBinding,
    ) -> Result<(), AuthStoreError> {
        self.inner.remove_cluster_role_binding(binding).await
    }

    async fn list_cluster_role_bindings(&self) -> Result<Vec<ClusterRoleBinding>, AuthStoreError> {
        self.inner.list_cluster_role_bindings().await
    }

    async fn create_refresh_token(&self, token: RefreshToken) -> Result<(), AuthStoreError> {
        self.write(self.inner.create_refresh_token(token)).await
    }

    async fn find_refresh_token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<RefreshToken>, AuthStoreError> {
        let generation = self.generation.load(Ordering::SeqCst);
        if let Some(token) = fresh(self.maps().refresh_tokens.get(hash), Instant::now()) {
            return Ok(Some(token));
        }
        let token = self.inner.find_refresh_token_by_hash(hash).await?;
        if let Some(t) = &token {
            self.fill(generation, |m, exp| {
                insert(&mut m.refresh_tokens, *hash, t.clone(), exp)
            });
        }
        Ok(token)
    }

    async fn list_refresh_tokens(
        &self,
        owner: Option<&Subject>,
    ) -> Result<Vec<RefreshToken>, AuthStoreError> {
        self.inner.list_refresh_tokens(owner).await
    }

    async fn delete_refresh_token(&self, id: &AccessTokenId) -> Result<(), AuthStoreError> {
        self.write(self.inner.delete_refresh_token(id)).await
    }

    async fn touch_refresh_token(
        &self,
        id: &AccessTokenId,
        at: OffsetDateTime,
    ) -> Result<(), AuthStoreError> {
        self.inner.touch_refresh_token(id, at).await?;
        for (token, _) in self.maps().refresh_tokens.values_mut() {
            if &token.id == id && token.last_used.is_none_or(|t| t < at) {
                token.last_used = Some(at);
            }
        }
        Ok(())
    }

    // The token issuer keeps its own copy of the keys: no caching here.

    async fn token_ca(&self) -> Result<Option<TokenCa>, AuthStoreError> {
        self.inner.token_ca().await
    }

    async fn create_token_ca(&self, ca: TokenCa) -> Result<(), AuthStoreError> {
        self.inner.create_token_ca(ca).await
    }

    async fn add_token_signing_key(&self, key: TokenSigningKey) -> Result<(), AuthStoreError> {
        self.inner.add_token_signing_key(key).await
    }

    async fn list_token_signing_keys(&self) -> Result<Vec<TokenSigningKey>, AuthStoreError> {
        self.inner.list_token_signing_keys().await
    }

    async fn delete_token_signing_key(&self, kid: &KeyId) -> Result<(), AuthStoreError> {
        self.inner.delete_token_signing_key(kid).await
    }

    async fn marker_exists(&self, name: &str) -> Result<bool, AuthStoreError> {
        self.inner.marker_exists(name).await
    }

    async fn server_secret(&self, candidate: [u8; 32]) -> Result<[u8; 32], AuthStoreError> {
        self.inner.server_secret(candidate).await
    }

    async fn set_marker(&self, name: &str) -> Result<(), AuthStoreError> {
        self.inner.set_marker(name).await
    }
}
