//! [`AuthStore`] for [`PgStore`]: users, service accounts, access and
//! refresh tokens, role bindings and token keys live in the metadata
//! database (migration `0002_auth.sql`), so one `Arc<PgStore>` serves as
//! both `Arc<dyn MetadataStore>` and `Arc<dyn AuthStore>`, and every
//! replica on the database sees the same records.
//!
//! Every write is one statement, hence atomic without an explicit
//! transaction, and no write of the auth store checks before it writes, so
//! they need no SERIALIZABLE transaction: the cascades of deleting a user
//! or a service account run in triggers inside the deleting statement.
//! Secrets are never written: tokens are stored by their SHA-256, passwords
//! as argon2id PHC strings.
//!
//! The queries themselves are in [`auth_queries`](super::auth_queries) and
//! [`token_queries`](super::token_queries) (refresh tokens and token keys);
//! this file holds the column conversions and the trait impl.

use std::error::Error as StdError;
use std::str::FromStr;

use async_trait::async_trait;
use registry_auth::{
    AccessToken, AccessTokenId, AuthChange, AuthStore, AuthStoreError, ClusterRoleBinding, KeyId,
    PasswordHash, RefreshToken, RoleBinding, ServiceAccount, ServiceAccountRef, Subject, TokenCa,
    TokenHash, TokenSigningKey, User, UserName,
};
use registry_core::{Namespace, NewEvent};
use time::OffsetDateTime;

use super::auth_queries as q;
pub(super) use super::error::{Error, Result};
use super::token_queries as tq;
use super::PgStore;

/// A stored value that does not convert back.
pub(super) fn corrupt(column: &'static str, e: impl StdError + Send + Sync + 'static) -> Error {
    Error::CorruptSecret {
        column,
        source: Box::new(e),
    }
}

