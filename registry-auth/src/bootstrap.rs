//! First start: make sure an administrator exists.

use time::OffsetDateTime;

use crate::credentials::{CredentialError, Password, PasswordHasher};
use crate::role::{ClusterRole, ClusterRoleBinding};
use crate::store::{AuthStore, AuthStoreError, User};
use crate::subject::{Subject, UserName};

/// The bootstrap administrator's user name.
pub const ADMIN_USER: &str = "admin";
/// The marker ([`AuthStore::set_marker`]) recording that the store's
/// administrator was bootstrapped.
pub const ADMIN_BOOTSTRAPPED: &str = "admin-bootstrapped";

/// Why bootstrapping failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BootstrapError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] AuthStoreError),
    /// A password could not be generated or hashed.
    #[error(transparent)]
    Credential(#[from] CredentialError),
}

/// What [`ensure_admin`] did.
#[derive(Debug)]
#[non_exhaustive]
pub enum BootstrapOutcome {
    /// The user was created. `generated_password` is set when no password
    /// was given: print it once, it is stored nowhere in clear.
    Created {
        /// The user name.
        user: UserName,
        /// The generated password, if one was generated.
        generated_password: Option<Password>,
    },
    /// The user existed; its password was left alone and its cluster-admin
    /// binding ensured.
    AlreadyExisted {
        /// The user name.
        user: UserName,
    },
    /// The store was bootstrapped before: nothing was done, even if the
    /// user was deleted since.
    AlreadyBootstrapped,
}

