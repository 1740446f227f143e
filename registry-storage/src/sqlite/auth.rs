//! [`AuthStore`] for [`SqliteMetadataStore`]: users, service accounts,
//! access tokens and role bindings live in the metadata database (migration
//! `0002_auth.sql`), so one file holds the whole registry state and one
//! `Arc<SqliteMetadataStore>` serves as both `Arc<dyn MetadataStore>` and
//! `Arc<dyn AuthStore>`.
//!
//! Reads go to the read pool, writes to the single writer connection. Every
//! write is one statement, hence atomic without an explicit transaction: the
//! cascades of deleting a user or a service account run in triggers inside
//! the deleting statement. Secrets are never written: tokens are stored by
//! their SHA-256, passwords as argon2id PHC strings.
//!
//! The queries themselves are in [`auth_queries`](super::auth_queries) and
//! [`token_queries`](super::token_queries) (refresh tokens and token keys,
//! migration `0012_tokens.sql`); this file holds the error, the column
//! conversions and the trait impl.

use std::error::Error as StdError;
use std::str::FromStr;

use async_trait::async_trait;
use registry_auth::{
    AccessToken, AccessTokenId, AuthChange, AuthStore, AuthStoreError, ClusterRoleBinding, KeyId,
    PasswordHash, RefreshToken, RoleBinding, ServiceAccount, ServiceAccountRef, Subject, TokenCa,
    TokenHash, TokenSigningKey, User, UserName,
};
use registry_core::{Namespace, NewEvent};
use sqlx::sqlite::SqliteQueryResult;
use time::OffsetDateTime;

use super::auth_queries as q;
use super::token_queries as tq;
use super::SqliteMetadataStore;

/// What can go wrong in the SQLite auth store. Private: callers see it as an
/// [`AuthStoreError`].
#[derive(Debug, thiserror::Error)]
pub(super) enum Error {
    /// The database failed.
    #[error("sqlite: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// A stored value does not parse back into its type. The value is not
    /// part of the message: it may be a password hash.
    #[error("stored {column} is invalid: {source}")]
    Corrupt {
        /// The column it came from.
        column: &'static str,
        /// Why it does not parse.
        source: Box<dyn StdError + Send + Sync>,
    },
    /// A time outside what unix nanoseconds in an `i64` can hold.
    #[error("time {0} is outside the storable range (about 1677 to 2262)")]
    TimeOutOfRange(OffsetDateTime),
    /// The record does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A record with the same key exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// Recording the change's events failed.
    #[error("recording events: {0}")]
    Outbox(Box<super::error::Error>),
    /// An auth change this store has no query for (a newer
    /// `registry-auth`).
    #[error("auth change {0} has no query in this store")]
    UnknownChange(String),
}

impl From<Error> for AuthStoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(what) => AuthStoreError::not_found(what),
            Error::AlreadyExists(what) => AuthStoreError::already_exists(what),
            other => AuthStoreError::backend(other),
        }
    }
}

/// Result of the auth store's internal functions.
pub(super) type Result<T, E = Error> = std::result::Result<T, E>;

/// A stored value that does not convert back.
pub(super) fn corrupt(column: &'static str, e: impl StdError + Send + Sync + 'static) -> Error {
    Error::Corrupt {
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

/// Turns a unique-key violation of an insert into `AlreadyExists`, naming
/// the record with `what` (given SQLite's message, which names the
/// constraint's columns).
pub(super) fn inserted(
    result: Result<SqliteQueryResult, sqlx::Error>,
    what: impl FnOnce(&str) -> String,
) -> Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(Error::AlreadyExists(what(e.message())))
        }
        Err(e) => Err(e.into()),
    }
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
async fn apply(tx: &mut sqlx::SqliteConnection, change: &AuthChange) -> Result<()> {
    crate::auth_change_sql::apply_auth_change!(tx, change, q, tq, Error::UnknownChange)
}

#[async_trait]
impl AuthStore for SqliteMetadataStore {
    fn records_events(&self) -> bool {
        true
    }

