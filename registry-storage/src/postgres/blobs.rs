//! Repository↔blob links, the garbage collector's mark set and its
//! per-blob records (`blob_records`, see `crate::gc`).

use std::collections::HashSet;

use registry_core::{Digest, RepositoryName};
use sqlx::{PgConnection, PgPool};

use super::error::{from_nanos, now, parse, to_u64, Error, Result};
use super::repositories::ensure_repository;
use super::tx::serializable;
use super::usage;
use crate::metadata::{BlobRecord, BlobState, BlobTicket, LinkedBlob};

const LIVE: i64 = 0;
const DELETING: i64 = 1;
const DELETED: i64 = 2;

#[derive(sqlx::FromRow)]
struct RecordRow {
    state: i64,
    generation: i64,
    epoch: i64,
    touched: i64,
}

impl RecordRow {
    fn into_record(self) -> Result<BlobRecord> {
        let state = match self.state {
            LIVE => BlobState::Live,
            DELETING => BlobState::Deleting,
            DELETED => BlobState::Deleted,
            other => {
                return Err(Error::Corrupt {
                    column: "blob_records.state",
                    value: other.to_string(),
                    source: "unknown state".into(),
                })
            }
        };
        Ok(BlobRecord {
            state,
            generation: to_u64("blob_records.generation", self.generation)?,
            epoch: to_u64("blob_records.epoch", self.epoch)?,
            touched: Some(from_nanos(self.touched)),
        })
    }
}

/// A blob's record, inside a caller's transaction or on a pooled connection.
async fn record(conn: &mut PgConnection, digest: &Digest) -> Result<BlobRecord> {
    let row: Option<RecordRow> = sqlx::query_as(
        "SELECT state, generation, epoch, touched FROM blob_records WHERE digest = $1",
    )
    .bind(digest.as_str())
    .fetch_optional(conn)
    .await?;
    row.map_or(Ok(BlobRecord::UNKNOWN), RecordRow::into_record)
}

pub(super) async fn blob_record(pool: &PgPool, digest: &Digest) -> Result<BlobRecord> {
    let mut conn = pool.acquire().await?;
    record(&mut conn, digest).await
}

/// Marks blobs (distinct digests) live and wanted now; part of a caller's
/// transaction.
pub(super) async fn touch(conn: &mut PgConnection, digests: &[&str], now: i64) -> Result<()> {
    if digests.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO blob_records AS r (digest, state, generation, epoch, touched) \
         SELECT d, 0, 1, 0, $2 FROM unnest($1::text[]) AS d ON CONFLICT (digest) DO UPDATE \
         SET state = 0, generation = r.generation + 1, touched = EXCLUDED.touched",
    )
    .bind(digests)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Fails with `BlobDeleted` unless every blob is live; part of a caller's
/// transaction (a manifest commit).
pub(super) async fn ensure_live(conn: &mut PgConnection, digests: &[&str]) -> Result<()> {
    if digests.is_empty() {
        return Ok(());
    }
    let gone: Option<String> = sqlx::query_scalar(
        "SELECT digest FROM blob_records WHERE digest = ANY($1) AND state <> 0 \
         ORDER BY digest LIMIT 1",
    )
    .bind(digests)
    .fetch_optional(conn)
    .await?;
    match gone {
        None => Ok(()),
        Some(digest) => Err(Error::BlobDeleted(parse("blob_records.digest", &digest)?)),
    }
}

pub(super) async fn link_blob(
    pool: &PgPool,
    repository: &RepositoryName,
    digest: &Digest,
) -> Result<()> {
    link(pool, repository, digest, None, None).await
}

pub(super) async fn link_blob_with(
    pool: &PgPool,
    repository: &RepositoryName,
    ticket: &BlobTicket,
) -> Result<()> {
    link(
        pool,
        repository,
        ticket.digest(),
        Some(ticket.epoch()),
        ticket.size(),
    )
    .await
}

/// Links a blob unless a collector is deleting it or (with `epoch`) started
/// deleting it since the caller's ticket.
async fn link(
    pool: &PgPool,
    repository: &RepositoryName,
    digest: &Digest,
    epoch: Option<u64>,
    size: Option<u64>,
) -> Result<()> {
    serializable!(pool, |c| link_in(c, repository, digest, epoch, size))
}

