//! First start: make sure an administrator exists.

use time::OffsetDateTime;

use crate::credentials::{CredentialError, Password, PasswordHasher};
use crate::role::{ClusterRole, ClusterRoleBinding};
use crate::store::{AuthStore, AuthStoreError, User};
use crate::subject::{Subject, UserName};

/// The bootstrap administrator's user name.
pub const ADMIN_USER: &str = "admin";

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
}

/// Ensures user [`ADMIN_USER`] exists and is bound to `cluster-admin`.
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
    let name: UserName = ADMIN_USER
        .parse()
        .map_err(|_| AuthStoreError::backend("bootstrap user name is invalid"))?;
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
        Ok(()) | Err(AuthStoreError::AlreadyExists(_)) => Ok(outcome),
        Err(e) => Err(e.into()),
    }
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
        assert!(matches!(again, BootstrapOutcome::AlreadyExisted { .. }));
        let still = store.get_user(&admin.name).await.unwrap().unwrap();
        assert_eq!(still.password_hash, admin.password_hash);
        assert_eq!(store.list_cluster_role_bindings().await.unwrap().len(), 1);
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