/// Bootstraps the store's administrator once: user [`ADMIN_USER`], bound to
/// `cluster-admin`.
///
/// Runs only until it has succeeded once on a store (the
/// [`ADMIN_BOOTSTRAPPED`] marker): afterwards `admin` stays deleted when an
/// administrator deletes it. A store from before the marker existed that
/// already has a cluster-admin is taken as bootstrapped.
///
/// A new user gets `password`, or a generated one (returned). An existing
/// user keeps its password (so restarts with the same configuration change
/// nothing). Safe to call on every start and from several replicas at once:
/// losing a creation race counts as "already existed".
pub async fn ensure_admin(
    store: &dyn AuthStore,
    hasher: &PasswordHasher,
    password: Option<Password>,
) -> Result<BootstrapOutcome, BootstrapError> {
    if store.marker_exists(ADMIN_BOOTSTRAPPED).await? {
        return Ok(BootstrapOutcome::AlreadyBootstrapped);
    }
    let name: UserName = ADMIN_USER
        .parse()
        .map_err(|_| AuthStoreError::backend("bootstrap user name is invalid"))?;
    let has_cluster_admin = store
        .list_cluster_role_bindings()
        .await?
        .iter()
        .any(|b| b.role == ClusterRole::ClusterAdmin);
    if has_cluster_admin && store.get_user(&name).await?.is_none() {
        store.set_marker(ADMIN_BOOTSTRAPPED).await?;
        return Ok(BootstrapOutcome::AlreadyBootstrapped);
    }
    let outcome = if store.get_user(&name).await?.is_some() {
        BootstrapOutcome::AlreadyExisted { user: name.clone() }
    } else {
        let (password, generated) = match password {
            Some(p) => (p, false),
            None => (Password::generate()?, true),
        };
        let user = User {
            name: name.clone(),
            password_hash: Some(hasher.hash(&password)?),
            created: OffsetDateTime::now_utc(),
        };
        match store.create_user(user).await {
            Ok(()) => BootstrapOutcome::Created {
                user: name.clone(),
                generated_password: generated.then_some(password),
            },
            Err(AuthStoreError::AlreadyExists(_)) => {
                BootstrapOutcome::AlreadyExisted { user: name.clone() }
            }
            Err(e) => return Err(e.into()),
        }
    };
    let binding = ClusterRoleBinding {
        role: ClusterRole::ClusterAdmin,
        subject: Subject::User(name),
    };
    match store.add_cluster_role_binding(binding).await {
        Ok(()) | Err(AuthStoreError::AlreadyExists(_)) => {}
        Err(e) => return Err(e.into()),
    }
    // Last: a crash before this point runs the bootstrap again, which
    // finds the user and the binding made.
    store.set_marker(ADMIN_BOOTSTRAPPED).await?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryAuthStore;
    use crate::{Action, Authorizer, Identity, Resource};

    #[tokio::test]
    async fn creates_then_keeps_admin() {
        let store = MemoryAuthStore::new();
        let hasher = PasswordHasher::insecure_fast();
        let outcome = ensure_admin(&store, &hasher, None).await.unwrap();
        let BootstrapOutcome::Created {
            generated_password: Some(password),
            ..
        } = outcome
        else {
            panic!("expected a generated password, got {outcome:?}");
        };
        let admin = store
            .get_user(&"admin".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert!(hasher.verify(&password, admin.password_hash.as_ref().unwrap()));
        let auth = Authorizer::load(&store).await.unwrap();
        let id = Identity::user(admin.name.clone());
        assert!(auth
            .check(&id, Action::CreateNamespace, &Resource::Cluster)
            .is_allowed());

        // A second start changes nothing, even with a password given.
        let again = ensure_admin(&store, &hasher, Some(Password::new("other")))
            .await
            .unwrap();
        assert!(matches!(again, BootstrapOutcome::AlreadyBootstrapped));
        let still = store.get_user(&admin.name).await.unwrap().unwrap();
        assert_eq!(still.password_hash, admin.password_hash);
        assert_eq!(store.list_cluster_role_bindings().await.unwrap().len(), 1);

        // Deleted, it stays deleted.
        store.delete_user(&admin.name).await.unwrap();
        let after_delete = ensure_admin(&store, &hasher, None).await.unwrap();
        assert!(matches!(
            after_delete,
            BootstrapOutcome::AlreadyBootstrapped
        ));
        assert!(store.get_user(&admin.name).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_store_from_before_the_marker_keeps_its_administrators() {
        let hasher = PasswordHasher::insecure_fast();
        // admin deleted earlier, another cluster-admin in charge: not recreated.
        let store = MemoryAuthStore::new();
        store
            .add_cluster_role_binding(ClusterRoleBinding {
                role: ClusterRole::ClusterAdmin,
                subject: "root".parse().unwrap(),
            })
            .await
            .unwrap();
        let outcome = ensure_admin(&store, &hasher, None).await.unwrap();
        assert!(matches!(outcome, BootstrapOutcome::AlreadyBootstrapped));
        assert!(store
            .get_user(&"admin".parse().unwrap())
            .await
            .unwrap()
            .is_none());
        assert!(store.marker_exists(ADMIN_BOOTSTRAPPED).await.unwrap());

        // admin still there: kept as it is, and the marker set.
        let store = MemoryAuthStore::new();
        let first = ensure_admin(&store, &hasher, None).await.unwrap();
        assert!(matches!(first, BootstrapOutcome::Created { .. }));
        let fresh = MemoryAuthStore::new();
        for user in store.list_users().await.unwrap() {
            fresh.create_user(user).await.unwrap();
        }
        let outcome = ensure_admin(&fresh, &hasher, None).await.unwrap();
        assert!(matches!(outcome, BootstrapOutcome::AlreadyExisted { .. }));
        assert!(fresh.marker_exists(ADMIN_BOOTSTRAPPED).await.unwrap());
    }

    #[tokio::test]
    async fn uses_the_given_password() {
        let store = MemoryAuthStore::new();
        let hasher = PasswordHasher::insecure_fast();
        let outcome = ensure_admin(&store, &hasher, Some(Password::new("given")))
            .await
            .unwrap();
        assert!(matches!(
            outcome,
            BootstrapOutcome::Created {
                generated_password: None,
                ..
            }
        ));
        let admin = store
            .get_user(&"admin".parse().unwrap())
            .await
            .unwrap()
            .unwrap();
        assert!(hasher.verify(
            &Password::new("given"),
            admin.password_hash.as_ref().unwrap()
        ));
    }
}