/// Parses a stored column value back into its validated type.
pub(super) fn parse<T>(column: &'static str, value: &str) -> Result<T>
where
    T: FromStr,
    T::Err: StdError + Send + Sync + 'static,
{
    value.parse().map_err(|e| corrupt(column, e))
}

/// A time as unix nanoseconds, the schema's time format.
pub(super) fn to_nanos(t: OffsetDateTime) -> Result<i64> {
    i64::try_from(t.unix_timestamp_nanos()).map_err(|_| Error::TimeOutOfRange(t))
}

/// An optional time as unix nanoseconds.
pub(super) fn to_nanos_opt(t: Option<OffsetDateTime>) -> Result<Option<i64>> {
    t.map(to_nanos).transpose()
}

/// The inverse of [`to_nanos`], in UTC.
pub(super) fn from_nanos(column: &'static str, nanos: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos)).map_err(|e| corrupt(column, e))
}

/// The inverse of [`to_nanos_opt`].
pub(super) fn from_nanos_opt(
    column: &'static str,
    nanos: Option<i64>,
) -> Result<Option<OffsetDateTime>> {
    nanos.map(|n| from_nanos(column, n)).transpose()
}

/// Why a stored token hash is not a SHA-256.
#[derive(Debug, thiserror::Error)]
#[error("expected 32 bytes, found {0}")]
struct HashLength(usize);

/// A `users` row: name, password hash, created.
pub(super) type UserRow = (String, Option<String>, i64);

pub(super) fn user(row: UserRow) -> Result<User> {
    let (name, hash, created) = row;
    let password_hash = hash
        .as_deref()
        .map(PasswordHash::from_phc)
        .transpose()
        .map_err(|e| corrupt("users.password_hash", e))?;
    Ok(User {
        name: parse("users.name", &name)?,
        password_hash,
        created: from_nanos("users.created", created)?,
    })
}

/// A `service_accounts` row: namespace, name, created.
pub(super) type ServiceAccountRow = (String, String, i64);

pub(super) fn service_account(row: ServiceAccountRow) -> Result<ServiceAccount> {
    let (namespace, name, created) = row;
    Ok(ServiceAccount {
        account: ServiceAccountRef::new(
            parse("service_accounts.namespace", &namespace)?,
            parse("service_accounts.name", &name)?,
        ),
        created: from_nanos("service_accounts.created", created)?,
    })
}

/// An `access_tokens` row: id, hash, owner, name, created, expires,
/// last_used (the order of `token_columns!` in the queries).
pub(super) type TokenRow = (
    String,
    Vec<u8>,
    String,
    String,
    i64,
    Option<i64>,
    Option<i64>,
);

pub(super) fn token(row: TokenRow) -> Result<AccessToken> {
    let (id, hash, owner, name, created, expires, last_used) = row;
    let hash: [u8; 32] = hash
        .as_slice()
        .try_into()
        .map_err(|_| corrupt("access_tokens.hash", HashLength(hash.len())))?;
    Ok(AccessToken {
        id: parse("access_tokens.id", &id)?,
        name: parse("access_tokens.name", &name)?,
        owner: parse("access_tokens.owner", &owner)?,
        hash: TokenHash::from_bytes(hash),
        created: from_nanos("access_tokens.created", created)?,
        expires: from_nanos_opt("access_tokens.expires", expires)?,
        last_used: from_nanos_opt("access_tokens.last_used", last_used)?,
    })
}

/// A `role_bindings` row: namespace, role, subject.
pub(super) type RoleBindingRow = (String, String, String);

pub(super) fn role_binding(row: RoleBindingRow) -> Result<RoleBinding> {
    let (namespace, role, subject) = row;
    Ok(RoleBinding {
        namespace: parse("role_bindings.namespace", &namespace)?,
        role: parse("role_bindings.role", &role)?,
        subject: parse("role_bindings.subject", &subject)?,
    })
}

/// A `cluster_role_bindings` row: role, subject.
pub(super) type ClusterRoleBindingRow = (String, String);

pub(super) fn cluster_role_binding(row: ClusterRoleBindingRow) -> Result<ClusterRoleBinding> {
    let (role, subject) = row;
    Ok(ClusterRoleBinding {
        role: parse("cluster_role_bindings.role", &role)?,
        subject: parse("cluster_role_bindings.subject", &subject)?,
    })
}

/// Applies `change` in the caller's transaction.
async fn apply(tx: &mut sqlx::PgConnection, change: &AuthChange) -> Result<()> {
    crate::auth_change_sql::apply_auth_change!(tx, change, q, tq, Error::UnknownAuthChange)
}

#[async_trait]
impl AuthStore for PgStore {
    fn records_events(&self) -> bool {
        true
    }

    async fn apply_raising(
        &self,
        change: &AuthChange,
        events: &[NewEvent],
    ) -> Result<(), AuthStoreError> {
        let work = async {
            let mut tx = self.pool.begin().await?;
            apply(&mut tx, change).await?;
            super::outbox::record_events(&mut tx, events, super::error::now()).await?;
            tx.commit().await?;
            Ok::<_, Error>(())
        };
        Ok(self.bounded(work).await?)
    }

    async fn create_user(&self, user: User) -> Result<(), AuthStoreError> {
        Ok(self.bounded(q::create_user(&self.pool, &user)).await?)
    }

    async fn get_user(&self, name: &UserName) -> Result<Option<User>, AuthStoreError> {
        Ok(self.bounded(q::get_user(&self.pool, name)).await?)
    }

    async fn list_users(&self) -> Result<Vec<User>, AuthStoreError> {
        Ok(self.bounded(q::list_users(&self.pool)).await?)
    }

    async fn delete_user(&self, name: &UserName) -> Result<(), AuthStoreError> {
        Ok(self.bounded(q::delete_user(&self.pool, name)).await?)
    }

    async fn set_password(
        &self,
        name: &UserName,
        hash: Option<PasswordHash>,
    ) -> Result<(), AuthStoreError> {
        Ok(self
            .bounded(q::set_password(&self.pool, name, hash.as_ref()))
            .await?)
    }

    async fn create_service_account(&self, sa: ServiceAccount) -> Result<(), AuthStoreError> {
        Ok(self
            .bounded(q::create_service_account(&self.pool, &sa))
            .await?)
    }

    async fn get_service_account(
        &self,
        sa: &ServiceAccountRef,
    ) -> Result<Option<ServiceAccount>, AuthStoreError> {
        Ok(self.bounded(q::get_service_account(&self.pool, sa)).await?)
    }

    async fn list_service_accounts(
        &self,
        namespace: Option<&Namespace>,
    ) -> Result<Vec<ServiceAccount>, AuthStoreError> {
        Ok(self
            .bounded(q::list_service_accounts(&self.pool, namespace))
            .await?)
    }

    async fn delete_service_account(&self, sa: &ServiceAccountRef) -> Result<(), AuthStoreError> {
        Ok(self
            .bounded(q::delete_service_account(&self.pool, sa))
            .await?)
    }

    async fn create_token(&self, token: AccessToken) -> Result<(), AuthStoreError> {
        Ok(self.bounded(q::create_token(&self.pool, &token)).await?)
    }

    async fn find_token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<AccessToken>, AuthStoreError> {
        Ok(self
            .bounded(q::find_token_by_hash(&self.pool, hash))
            .await?)
    }

    async fn list_tokens(
        &self,
        owner: Option<&Subject>,
    ) -> Result<Vec<AccessToken>, AuthStoreError> {
        Ok(self.bounded(q::list_tokens(&self.pool, owner)).await?)
    }

    async fn delete_token(&self, id: &AccessTokenId) -> Result<(), AuthStoreError> {
        Ok(self.bounded(q::delete_token(&self.pool, id)).await?)
    }

    async fn touch_token(
        &self,
        id: &AccessTokenId,
        at: OffsetDateTime,
    ) -> Result<(), AuthStoreError> {
        Ok(self.bounded(q::touch_token(&self.pool, id, at)).await?)
    }

    async fn add_role_binding(&self, binding: RoleBinding) -> Result<(), AuthStoreError> {
        Ok(self
            .bounded(q::add_role_binding(&self.pool, &binding))
            .await?)
    }

    async fn remove_role_binding(&self, binding: &RoleBinding) -> Result<(), AuthStoreError> {
        Ok(self
            .bounded(q::remove_role_binding(&self.pool, binding))
            .await?)
    }

    async fn list_role_bindings(
        &self,
        namespace: Option<&Namespace>,
    ) -> Result<Vec<RoleBinding>, AuthStoreError> {
        Ok(self
            .bounded(q::list_role_bindings(&self.pool, namespace))
            .await?)
    }

    async fn delete_namespace_bindings(
        &self,
        namespace: &Namespace,
    ) -> Result<usize, AuthStoreError> {
        Ok(self
            .bounded(q::delete_namespace_bindings(&self.pool, namespace))
            .await?)
    }

    async fn add_cluster_role_binding(
        &self,
        binding: ClusterRoleBinding,
    ) -> Result<(), AuthStoreError> {
        Ok(self
            .bounded(q::add_cluster_role_binding(&self.pool, &binding))
            .await?)
    }

    async fn remove_cluster_role_binding(
        &self,
        binding: &ClusterRoleBinding,
    ) -> Result<(), AuthStoreError> {
        Ok(self
            .bounded(q::remove_cluster_role_binding(&self.pool, binding))
            .await?)
    }

    async fn list_cluster_role_bindings(&self) -> Result<Vec<ClusterRoleBinding>, AuthStoreError> {
        Ok(self
            .bounded(q::list_cluster_role_bindings(&self.pool))
            .await?)
    }

    async fn create_refresh_token(&self, token: RefreshToken) -> Result<(), AuthStoreError> {
        Ok(self
            .bounded(tq::create_refresh_token(&self.pool, &token))
            .await?)
    }

    async fn find_refresh_token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<RefreshToken>, AuthStoreError> {
        Ok(self
            .bounded(tq::find_refresh_token_by_hash(&self.pool, hash))
            .await?)
    }

    async fn list_refresh_tokens(
        &self,
        owner: Option<&Subject>,
    ) -> Result<Vec<RefreshToken>, AuthStoreError> {
        Ok(self
            .bounded(tq::list_refresh_tokens(&self.pool, owner))
            .await?)
    }

    async fn delete_refresh_token(&self, id: &AccessTokenId) -> Result<(), AuthStoreError> {
        Ok(self
            .bounded(tq::delete_refresh_token(&self.pool, id))
            .await?)
    }

    async fn touch_refresh_token(
        &self,
        id: &AccessTokenId,
        at: OffsetDateTime,
    ) -> Result<(), AuthStoreError> {
        Ok(self
            .bounded(tq::touch_refresh_token(&self.pool, id, at))
            .await?)
    }

    async fn token_ca(&self) -> Result<Option<TokenCa>, AuthStoreError> {
        Ok(self.bounded(tq::token_ca(&self.pool)).await?)
    }

    async fn create_token_ca(&self, ca: TokenCa) -> Result<(), AuthStoreError> {
        Ok(self.bounded(tq::create_token_ca(&self.pool, &ca)).await?)
    }

    async fn add_token_signing_key(&self, key: TokenSigningKey) -> Result<(), AuthStoreError> {
        Ok(self
            .bounded(tq::add_token_signing_key(&self.pool, &key))
            .await?)
    }

    async fn list_token_signing_keys(&self) -> Result<Vec<TokenSigningKey>, AuthStoreError> {
        Ok(self
            .bounded(tq::list_token_signing_keys(&self.pool))
            .await?)
    }

    async fn delete_token_signing_key(&self, kid: &KeyId) -> Result<(), AuthStoreError> {
        Ok(self
            .bounded(tq::delete_token_signing_key(&self.pool, kid))
            .await?)
    }

    async fn marker_exists(&self, name: &str) -> Result<bool, AuthStoreError> {
        Ok(self.bounded(q::marker_exists(&self.pool, name)).await?)
    }

    async fn server_secret(&self, candidate: [u8; 32]) -> Result<[u8; 32], AuthStoreError> {
        Ok(self
            .bounded(q::server_secret(&self.pool, candidate))
            .await?)
    }

    async fn set_marker(&self, name: &str) -> Result<(), AuthStoreError> {
        Ok(self.bounded(q::set_marker(&self.pool, name)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_or_refuse() {
        let t = OffsetDateTime::now_utc();
        let stored = to_nanos(t).expect("in range");
        assert_eq!(from_nanos("t", stored).expect("valid"), t);
        let far = time::macros::datetime!(2300-01-01 0:00 UTC);
        assert!(matches!(to_nanos(far), Err(Error::TimeOutOfRange(_))));
    }

    #[test]
    fn corrupt_rows_are_backend_errors_without_the_value() {
        let row: TokenRow = (
            AccessTokenId::generate().to_string(),
            vec![0; 31],
            "alice".into(),
            "ci".into(),
            0,
            None,
            None,
        );
        let e = token(row).expect_err("short hash");
        assert!(matches!(
            e,
            Error::CorruptSecret {
                column: "access_tokens.hash",
                ..
            }
        ));
        let row: UserRow = ("alice".into(), Some("$argon2id$secret-ish".into()), 0);
        let e = user(row).expect_err("bad phc");
        assert!(!e.to_string().contains("secret-ish"));
        assert!(matches!(
            AuthStoreError::from(e),
            AuthStoreError::Backend { .. }
        ));
    }
}
