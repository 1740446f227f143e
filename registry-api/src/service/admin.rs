//! Administration: namespaces, role bindings, cluster role bindings,
//! users and garbage collection. Every operation needs access control on,
//! a caller who logged in, and the admin right it names; changes are
//! written to the audit log (`target: "audit"`) as the caller's.

use registry_auth::{
    Action, AuthChange, ClusterRole, ClusterRoleBinding, Password, Resource, RoleBinding, Subject,
    TokenSource, User, UserName,
};
use registry_core::Namespace;
use registry_storage::{EventType, GcOptions, GcReport, StorageError};
use serde_json::json;
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
        self.logged_in(caller)?;
        self.authorize_as(
            caller,
            Action::CreateNamespace,
            &Resource::Cluster,
            "list namespaces",
        )?;
        Ok(self.metadata().list_namespaces().await?)
    }

    /// Creates a namespace (cluster-admin).
    pub async fn create_namespace(&self, caller: &Caller, ns: &Namespace) -> RegistryResult<()> {
        self.admin(caller, Action::CreateNamespace, &Resource::Cluster)?;
        let events = self.raise(
            caller,
            EventType::NamespaceCreated,
            Some(ns),
            ns.as_str(),
            json!({}),
        );
        match self
            .metadata()
            .create_namespace_raising(ns, events.clone())
            .await
        {
            Ok(()) => self.raised(&events),
            Err(StorageError::AlreadyExists { .. }) => {
                return Err(RegistryError::AlreadyExists(format!("namespace {ns}")))
            }
            Err(e) => return Err(e.into()),
        }
        tracing::info!(target: "audit", actor = %caller.subject(), namespace = %ns, "namespace created");
        Ok(())
    }

    /// Deletes a namespace with its bindings, service accounts and policy
    /// (cluster-admin). While it holds ImageStreams only with `cascade`,
    /// which deletes them too; their space returns at the next prune.
    pub async fn delete_namespace(
        &self,
        caller: &Caller,
        ns: &Namespace,
        cascade: bool,
    ) -> RegistryResult<()> {
        let state = self.admin(caller, Action::DeleteNamespace, &Resource::Cluster)?;
        if !cascade {
            let held = self.metadata().list_repositories(Some(ns), None, 1).await?;
            if let Some(repo) = held.first() {
                return Err(RegistryError::Conflict(format!(
                    "namespace {ns} holds ImageStreams ({repo} among them); delete them first, \
                     or delete the namespace with them (?cascade=true, registryctl namespace \
                     delete --cascade)"
                )));
            }
        }
        let events = self.raise(
            caller,
            EventType::NamespaceDeleted,
            Some(ns),
            ns.as_str(),
            json!({ "cascade": cascade }),
        );
        match self
            .metadata()
            .delete_namespace_raising(ns, events.clone())
            .await
        {
            Ok(()) => self.raised(&events),
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
        self.existing_namespace(ns).await?;
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
        let data = json!({ "role": binding.role.as_str(), "subject": binding.subject.to_string() });
        let ns = Some(&binding.namespace);
        let subject = binding.subject.to_string();
        let events = self.raise(caller, EventType::RoleBindingCreated, ns, subject, data);
        self.apply_auth_change(state, AuthChange::AddRoleBinding(binding.clone()), events)
            .await?;
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
        let data = json!({ "role": binding.role.as_str(), "subject": binding.subject.to_string() });
        let ns = Some(&binding.namespace);
        let subject = binding.subject.to_string();
        let events = self.raise(caller, EventType::RoleBindingDeleted, ns, subject, data);
        self.apply_auth_change(
            state,
            AuthChange::RemoveRoleBinding(binding.clone()),
            events,
        )
        .await?;
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
        let data = json!({ "role": binding.role.as_str(), "subject": binding.subject.to_string(), "cluster": true });
        let subject = binding.subject.to_string();
        let events = self.raise(caller, EventType::RoleBindingCreated, None, subject, data);
        let change = AuthChange::AddClusterRoleBinding(binding.clone());
        self.apply_auth_change(state, change, events).await?;
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
        keep_a_cluster_admin(state, |b| b == binding).await?;
        let data = json!({ "role": binding.role.as_str(), "subject": binding.subject.to_string(), "cluster": true });
        let subject = binding.subject.to_string();
        let events = self.raise(caller, EventType::RoleBindingDeleted, None, subject, data);
        let change = AuthChange::RemoveClusterRoleBinding(binding.clone());
        self.apply_auth_change(state, change, events).await?;
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
        let hash = hash_new_password(state, password).await?;
        let data = json!({ "user": name.as_str() });
        let events = self.raise(caller, EventType::UserCreated, None, name.as_str(), data);
        let user = User {
            name: name.clone(),
            password_hash: Some(hash),
            created: OffsetDateTime::now_utc(),
        };
        self.apply_auth_change(state, AuthChange::CreateUser(user), events)
            .await?;
        tracing::info!(target: "audit", actor = %caller.subject(), user = %name, "user created");
        Ok(())
    }

    /// Sets a local user's password: any user's for a cluster-admin
    /// (`current` not needed), one's own with the `current` password. The
    /// old password stops working at once; registry tokens obtained with it
    /// live out their few minutes.
    pub async fn set_password(
        &self,
        caller: &Caller,
        name: &UserName,
        current: Option<Password>,
        password: Password,
    ) -> RegistryResult<()> {
        let state = self.logged_in(caller)?;
        let own = caller.subject().as_user() == Some(name);
        match current {
            Some(current) if own => {
                // Counted like a login: guessing here is throttled too.
                let checked = state
                    .local
                    .basic_from(name.as_str(), current.expose(), None)
                    .await;
                if !matches!(checked, Ok((_, TokenSource::Password))) {
                    tracing::warn!(target: "audit", actor = %caller.subject(), user = %name,
                        "password change refused: wrong current password");
                    return Err(RegistryError::Denied {
                        subject: caller.subject().to_string(),
                        action: "set a new password".into(),
                        target: "without the right current password".into(),
                    });
                }
            }
            Some(_) => {
                return Err(RegistryError::invalid(
                    "current_password",
                    "it is only for changing one's own password; a cluster-admin sets another user's without it",
                ))
            }
            None if own && !self.allows(caller, Action::ManageUsers, &Resource::Cluster) => {
                return Err(RegistryError::invalid(
                    "current_password",
                    "it is required to change your own password",
                ))
            }
            None => {
                self.authorize(caller, Action::ManageUsers, &Resource::Cluster)?;
            }
        }
        let hash = hash_new_password(state, password).await?;
        let data = json!({ "user": name.as_str() });
        let events = self.raise(
            caller,
            EventType::PasswordChanged,
            None,
            name.as_str(),
            data,
        );
        let change = AuthChange::SetPassword(name.clone(), Some(hash));
        self.apply_auth_change(state, change, events)
            .await
            .map_err(|e| match e {
                RegistryError::RecordUnknown(_) => {
                    RegistryError::RecordUnknown(format!("user {name} does not exist"))
                }
                e => e,
            })?;
        tracing::info!(target: "audit", actor = %caller.subject(), user = %name, "password changed");
        // Sessions kept as refresh tokens end with the password they came
        // from (a reset after a leak must shut everyone out).
        super::tokens::revoke_refresh_tokens(state, caller, &Subject::User(name.clone())).await?;
        Ok(())
    }

    /// Deletes a local user (cluster-admin; not the last cluster-admin);
    /// their tokens stop working.
    pub async fn delete_user(&self, caller: &Caller, name: &UserName) -> RegistryResult<()> {
        let state = self.admin(caller, Action::ManageUsers, &Resource::Cluster)?;
        keep_a_cluster_admin(state, |b| b.subject.as_user() == Some(name)).await?;
        let data = json!({ "user": name.as_str() });
        let events = self.raise(caller, EventType::UserDeleted, None, name.as_str(), data);
        self.apply_auth_change(state, AuthChange::DeleteUser(name.clone()), events)
            .await?;
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

/// Checks the length of a new password and hashes it (argon2id) off the
/// async threads.
async fn hash_new_password(
    state: &AuthState,
    password: Password,
) -> RegistryResult<registry_auth::PasswordHash> {
    // Characters, as the rule says, not bytes: "éééé" is four.
    if password.expose().chars().count() < MIN_PASSWORD_LEN {
        return Err(RegistryError::invalid_name(
            "password",
            format!("it must have at least {MIN_PASSWORD_LEN} characters"),
        ));
    }
    let hasher = state.hasher.clone();
    tokio::task::spawn_blocking(move || hasher.hash(&password))
        .await
        .map_err(RegistryError::internal)?
        .map_err(RegistryError::internal)
}

/// Refuses a change that would leave no cluster-admin binding: `removed`
/// says which bindings the change takes away. (A deleted user's or service
/// account's bindings go with it.)
pub(crate) async fn keep_a_cluster_admin(
    state: &AuthState,
    removed: impl Fn(&ClusterRoleBinding) -> bool,
) -> RegistryResult<()> {
    let bindings = state.store.list_cluster_role_bindings().await?;
    let admins = || {
        bindings
            .iter()
            .filter(|b| b.role == ClusterRole::ClusterAdmin)
    };
    let Some(last) = admins().find(|b| removed(b)) else {
        return Ok(());
    };
    if admins().any(|b| !removed(b)) {
        return Ok(());
    }
    Err(RegistryError::Conflict(format!(
        "{} is the last cluster-admin; bind another subject to cluster-admin first",
        subject_label(&last.subject)
    )))
}

fn subject_label(s: &Subject) -> String {
    match s {
        Subject::User(_) | Subject::External(_) => format!("user {s}"),
        Subject::ServiceAccount(_) => format!("service account {s}"),
        Subject::Group(_) => format!("group {s}"),
    }
}
