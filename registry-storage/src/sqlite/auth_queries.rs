//! The SQL of the auth store: one function per [`AuthStore`] method, taking
//! the pool it needs (reads the read pool, writes the writer).
//!
//! [`AuthStore`]: registry_auth::AuthStore

use registry_auth::{
    AccessToken, AccessTokenId, ClusterRoleBinding, PasswordHash, RoleBinding, ServiceAccount,
    ServiceAccountRef, Subject, TokenHash, User, UserName,
};
use registry_core::Namespace;
use time::OffsetDateTime;

use super::auth::{
    cluster_role_binding, inserted, role_binding, service_account, to_nanos, to_nanos_opt, token,
    user, ClusterRoleBindingRow, Error, Result, RoleBindingRow, ServiceAccountRow, TokenRow,
    UserRow,
};
use super::connections::{Readers, Slot};

/// The `access_tokens` columns in [`TokenRow`] order.
macro_rules! token_columns {
    () => {
        "id, hash, owner, name, created, expires, last_used"
    };
}

/// A use of a token this close after the recorded one is not written: the
/// token check of every request must not queue on the single writer.
const TOUCH_INTERVAL_NANOS: i64 = 60 * 1_000_000_000;

// Users.

pub(super) async fn create_user(writer: impl sqlx::SqliteExecutor<'_>, u: &User) -> Result<()> {
    let result = sqlx::query("INSERT INTO users (name, password_hash, created) VALUES (?, ?, ?)")
        .bind(u.name.as_str())
        .bind(u.password_hash.as_ref().map(PasswordHash::as_phc))
        .bind(to_nanos(u.created)?)
        .execute(writer)
        .await;
    inserted(result, |_| format!("user {}", u.name))
}

pub(super) async fn get_user(reader: &Readers, name: &UserName) -> Result<Option<User>> {
    let row: Option<UserRow> =
        sqlx::query_as("SELECT name, password_hash, created FROM users WHERE name = ?")
            .bind(name.as_str())
            .fetch_optional(reader)
            .await?;
    row.map(user).transpose()
}

pub(super) async fn list_users(reader: &Readers) -> Result<Vec<User>> {
    let rows: Vec<UserRow> =
        sqlx::query_as("SELECT name, password_hash, created FROM users ORDER BY name")
            .fetch_all(reader)
            .await?;
    rows.into_iter().map(user).collect()
}

pub(super) async fn delete_user(
    writer: impl sqlx::SqliteExecutor<'_>,
    name: &UserName,
) -> Result<()> {
    // The trigger `users_delete_cascade` removes the user's tokens and
    // bindings inside this statement.
    let deleted = sqlx::query("DELETE FROM users WHERE name = ?")
        .bind(name.as_str())
        .execute(writer)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound(format!("user {name}")));
    }
    Ok(())
}

pub(super) async fn set_password(
    writer: impl sqlx::SqliteExecutor<'_>,
    name: &UserName,
    hash: Option<&PasswordHash>,
) -> Result<()> {
    let updated = sqlx::query("UPDATE users SET password_hash = ? WHERE name = ?")
        .bind(hash.map(PasswordHash::as_phc))
        .bind(name.as_str())
        .execute(writer)
        .await?;
    if updated.rows_affected() == 0 {
        return Err(Error::NotFound(format!("user {name}")));
    }
    Ok(())
}

// Service accounts.

pub(super) async fn create_service_account(
    writer: impl sqlx::SqliteExecutor<'_>,
    sa: &ServiceAccount,
) -> Result<()> {
    let result =
        sqlx::query("INSERT INTO service_accounts (namespace, name, created) VALUES (?, ?, ?)")
            .bind(sa.account.namespace.as_str())
            .bind(sa.account.name.as_str())
            .bind(to_nanos(sa.created)?)
            .execute(writer)
            .await;
    inserted(result, |_| sa.account.to_string())
}

pub(super) async fn get_service_account(
    reader: &Readers,
    sa: &ServiceAccountRef,
) -> Result<Option<ServiceAccount>> {
    let row: Option<ServiceAccountRow> = sqlx::query_as(
        "SELECT namespace, name, created FROM service_accounts WHERE namespace = ? AND name = ?",
    )
    .bind(sa.namespace.as_str())
    .bind(sa.name.as_str())
    .fetch_optional(reader)
    .await?;
    row.map(service_account).transpose()
}

pub(super) async fn list_service_accounts(
    reader: &Readers,
    namespace: Option<&Namespace>,
) -> Result<Vec<ServiceAccount>> {
    let rows: Vec<ServiceAccountRow> =
        match namespace {
            None => sqlx::query_as(
                "SELECT namespace, name, created FROM service_accounts ORDER BY namespace, name",
            )
            .fetch_all(reader)
            .await?,
            Some(ns) => {
                sqlx::query_as(
                    "SELECT namespace, name, created FROM service_accounts WHERE namespace = ? \
                 ORDER BY name",
                )
                .bind(ns.as_str())
                .fetch_all(reader)
                .await?
            }
        };
    rows.into_iter().map(service_account).collect()
}

