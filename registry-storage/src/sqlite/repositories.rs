//! Namespaces and repositories.

use registry_core::{Namespace, RepositoryName};

use super::batch::Batch;
use super::connections::{Readers, Slot};

use super::error::{from_nanos, now, parse, sql_limit, Error, Result};
use crate::events::NewEvent;
use crate::metadata::RepositoryInfo;
use crate::policy::NamespacePolicy;

pub(super) async fn create_namespace(
    writer: &Slot,
    namespace: &Namespace,
    events: &[NewEvent],
) -> Result<()> {
    let now = now();
    let mut tx = writer.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO namespaces (name, created) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
    )
    .bind(namespace.as_str())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(Error::AlreadyExists(format!("namespace {namespace}")));
    }
    let mut batch = Batch::new();
    super::outbox::record_events(&mut batch, events, now)?;
    tx.commit_with(batch).await?;
    Ok(())
}

pub(super) async fn namespace_exists(reader: &Readers, namespace: &Namespace) -> Result<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM namespaces WHERE name = ?")
        .bind(namespace.as_str())
        .fetch_optional(reader)
        .await?;
    Ok(found.is_some())
}

pub(super) async fn list_namespaces(reader: &Readers) -> Result<Vec<Namespace>> {
    let names: Vec<String> = sqlx::query_scalar("SELECT name FROM namespaces ORDER BY name")
        .fetch_all(reader)
        .await?;
    names.iter().map(|n| parse("namespaces.name", n)).collect()
}

pub(super) async fn delete_namespace(
    writer: &Slot,
    namespace: &Namespace,
    events: &[NewEvent],
) -> Result<()> {
    let mut tx = writer.begin().await?;
    let deleted = sqlx::query("DELETE FROM namespaces WHERE name = ?")
        .bind(namespace.as_str())
        .execute(&mut *tx)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound(format!("namespace {namespace}")));
    }
    // Foreign keys cascade to manifests, tags, history and links.
    sqlx::query("DELETE FROM repositories WHERE namespace = ?")
        .bind(namespace.as_str())
        .execute(&mut *tx)
        .await?;
    let now = super::error::now();
    let mut batch = Batch::new();
    super::outbox::record_events(&mut batch, events, now)?;
    tx.run(batch).await?;
    super::outbox::retire_webhooks(&mut tx, namespace, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Adds to `batch` the statement creating the repository row unless it
/// exists; the batch runs in a caller's transaction.
pub(super) fn ensure_repository<'a>(
    batch: &mut Batch<'a>,
    name: &'a RepositoryName,
    created: i64,
) -> Result<()> {
    batch.push(
        "INSERT INTO repositories (name, namespace, created) VALUES (?, ?, ?) \
         ON CONFLICT (name) DO NOTHING",
    );
    batch
        .bind(name.as_str())?
        .bind(name.namespace())?
        .bind(created)?;
    Ok(())
}

pub(super) async fn repository(
    reader: &Readers,
    name: &RepositoryName,
) -> Result<Option<RepositoryInfo>> {
    let created: Option<i64> =
        sqlx::query_scalar("SELECT created FROM repositories WHERE name = ?")
            .bind(name.as_str())
            .fetch_optional(reader)
            .await?;
    Ok(created.map(|c| RepositoryInfo {
        name: name.clone(),
        created: from_nanos(c),
    }))
}

pub(super) async fn list_repositories(
    reader: &Readers,
    namespace: Option<&Namespace>,
    last: Option<&str>,
    limit: usize,
) -> Result<Vec<RepositoryName>> {
    // An empty string sorts before every name, so `last = None` needs no
    // second statement. TEXT compares byte-wise (BINARY collation), the
    // order the other backends use.
    let after = last.unwrap_or("");
    let names: Vec<String> = match namespace {
        None => {
            sqlx::query_scalar("SELECT name FROM repositories WHERE name > ? ORDER BY name LIMIT ?")
                .bind(after)
                .bind(sql_limit(limit))
                .fetch_all(reader)
                .await?
        }
        Some(ns) => {
            sqlx::query_scalar(
                "SELECT name FROM repositories WHERE namespace = ? AND name > ? \
                 ORDER BY name LIMIT ?",
            )
            .bind(ns.as_str())
            .bind(after)
            .bind(sql_limit(limit))
            .fetch_all(reader)
            .await?
        }
    };
    names
        .iter()
        .map(|n| parse("repositories.name", n))
        .collect()
}

pub(super) async fn delete_repository(
    writer: &Slot,
    name: &RepositoryName,
    events: &[NewEvent],
) -> Result<()> {
    let mut tx = writer.begin().await?;
    // Foreign keys cascade to everything of the repository.
    let deleted = sqlx::query("DELETE FROM repositories WHERE name = ?")
        .bind(name.as_str())
        .execute(&mut *tx)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound(format!("repository {name}")));
    }
    let mut batch = Batch::new();
    super::outbox::record_events(&mut batch, events, super::error::now())?;
    tx.commit_with(batch).await?;
    Ok(())
}

pub(super) async fn namespace_policy(
    reader: &Readers,
    namespace: &Namespace,
) -> Result<NamespacePolicy> {
    let row: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT p.policy FROM namespaces n LEFT JOIN namespace_policies p \
         ON p.namespace = n.name WHERE n.name = ?",
    )
    .bind(namespace.as_str())
    .fetch_optional(reader)
    .await?;
    match row {
        None => Err(Error::NotFound(format!("namespace {namespace}"))),
        Some((None,)) => Ok(NamespacePolicy::default()),
        Some((Some(json),)) => Ok(serde_json::from_str(&json)?),
    }
}

pub(super) async fn set_namespace_policy(
    writer: &Slot,
    namespace: &Namespace,
    policy: &NamespacePolicy,
    events: &[NewEvent],
) -> Result<()> {
    let json = serde_json::to_string(policy)?;
    // The foreign key refuses a namespace that does not exist; say so.
    let mut tx = writer.begin().await?;
    let exists: Option<(String,)> = sqlx::query_as("SELECT name FROM namespaces WHERE name = ?")
        .bind(namespace.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        return Err(Error::NotFound(format!("namespace {namespace}")));
    }
    sqlx::query(
        "INSERT INTO namespace_policies (namespace, policy) VALUES (?, ?) \
         ON CONFLICT (namespace) DO UPDATE SET policy = excluded.policy",
    )
    .bind(namespace.as_str())
    .bind(json)
    .execute(&mut *tx)
    .await?;
    let mut batch = Batch::new();
    super::outbox::record_events(&mut batch, events, now())?;
    tx.commit_with(batch).await?;
    Ok(())
}
