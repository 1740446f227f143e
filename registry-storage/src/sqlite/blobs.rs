//! Repository↔blob links and the garbage collector's mark set.

use std::collections::HashSet;

use registry_core::{Digest, RepositoryName};
use sqlx::SqlitePool;

use super::error::{now, parse, Error, Result};
use super::repositories::ensure_repository;

pub(super) async fn link_blob(
    writer: &SqlitePool,
    repository: &RepositoryName,
    digest: &Digest,
) -> Result<()> {
    let now = now();
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    ensure_repository(&mut tx, repository, now).await?;
    sqlx::query(
        "INSERT INTO blob_links (repository, digest, created) VALUES (?, ?, ?) \
         ON CONFLICT DO NOTHING",
    )
    .bind(repository.as_str())
    .bind(digest.as_str())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn blob_linked(
    reader: &SqlitePool,
    repository: &RepositoryName,
    digest: &Digest,
) -> Result<bool> {
    let found: Option<i64> =
        sqlx::query_scalar("SELECT 1 FROM blob_links WHERE repository = ? AND digest = ?")
            .bind(repository.as_str())
            .bind(digest.as_str())
            .fetch_optional(reader)
            .await?;
    Ok(found.is_some())
}

pub(super) async fn unlink_blob(
    writer: &SqlitePool,
    repository: &RepositoryName,
    digest: &Digest,
) -> Result<()> {
    let deleted = sqlx::query("DELETE FROM blob_links WHERE repository = ? AND digest = ?")
        .bind(repository.as_str())
        .bind(digest.as_str())
        .execute(writer)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound(format!("blob link {repository}@{digest}")));
    }
    Ok(())
}

pub(super) async fn referenced_blobs(reader: &SqlitePool) -> Result<HashSet<Digest>> {
    // DISTINCT walks `manifest_blobs_by_blob` instead of sorting.
    let digests: Vec<String> = sqlx::query_scalar("SELECT DISTINCT blob FROM manifest_blobs")
        .fetch_all(reader)
        .await?;
    digests
        .iter()
        .map(|d| parse("manifest_blobs.blob", d))
        .collect()
}

pub(super) async fn forget_blob(writer: &SqlitePool, digest: &Digest) -> Result<()> {
    sqlx::query("DELETE FROM blob_links WHERE digest = ?")
        .bind(digest.as_str())
        .execute(writer)
        .await?;
    Ok(())
}