pub(super) async fn delete_service_account(
    writer: impl sqlx::SqliteExecutor<'_>,
    sa: &ServiceAccountRef,
) -> Result<()> {
    // The trigger `service_accounts_delete_cascade` removes the account's
    // tokens and bindings inside this statement.
    let deleted = sqlx::query("DELETE FROM service_accounts WHERE namespace = ? AND name = ?")
        .bind(sa.namespace.as_str())
        .bind(sa.name.as_str())
        .execute(writer)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound(sa.to_string()));
    }
    Ok(())
}

// Access tokens.

pub(super) async fn create_token(
    writer: impl sqlx::SqliteExecutor<'_>,
    t: &AccessToken,
) -> Result<()> {
    let result = sqlx::query(concat!(
        "INSERT INTO access_tokens (",
        token_columns!(),
        ") VALUES (?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(t.id.to_string())
    .bind(t.hash.as_bytes().as_slice())
    .bind(t.owner.to_string())
    .bind(t.name.as_str())
    .bind(to_nanos(t.created)?)
    .bind(to_nanos_opt(t.expires)?)
    .bind(to_nanos_opt(t.last_used)?)
    .execute(writer)
    .await;
    inserted(result, |message| {
        // SQLite names the violated columns; an id or hash collision is
        // reported by id, never by hash.
        if message.contains("access_tokens.owner") {
            format!("token {} of {}", t.name, t.owner)
        } else {
            format!("token {}", t.id)
        }
    })
}

pub(super) async fn find_token_by_hash(
    reader: &Readers,
    hash: &TokenHash,
) -> Result<Option<AccessToken>> {
    let row: Option<TokenRow> = sqlx::query_as(concat!(
        "SELECT ",
        token_columns!(),
        " FROM access_tokens WHERE hash = ?"
    ))
    .bind(hash.as_bytes().as_slice())
    .fetch_optional(reader)
    .await?;
    row.map(token).transpose()
}

pub(super) async fn list_tokens(
    reader: &Readers,
    owner: Option<&Subject>,
) -> Result<Vec<AccessToken>> {
    let rows: Vec<TokenRow> = match owner {
        None => {
            sqlx::query_as(concat!(
                "SELECT ",
                token_columns!(),
                " FROM access_tokens ORDER BY created, id"
            ))
            .fetch_all(reader)
            .await?
        }
        Some(owner) => {
            sqlx::query_as(concat!(
                "SELECT ",
                token_columns!(),
                " FROM access_tokens WHERE owner = ? ORDER BY created, id"
            ))
            .bind(owner.to_string())
            .fetch_all(reader)
            .await?
        }
    };
    rows.into_iter().map(token).collect()
}

pub(super) async fn delete_token(
    writer: impl sqlx::SqliteExecutor<'_>,
    id: &AccessTokenId,
) -> Result<()> {
    let deleted = sqlx::query("DELETE FROM access_tokens WHERE id = ?")
        .bind(id.to_string())
        .execute(writer)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound(format!("token {id}")));
    }
    Ok(())
}

pub(super) async fn touch_token(
    reader: &Readers,
    writer: &Slot,
    id: &AccessTokenId,
    at: OffsetDateTime,
) -> Result<()> {
    let at = to_nanos(at)?;
    // Checked on a reader first, so that repeated uses of a token within
    // the interval never wait for the writer.
    let stored: Option<Option<i64>> =
        sqlx::query_scalar("SELECT last_used FROM access_tokens WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(reader)
            .await?;
    let last_used = stored.ok_or_else(|| Error::NotFound(format!("token {id}")))?;
    if last_used.is_some_and(|last| last >= at.saturating_sub(TOUCH_INTERVAL_NANOS)) {
        return Ok(());
    }
    // max(): a concurrent touch with a later time is never overwritten.
    let updated = sqlx::query(
        "UPDATE access_tokens SET last_used = max(coalesce(last_used, ?1), ?1) WHERE id = ?2",
    )
    .bind(at)
    .bind(id.to_string())
    .execute(writer)
    .await?;
    if updated.rows_affected() == 0 {
        return Err(Error::NotFound(format!("token {id}")));
    }
    Ok(())
}

// Role bindings.

/// Names a role binding in errors.
fn describe(b: &RoleBinding) -> String {
    format!("binding of {} to {} in {}", b.role, b.subject, b.namespace)
}

/// Names a cluster role binding in errors.
fn describe_cluster(b: &ClusterRoleBinding) -> String {
    format!("cluster binding of {} to {}", b.role, b.subject)
}

pub(super) async fn add_role_binding(
    writer: impl sqlx::SqliteExecutor<'_>,
    b: &RoleBinding,
) -> Result<()> {
    let result =
        sqlx::query("INSERT INTO role_bindings (namespace, role, subject) VALUES (?, ?, ?)")
            .bind(b.namespace.as_str())
            .bind(b.role.as_str())
            .bind(b.subject.to_string())
            .execute(writer)
            .await;
    inserted(result, |_| describe(b))
}

pub(super) async fn remove_role_binding(
    writer: impl sqlx::SqliteExecutor<'_>,
    b: &RoleBinding,
) -> Result<()> {
    let deleted =
        sqlx::query("DELETE FROM role_bindings WHERE namespace = ? AND role = ? AND subject = ?")
            .bind(b.namespace.as_str())
            .bind(b.role.as_str())
            .bind(b.subject.to_string())
            .execute(writer)
            .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound(describe(b)));
    }
    Ok(())
}

