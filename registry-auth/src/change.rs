//! [`AuthChange`]: an auth-store write that raises events, so that a store
//! keeping the registry's outbox in its own database can apply it and
//! record the events in one transaction
//! ([`AuthStore::apply_raising`]).

use crate::credentials::{AccessToken, AccessTokenId, PasswordHash};
use crate::role::{ClusterRoleBinding, RoleBinding};
use crate::store::{AuthStore, AuthStoreError, ServiceAccount, User};
use crate::subject::{ServiceAccountRef, UserName};

/// One auth-store write, as the admin operations make them. Each is the
/// [`AuthStore`] method of the same name.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AuthChange {
    /// [`AuthStore::create_user`].
    CreateUser(User),
    /// [`AuthStore::delete_user`].
    DeleteUser(UserName),
    /// [`AuthStore::set_password`].
    SetPassword(UserName, Option<PasswordHash>),
    /// [`AuthStore::create_service_account`].
    CreateServiceAccount(ServiceAccount),
    /// [`AuthStore::delete_service_account`].
    DeleteServiceAccount(ServiceAccountRef),
    /// [`AuthStore::create_token`].
    CreateToken(AccessToken),
    /// [`AuthStore::delete_token`].
    DeleteToken(AccessTokenId),
    /// [`AuthStore::delete_refresh_token`].
    DeleteRefreshToken(AccessTokenId),
    /// [`AuthStore::add_role_binding`].
    AddRoleBinding(RoleBinding),
    /// [`AuthStore::remove_role_binding`].
    RemoveRoleBinding(RoleBinding),
    /// [`AuthStore::add_cluster_role_binding`].
    AddClusterRoleBinding(ClusterRoleBinding),
    /// [`AuthStore::remove_cluster_role_binding`].
    RemoveClusterRoleBinding(ClusterRoleBinding),
}

impl AuthChange {
    /// Applies the change through the plain [`AuthStore`] method, without
    /// events.
    pub async fn apply(&self, store: &dyn AuthStore) -> Result<(), AuthStoreError> {
        match self {
            AuthChange::CreateUser(user) => store.create_user(user.clone()).await,
            AuthChange::DeleteUser(name) => store.delete_user(name).await,
            AuthChange::SetPassword(name, hash) => store.set_password(name, hash.clone()).await,
            AuthChange::CreateServiceAccount(sa) => store.create_service_account(sa.clone()).await,
            AuthChange::DeleteServiceAccount(sa) => store.delete_service_account(sa).await,
            AuthChange::CreateToken(token) => store.create_token(token.clone()).await,
            AuthChange::DeleteToken(id) => store.delete_token(id).await,
            AuthChange::DeleteRefreshToken(id) => store.delete_refresh_token(id).await,
            AuthChange::AddRoleBinding(b) => store.add_role_binding(b.clone()).await,
            AuthChange::RemoveRoleBinding(b) => store.remove_role_binding(b).await,
            AuthChange::AddClusterRoleBinding(b) => store.add_cluster_role_binding(b.clone()).await,
            AuthChange::RemoveClusterRoleBinding(b) => store.remove_cluster_role_binding(b).await,
        }
    }
}
