//! Administration: namespaces, role bindings, cluster role bindings,
//! users and garbage collection. Every operation needs access control on,
//! a caller who logged in, and the admin right it names; changes are
//! written to the audit log (`target: "audit"`) as the caller's.

use registry_auth::{Action, ClusterRoleBinding, Password, Resource, RoleBinding, User, UserName};
use registry_core::Namespace;
use registry_storage::{GcOptions, GcReport, StorageError};
use time::OffsetDateTime;

use super::{Caller, Registry, RegistryError, RegistryResult};
use crate::auth::AuthState;

/// The shortest password `create_user` accepts.
pub const MIN_PASSWORD_LEN: usize = 8;

impl Registry {
    /// The auth state, once `caller` has logged in (admin operations need
    /// access control on and a known caller).
    pub(crate) fn logged_in(&self, caller: &Caller) -> RegistryResult<&AuthState> {
        let state = self.auth().ok_or(RegistryError::AccessControlOff)?;
        self.require_login(caller)?;
        Ok(state)
    }

    /// The auth state, once `caller` may do `action` on `resource`.
    pub(crate) fn admin(
        &self,
        caller: &Caller,
        action: Action,
        resource: &Resource<'_>,
    ) -> RegistryResult<&AuthState> {
        let state = self.logged_in(caller)?;
        self.authorize(caller, action, resource)?;
        Ok(state)
    }

    /// Reloads the authorizer after a change of bindings or subjects.
    pub(crate) async fn reload_bindings(&self, state: &AuthState) -> RegistryResult<()> {
        state
            .authorizer
            .reload(state.store.as_ref())
            .await
            .map_err(RegistryError::internal)
    }

    /// `NamespaceUnknown` unless the namespace exists.
    pub(crate) async fn existing_namespace(&self, ns: &Namespace) -> RegistryResult<()> {
        if self.metadata().namespace_exists(ns).await? {
            Ok(())
        } else {
            Err(RegistryError::NamespaceUnknown(ns.clone()))
        }
    }

    /// Every namespace (needs the right to create them: cluster-admin).
    pub async fn namespaces(&self, caller: &Caller) -> RegistryResult<Vec<Namespace>> {
        self.admin(caller, Action::CreateNamespace, &Resource::Cluster)?;
        Ok(self.metadata().list_namespaces().await?)
    }