pub(super) async fn list_role_bindings(
    reader: &Readers,
    namespace: Option<&Namespace>,
) -> Result<Vec<RoleBinding>> {
    let rows: Vec<RoleBindingRow> = match namespace {
        None => {
            sqlx::query_as("SELECT namespace, role, subject FROM role_bindings")
                .fetch_all(reader)
                .await?
        }
        Some(ns) => {
            sqlx::query_as("SELECT namespace, role, subject FROM role_bindings WHERE namespace = ?")
                .bind(ns.as_str())
                .fetch_all(reader)
                .await?
        }
    };
    let mut bindings = rows
        .into_iter()
        .map(role_binding)
        .collect::<Result<Vec<_>>>()?;
    // The contract's order is `RoleBinding`'s `Ord` (roles by privilege,
    // subjects by kind), which no column order reproduces.
    bindings.sort_unstable();
    Ok(bindings)
}

pub(super) async fn delete_namespace_bindings(
    writer: &Slot,
    namespace: &Namespace,
) -> Result<usize> {
    let deleted = sqlx::query("DELETE FROM role_bindings WHERE namespace = ?")
        .bind(namespace.as_str())
        .execute(writer)
        .await?;
    Ok(usize::try_from(deleted.rows_affected()).unwrap_or(usize::MAX))
}

// Cluster role bindings.

pub(super) async fn add_cluster_role_binding(
    writer: impl sqlx::SqliteExecutor<'_>,
    b: &ClusterRoleBinding,
) -> Result<()> {
    let result = sqlx::query("INSERT INTO cluster_role_bindings (role, subject) VALUES (?, ?)")
        .bind(b.role.as_str())
        .bind(b.subject.to_string())
        .execute(writer)
        .await;
    inserted(result, |_| describe_cluster(b))
}

pub(super) async fn remove_cluster_role_binding(
    writer: impl sqlx::SqliteExecutor<'_>,
    b: &ClusterRoleBinding,
) -> Result<()> {
    let deleted = sqlx::query("DELETE FROM cluster_role_bindings WHERE role = ? AND subject = ?")
        .bind(b.role.as_str())
        .bind(b.subject.to_string())
        .execute(writer)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound(describe_cluster(b)));
    }
    Ok(())
}

pub(super) async fn list_cluster_role_bindings(
    reader: &Readers,
) -> Result<Vec<ClusterRoleBinding>> {
    let rows: Vec<ClusterRoleBindingRow> =
        sqlx::query_as("SELECT role, subject FROM cluster_role_bindings")
            .fetch_all(reader)
            .await?;
    let mut bindings = rows
        .into_iter()
        .map(cluster_role_binding)
        .collect::<Result<Vec<_>>>()?;
    // As for role bindings: the order is the type's `Ord`.
    bindings.sort_unstable();
    Ok(bindings)
}

// Markers.

pub(super) async fn marker_exists(reader: &Readers, name: &str) -> Result<bool> {
    let found: Option<(String,)> = sqlx::query_as("SELECT name FROM auth_markers WHERE name = ?")
        .bind(name)
        .fetch_optional(reader)
        .await?;
    Ok(found.is_some())
}

pub(super) async fn set_marker(writer: &Slot, name: &str) -> Result<()> {
    sqlx::query(
        "INSERT INTO auth_markers (name, created) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
    )
    .bind(name)
    .bind(to_nanos(OffsetDateTime::now_utc())?)
    .execute(writer)
    .await?;
    Ok(())
}

/// Stores `candidate` unless a secret is stored; returns the stored one.
/// Both statements run on the writer, which reads its own write.
pub(super) async fn server_secret(writer: &Slot, candidate: [u8; 32]) -> Result<[u8; 32]> {
    sqlx::query("INSERT INTO server_secret (id, value) VALUES (1, ?) ON CONFLICT (id) DO NOTHING")
        .bind(candidate.as_slice())
        .execute(writer)
        .await?;
    let (value,): (Vec<u8>,) = sqlx::query_as("SELECT value FROM server_secret WHERE id = 1")
        .fetch_one(writer)
        .await?;
    let len = value.len();
    value.try_into().map_err(|_| Error::Corrupt {
        column: "server_secret.value",
        source: format!("{len} bytes, not 32").into(),
    })
}