    async fn apply_raising(
        &self,
        change: &AuthChange,
        events: &[NewEvent],
    ) -> Result<(), AuthStoreError> {
        let result: Result<()> = async {
            let mut tx = self.writer.begin().await?;
            apply(&mut tx, change).await?;
            let mut batch = super::batch::Batch::new();
            super::outbox::record_events(&mut batch, events, super::error::now())
                .map_err(|e| Error::Outbox(Box::new(e)))?;
            tx.run(batch)
                .await
                .map_err(|e| Error::Outbox(Box::new(e.into())))?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        Ok(result?)
    }

    async fn create_user(&self, user: User) -> Result<(), AuthStoreError> {
        Ok(q::create_user(&self.writer, &user).await?)
    }

    async fn get_user(&self, name: &UserName) -> Result<Option<User>, AuthStoreError> {
        Ok(q::get_user(&self.reader, name).await?)
    }

    async fn list_users(&self) -> Result<Vec<User>, AuthStoreError> {
        Ok(q::list_users(&self.reader).await?)
    }

    async fn delete_user(&self, name: &UserName) -> Result<(), AuthStoreError> {
        Ok(q::delete_user(&self.writer, name).await?)
    }

    async fn set_password(
        &self,
        name: &UserName,
        hash: Option<PasswordHash>,
    ) -> Result<(), AuthStoreError> {
        Ok(q::set_password(&self.writer, name, hash.as_ref()).await?)
    }

    async fn create_service_account(&self, sa: ServiceAccount) -> Result<(), AuthStoreError> {
        Ok(q::create_service_account(&self.writer, &sa).await?)
    }

    async fn get_service_account(
        &self,
        sa: &ServiceAccountRef,
    ) -> Result<Option<ServiceAccount>, AuthStoreError> {
        Ok(q::get_service_account(&self.reader, sa).await?)
    }

    async fn list_service_accounts(
        &self,
        namespace: Option<&Namespace>,
    ) -> Result<Vec<ServiceAccount>, AuthStoreError> {
        Ok(q::list_service_accounts(&self.reader, namespace).await?)
    }

    async fn delete_service_account(&self, sa: &ServiceAccountRef) -> Result<(), AuthStoreError> {
        Ok(q::delete_service_account(&self.writer, sa).await?)
    }

    async fn create_token(&self, token: AccessToken) -> Result<(), AuthStoreError> {
        Ok(q::create_token(&self.writer, &token).await?)
    }

    async fn find_token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<AccessToken>, AuthStoreError> {
        Ok(q::find_token_by_hash(&self.reader, hash).await?)
    }

    async fn list_tokens(
        &self,
        owner: Option<&Subject>,
    ) -> Result<Vec<AccessToken>, AuthStoreError> {
        Ok(q::list_tokens(&self.reader, owner).await?)
    }

    async fn delete_token(&self, id: &AccessTokenId) -> Result<(), AuthStoreError> {
        Ok(q::delete_token(&self.writer, id).await?)
    }

    async fn touch_token(
        &self,
        id: &AccessTokenId,
        at: OffsetDateTime,
    ) -> Result<(), AuthStoreError> {
        Ok(q::touch_token(&self.reader, &self.writer, id, at).await?)
    }

    async fn add_role_binding(&self, binding: RoleBinding) -> Result<(), AuthStoreError> {
        Ok(q::add_role_binding(&self.writer, &binding).await?)
    }

    async fn remove_role_binding(&self, binding: &RoleBinding) -> Result<(), AuthStoreError> {
        Ok(q::remove_role_binding(&self.writer, binding).await?)
    }

    async fn list_role_bindings(
        &self,
        namespace: Option<&Namespace>,
    ) -> Result<Vec<RoleBinding>, AuthStoreError> {
        Ok(q::list_role_bindings(&self.reader, namespace).await?)
    }

    async fn delete_namespace_bindings(
        &self,
        namespace: &Namespace,
    ) -> Result<usize, AuthStoreError> {
        Ok(q::delete_namespace_bindings(&self.writer, namespace).await?)
    }

    async fn add_cluster_role_binding(
        &self,
        binding: ClusterRoleBinding,
    ) -> Result<(), AuthStoreError> {
        Ok(q::add_cluster_role_binding(&self.writer, &binding).await?)
    }

    async fn remove_cluster_role_binding(
        &self,
        binding: &ClusterRoleBinding,
    ) -> Result<(), AuthStoreError> {
        Ok(q::remove_cluster_role_binding(&self.writer, binding).await?)
    }

    async fn list_cluster_role_bindings(&self) -> Result<Vec<ClusterRoleBinding>, AuthStoreError> {
        Ok(q::list_cluster_role_bindings(&self.reader).await?)
    }

    async fn create_refresh_token(&self, token: RefreshToken) -> Result<(), AuthStoreError> {
        Ok(tq::create_refresh_token(&self.writer, &token).await?)
    }

    async fn find_refresh_token_by_hash(
        &self,
        hash: &TokenHash,
    ) -> Result<Option<RefreshToken>, AuthStoreError> {
        Ok(tq::find_refresh_token_by_hash(&self.reader, hash).await?)
    }

    async fn list_refresh_tokens(
        &self,
        owner: Option<&Subject>,
    ) -> Result<Vec<RefreshToken>, AuthStoreError> {
        Ok(tq::list_refresh_tokens(&self.reader, owner).await?)
    }

    async fn delete_refresh_token(&self, id: &AccessTokenId) -> Result<(), AuthStoreError> {
        Ok(tq::delete_refresh_token(&self.writer, id).await?)
    }

    async fn touch_refresh_token(
        &self,
        id: &AccessTokenId,
        at: OffsetDateTime,
    ) -> Result<(), AuthStoreError> {
        Ok(tq::touch_refresh_token(&self.writer, id, at).await?)
    }

    async fn token_ca(&self) -> Result<Option<TokenCa>, AuthStoreError> {
        Ok(tq::token_ca(&self.reader).await?)
    }

    async fn create_token_ca(&self, ca: TokenCa) -> Result<(), AuthStoreError> {
        Ok(tq::create_token_ca(&self.writer, &ca).await?)
    }

    async fn add_token_signing_key(&self, key: TokenSigningKey) -> Result<(), AuthStoreError> {
        Ok(tq::add_token_signing_key(&self.writer, &key).await?)
    }

    async fn list_token_signing_keys(&self) -> Result<Vec<TokenSigningKey>, AuthStoreError> {
        Ok(tq::list_token_signing_keys(&self.reader).await?)
    }

    async fn delete_token_signing_key(&self, kid: &KeyId) -> Result<(), AuthStoreError> {
        Ok(tq::delete_token_signing_key(&self.writer, kid).await?)
    }

    async fn marker_exists(&self, name: &str) -> Result<bool, AuthStoreError> {
        Ok(q::marker_exists(&self.reader, name).await?)
    }

    async fn set_marker(&self, name: &str) -> Result<(), AuthStoreError> {
        Ok(q::set_marker(&self.writer, name).await?)
    }

    async fn server_secret(&self, candidate: [u8; 32]) -> Result<[u8; 32], AuthStoreError> {
        Ok(q::server_secret(&self.writer, candidate).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_keep_their_meaning() {
        let e: AuthStoreError = Error::NotFound("user a".into()).into();
        assert!(matches!(e, AuthStoreError::NotFound(_)));
        let e: AuthStoreError = Error::AlreadyExists("user a".into()).into();
        assert!(matches!(e, AuthStoreError::AlreadyExists(_)));
        let e: AuthStoreError = Error::Sqlx(sqlx::Error::RowNotFound).into();
        assert!(matches!(e, AuthStoreError::Backend { .. }));
    }

    #[test]
    fn times_round_trip_or_refuse() {
        let t = OffsetDateTime::now_utc();
        let stored = to_nanos(t).expect("in range");
        assert_eq!(from_nanos("t", stored).expect("valid"), t);
        let far = time::macros::datetime!(2300-01-01 0:00 UTC);
        assert!(matches!(to_nanos(far), Err(Error::TimeOutOfRange(_))));
    }

    #[test]
    fn corrupt_rows_are_backend_errors() {
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
            Error::Corrupt {
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
