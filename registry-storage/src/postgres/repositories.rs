//! Namespaces and repositories.

use registry_core::{Namespace, RepositoryName};
use sqlx::{PgConnection, PgPool};

use super::error::{from_nanos, now, parse, sql_limit, Error, Result};
use super::tx::serializable;
use crate::events::NewEvent;
use crate::metadata::RepositoryInfo;
use crate::policy::NamespacePolicy;

pub(super) async fn create_namespace(
    pool: &PgPool,
    namespace: &Namespace,
    events: &[NewEvent],
) -> Result<()> {
    serializable!(pool, |c| create_namespace_in(c, namespace, events))
}

async fn create_namespace_in(
    tx: &mut PgConnection,
    namespace: &Namespace,
    events: &[NewEvent],
) -> Result<()> {
    let now = now();
    let created = sqlx::query(
        "INSERT INTO namespaces (name, created) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(namespace.as_str())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if created.rows_affected() == 0 {
        return Err(Error::AlreadyExists(format!("namespace {namespace}")));
    }
    super::outbox::record_events(tx, events, now).await
}

pub(super) async fn namespace_exists(pool: &PgPool, namespace: &Namespace) -> Result<bool> {
    let found: Option<i32> = sqlx::query_scalar("SELECT 1 FROM namespaces WHERE name = $1")
        .bind(namespace.as_str())
        .fetch_optional(pool)
        .await?;
    Ok(found.is_some())
}

pub(super) async fn list_namespaces(pool: &PgPool) -> Result<Vec<Namespace>> {
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM namespaces ORDER BY name")
        .fetch_all(pool)
        .await?;
    names.iter().map(|n| parse("namespaces.name", n)).collect()
}

pub(super) async fn delete_namespace(
    pool: &PgPool,
    namespace: &Namespace,
    events: &[NewEvent],
) -> Result<()> {
    serializable!(pool, |c| delete_namespace_in(c, namespace, events))
}

async fn delete_namespace_in(
    tx: &mut PgConnection,
    namespace: &Namespace,
    events: &[NewEvent],
) -> Result<()> {
    let deleted = sqlx::query("DELETE FROM namespaces WHERE name = $1")
        .bind(namespace.as_str())
        .execute(&mut *tx)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound(format!("namespace {namespace}")));
    }
    // Foreign keys cascade to manifests, tags, history and links.
    sqlx::query("DELETE FROM repositories WHERE namespace = $1")
        .bind(namespace.as_str())
        .execute(&mut *tx)
        .await?;
    let now = super::error::now();
    super::outbox::record_events(tx, events, now).await?;
    super::outbox::retire_webhooks(tx, namespace, now).await
}

/// Creates the repository row unless it exists; part of a caller's transaction.
pub(super) async fn ensure_repository(
    conn: &mut PgConnection,
    name: &RepositoryName,
    created: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO repositories (name, namespace, created) VALUES ($1, $2, $3) \
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(name.as_str())
    .bind(name.namespace())
    .bind(created)
    .execute(conn)
    .await?;
    Ok(())
}

pub(super) async fn repository(
    pool: &PgPool,
    name: &RepositoryName,
) -> Result<Option<RepositoryInfo>> {
    let created: Option<i64> =
        sqlx::query_scalar("SELECT created FROM repositories WHERE name = $1")
            .bind(name.as_str())
            .fetch_optional(pool)
            .await?;
    Ok(created.map(|c| RepositoryInfo {
        name: name.clone(),
        created: from_nanos(c),
    }))
}

pub(super) async fn list_repositories(
    pool: &PgPool,
    namespace: Option<&Namespace>,
    last: Option<&str>,
    limit: usize,
) -> Result<Vec<RepositoryName>> {
    // An empty string sorts before every name, so `last = None` needs no
    // second statement. The columns' "C" collation compares byte-wise, the
    // order the other backends use.
    let after = last.unwrap_or("");
    let names: Vec<String> = match namespace {
        None => {
            sqlx::query_scalar(
                "SELECT name FROM repositories WHERE name > $1 ORDER BY name LIMIT $2",
            )
            .bind(after)
            .bind(sql_limit(limit))
            .fetch_all(pool)
            .await?
        }
        Some(ns) => {
            sqlx::query_scalar(
                "SELECT name FROM repositories WHERE namespace = $1 AND name > $2 \
                 ORDER BY name LIMIT $3",
            )
            .bind(ns.as_str())
            .bind(after)
            .bind(sql_limit(limit))
            .fetch_all(pool)
            .await?
        }
    };
    names
        .iter()
        .map(|n| parse("repositories.name", n))
        .collect()
}

pub(super) async fn delete_repository(
    pool: &PgPool,
    name: &RepositoryName,
    events: &[NewEvent],
) -> Result<()> {
    serializable!(pool, |c| delete_repository_in(c, name, events))
}

async fn delete_repository_in(
    tx: &mut PgConnection,
    name: &RepositoryName,
    events: &[NewEvent],
) -> Result<()> {
    // Foreign keys cascade to everything of the repository (and the usage
    // triggers run) inside the transaction.
    let deleted = sqlx::query("DELETE FROM repositories WHERE name = $1")
        .bind(name.as_str())
        .execute(&mut *tx)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound(format!("repository {name}")));
    }
    super::outbox::record_events(tx, events, super::error::now()).await
}

pub(super) async fn namespace_policy(
    pool: &PgPool,
    namespace: &Namespace,
) -> Result<NamespacePolicy> {
    let row: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT p.policy FROM namespaces n LEFT JOIN namespace_policies p \
         ON p.namespace = n.name WHERE n.name = $1",
    )
    .bind(namespace.as_str())
    .fetch_optional(pool)
    .await?;
    match row {
        None => Err(Error::NotFound(format!("namespace {namespace}"))),
        Some((None,)) => Ok(NamespacePolicy::default()),
        Some((Some(json),)) => Ok(serde_json::from_str(&json)?),
    }
}

pub(super) async fn set_namespace_policy(
    pool: &PgPool,
    namespace: &Namespace,
    policy: &NamespacePolicy,
    events: &[NewEvent],
) -> Result<()> {
    let json = serde_json::to_string(policy)?;
    serializable!(pool, |c| set_policy_in(c, namespace, &json, events))
}

async fn set_policy_in(
    tx: &mut PgConnection,
    namespace: &Namespace,
    json: &str,
    events: &[NewEvent],
) -> Result<()> {
    // The foreign key refuses a namespace that does not exist; say so.
    let exists: Option<(String,)> = sqlx::query_as("SELECT name FROM namespaces WHERE name = $1")
        .bind(namespace.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        return Err(Error::NotFound(format!("namespace {namespace}")));
    }
    sqlx::query(
        "INSERT INTO namespace_policies (namespace, policy) VALUES ($1, $2) \
         ON CONFLICT (namespace) DO UPDATE SET policy = EXCLUDED.policy",
    )
    .bind(namespace.as_str())
    .bind(json)
    .execute(&mut *tx)
    .await?;
    super::outbox::record_events(tx, events, now()).await
}