async fn link_in(
    tx: &mut PgConnection,
    repository: &RepositoryName,
    digest: &Digest,
    epoch: Option<u64>,
    size: Option<u64>,
) -> Result<()> {
    let now = now();
    let current = record(tx, digest).await?;
    if current.state == BlobState::Deleting || epoch.is_some_and(|e| e != current.epoch) {
        return Err(Error::BlobDeleted(digest.clone()));
    }
    if let Some(size) = size {
        usage::record_size(tx, digest, size).await?;
    }
    usage::check_quota(tx, repository, [digest]).await?;
    touch(tx, &[digest.as_str()], now).await?;
    ensure_repository(tx, repository, now).await?;
    sqlx::query(
        "INSERT INTO blob_links (repository, digest, created) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING",
    )
    .bind(repository.as_str())
    .bind(digest.as_str())
    .bind(now)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

pub(super) async fn linked_blob(
    pool: &PgPool,
    repository: &RepositoryName,
    digest: &Digest,
) -> Result<Option<LinkedBlob>> {
    let found: Option<(Option<i64>,)> = sqlx::query_as(
        "SELECT s.size FROM blob_links l LEFT JOIN blob_sizes s ON s.digest = l.digest \
         WHERE l.repository = $1 AND l.digest = $2",
    )
    .bind(repository.as_str())
    .bind(digest.as_str())
    .fetch_optional(pool)
    .await?;
    found
        .map(|(size,)| {
            Ok(LinkedBlob {
                size: size
                    .map(|s| usage::count("blob_sizes.size", s))
                    .transpose()?,
            })
        })
        .transpose()
}

pub(super) async fn unlink_blob(
    pool: &PgPool,
    repository: &RepositoryName,
    digest: &Digest,
) -> Result<()> {
    let deleted = serializable!(pool, |c| {
        sqlx::query("DELETE FROM blob_links WHERE repository = $1 AND digest = $2")
            .bind(repository.as_str())
            .bind(digest.as_str())
            .execute(c)
    })?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound(format!("blob link {repository}@{digest}")));
    }
    Ok(())
}

pub(super) async fn referenced_blobs(pool: &PgPool) -> Result<HashSet<Digest>> {
    let digests: Vec<String> = sqlx::query_scalar("SELECT DISTINCT blob FROM manifest_blobs")
        .fetch_all(pool)
        .await?;
    digests
        .iter()
        .map(|d| parse("manifest_blobs.blob", d))
        .collect()
}

pub(super) async fn forget_blob(pool: &PgPool, digest: &Digest) -> Result<()> {
    serializable!(pool, |c| {
        sqlx::query("DELETE FROM blob_links WHERE digest = $1")
            .bind(digest.as_str())
            .execute(c)
    })?;
    Ok(())
}

pub(super) async fn begin_blob_delete(
    pool: &PgPool,
    digest: &Digest,
    generation: u64,
) -> Result<bool> {
    serializable!(pool, |c| begin_delete_in(c, digest, generation))
}

async fn begin_delete_in(tx: &mut PgConnection, digest: &Digest, generation: u64) -> Result<bool> {
    let now = now();
    let current = record(tx, digest).await?;
    let referenced: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM manifest_blobs WHERE blob = $1")
            .bind(digest.as_str())
            .fetch_optional(&mut *tx)
            .await?;
    if current.state == BlobState::Deleting
        || current.generation != generation
        || referenced.is_some()
    {
        return Ok(false);
    }
    let next = |v: u64| i64::try_from(v + 1).unwrap_or(i64::MAX);
    sqlx::query(
        "INSERT INTO blob_records (digest, state, generation, epoch, touched) \
         VALUES ($1, 1, $2, $3, $4) ON CONFLICT (digest) DO UPDATE SET \
         state = 1, generation = $2, epoch = $3, touched = $4",
    )
    .bind(digest.as_str())
    .bind(next(current.generation))
    .bind(next(current.epoch))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM blob_links WHERE digest = $1")
        .bind(digest.as_str())
        .execute(&mut *tx)
        .await?;
    Ok(true)
}

pub(super) async fn finish_blob_delete(pool: &PgPool, digest: &Digest) -> Result<()> {
    serializable!(pool, |c| {
        sqlx::query(
            "UPDATE blob_records SET state = 2, generation = generation + 1 \
             WHERE digest = $1 AND state = 1",
        )
        .bind(digest.as_str())
        .execute(c)
    })?;
    Ok(())
}

pub(super) async fn stale_blob_deletes(pool: &PgPool, before: i64) -> Result<Vec<Digest>> {
    let digests: Vec<String> = sqlx::query_scalar(
        "SELECT digest FROM blob_records WHERE state = 1 AND touched < $1 ORDER BY digest",
    )
    .bind(before)
    .fetch_all(pool)
    .await?;
    digests
        .iter()
        .map(|d| parse("blob_records.digest", d))
        .collect()
}