    /// Creates a namespace (cluster-admin).
    pub async fn create_namespace(&self, caller: &Caller, ns: &Namespace) -> RegistryResult<()> {
        self.admin(caller, Action::CreateNamespace, &Resource::Cluster)?;
        match self.metadata().create_namespace(ns).await {
            Ok(()) => {}
            Err(StorageError::AlreadyExists { .. }) => {
                return Err(RegistryError::AlreadyExists(format!("namespace {ns}")))
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(target: "audit", actor = %caller.subject(), namespace = %ns, "namespace created");
        Ok(())
    }

    /// Deletes a namespace with its bindings and service accounts
    /// (cluster-admin).
    pub async fn delete_namespace(&self, caller: &Caller, ns: &Namespace) -> RegistryResult<()> {
        let state = self.admin(caller, Action::DeleteNamespace, &Resource::Cluster)?;
        match self.metadata().delete_namespace(ns).await {
            Ok(()) => {}
            Err(StorageError::NotFound { .. }) => {
                return Err(RegistryError::NamespaceUnknown(ns.clone()))
            }
            Err(e) => return Err(e.into()),
        }
        state.store.delete_namespace_bindings(ns).await?;
        for sa in state.store.list_service_accounts(Some(ns)).await? {
            state.store.delete_service_account(&sa.account).await?;
        }
        self.reload_bindings(state).await?;
        tracing::info!(target: "audit", actor = %caller.subject(), namespace = %ns, "namespace deleted");
        Ok(())
    }

    /// The role bindings of a namespace (needs `ManageBindings` there:
    /// registry-admin).
    pub async fn role_bindings(
        &self,
        caller: &Caller,
        ns: &Namespace,
    ) -> RegistryResult<Vec<RoleBinding>> {
        let state = self.admin(caller, Action::ManageBindings, &Resource::Namespace(ns))?;
        Ok(state.store.list_role_bindings(Some(ns)).await?)
    }

    /// Adds a role binding in an existing namespace (registry-admin there).
    pub async fn add_role_binding(
        &self,
        caller: &Caller,
        binding: RoleBinding,
    ) -> RegistryResult<()> {
        let resource = Resource::Namespace(&binding.namespace);
        let state = self.admin(caller, Action::ManageBindings, &resource)?;
        self.existing_namespace(&binding.namespace).await?;
        state.store.add_role_binding(binding.clone()).await?;
        self.reload_bindings(state).await?;
        tracing::info!(target: "audit", actor = %caller.subject(), namespace = %binding.namespace,
            role = binding.role.as_str(), subject = %binding.subject, "role binding added");
        Ok(())
    }

    /// Removes a role binding (registry-admin in its namespace).
    pub async fn remove_role_binding(
        &self,
        caller: &Caller,
        binding: &RoleBinding,
    ) -> RegistryResult<()> {
        let resource = Resource::Namespace(&binding.namespace);
        let state = self.admin(caller, Action::ManageBindings, &resource)?;
        state.store.remove_role_binding(binding).await?;
        self.reload_bindings(state).await?;
        tracing::info!(target: "audit", actor = %caller.subject(), namespace = %binding.namespace,
            role = binding.role.as_str(), subject = %binding.subject, "role binding removed");
        Ok(())
    }

    /// Every cluster role binding (cluster-admin).
    pub async fn cluster_role_bindings(
        &self,
        caller: &Caller,
    ) -> RegistryResult<Vec<ClusterRoleBinding>> {
        let state = self.admin(caller, Action::ManageClusterBindings, &Resource::Cluster)?;
        Ok(state.store.list_cluster_role_bindings().await?)
    }

    /// Adds a cluster role binding (cluster-admin).
    pub async fn add_cluster_role_binding(
        &self,
        caller: &Caller,
        binding: ClusterRoleBinding,
    ) -> RegistryResult<()> {
        let state = self.admin(caller, Action::ManageClusterBindings, &Resource::Cluster)?;
        state
            .store
            .add_cluster_role_binding(binding.clone())
            .await?;
        self.reload_bindings(state).await?;
        tracing::info!(target: "audit", actor = %caller.subject(), role = binding.role.as_str(),
            subject = %binding.subject, "cluster role binding added");
        Ok(())
    }

    /// Removes a cluster role binding (cluster-admin; the last
    /// cluster-admin stays).
    pub async fn remove_cluster_role_binding(
        &self,
        caller: &Caller,
        binding: &ClusterRoleBinding,
    ) -> RegistryResult<()> {
        let state = self.admin(caller, Action::ManageClusterBindings, &Resource::Cluster)?;
        state.store.remove_cluster_role_binding(binding).await?;
        self.reload_bindings(state).await?;
        tracing::info!(target: "audit", actor = %caller.subject(), role = binding.role.as_str(),
            subject = %binding.subject, "cluster role binding removed");
        Ok(())
    }

    /// Every local user (cluster-admin).
    pub async fn users(&self, caller: &Caller) -> RegistryResult<Vec<User>> {
        let state = self.admin(caller, Action::ManageUsers, &Resource::Cluster)?;
        Ok(state.store.list_users().await?)
    }

    /// Creates a local user with a password of at least
    /// [`MIN_PASSWORD_LEN`] characters (cluster-admin). The password is
    /// hashed (argon2id) off the async threads.
    pub async fn create_user(
        &self,
        caller: &Caller,
        name: UserName,
        password: Password,
    ) -> RegistryResult<()> {
        let state = self.admin(caller, Action::ManageUsers, &Resource::Cluster)?;
        if password.expose().len() < MIN_PASSWORD_LEN {
            return Err(RegistryError::invalid_name(
                "password",
                format!("it must have at least {MIN_PASSWORD_LEN} characters"),
            ));
        }
        let hasher = state.hasher.clone();
        let hash = tokio::task::spawn_blocking(move || hasher.hash(&password))
            .await
            .map_err(RegistryError::internal)?
            .map_err(RegistryError::internal)?;
        state
            .store
            .create_user(User {
                name: name.clone(),
                password_hash: Some(hash),
                created: OffsetDateTime::now_utc(),
            })
            .await?;
        tracing::info!(target: "audit", actor = %caller.subject(), user = %name, "user created");
        Ok(())
    }

    /// Deletes a local user (cluster-admin); their tokens stop working.
    pub async fn delete_user(&self, caller: &Caller, name: &UserName) -> RegistryResult<()> {
        let state = self.admin(caller, Action::ManageUsers, &Resource::Cluster)?;
        state.store.delete_user(name).await?;
        self.reload_bindings(state).await?;
        tracing::info!(target: "audit", actor = %caller.subject(), user = %name, "user deleted");
        Ok(())
    }

    /// Runs garbage collection now (needs `Prune`: cluster-admin); see
    /// [`Registry::collect_garbage`].
    pub async fn prune(&self, caller: &Caller, options: GcOptions) -> RegistryResult<GcReport> {
        self.admin(caller, Action::Prune, &Resource::Cluster)?;
        tracing::info!(target: "audit", actor = %caller.subject(), dry_run = options.dry_run,
            grace_seconds = options.grace_period.as_secs(), "prune started");
        let report = self.collect_garbage(options).await?;
        tracing::info!(target: "audit", actor = %caller.subject(), dry_run = report.dry_run,
            blobs_deleted = report.blobs_deleted, bytes_freed = report.bytes_freed,
            uploads_expired = report.uploads_expired, "prune finished");
        Ok(report)
    }
}
