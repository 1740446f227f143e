//! Repository↔blob links, the garbage collector's mark set and its
//! per-blob records (`blob_records`, see `crate::gc`).

use std::collections::HashSet;

use registry_core::{Digest, RepositoryName};
use sqlx::{FromRow, SqliteConnection};

use super::batch::Batch;
use super::connections::{Guarded, Readers, Slot};

use super::error::{from_nanos, now, parse, Error, Result};
use super::repositories::ensure_repository;
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

fn to_u64(column: &'static str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|e| Error::Corrupt {
        column,
        value: v.to_string(),
        source: Box::new(e),
    })
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

/// A blob's record, by digest.
const RECORD: &str = "SELECT state, generation, epoch, touched FROM blob_records WHERE digest = ?";

/// A blob's record, inside a caller's transaction or on a pool.
async fn record(conn: &mut SqliteConnection, digest: &Digest) -> Result<BlobRecord> {
    let row: Option<RecordRow> = sqlx::query_as(RECORD)
        .bind(digest.as_str())
        .fetch_optional(conn)
        .await?;
    row.map_or(Ok(BlobRecord::UNKNOWN), RecordRow::into_record)
}

pub(super) async fn blob_record(reader: &Readers, digest: &Digest) -> Result<BlobRecord> {
    let mut conn = reader.hold().await?;
    record(&mut conn, digest).await
}

/// Adds to `batch` the statement that marks blobs live and wanted now
/// (`digests`: a JSON array, see
/// [`digest_list`](super::manifests::digest_list)); the batch runs in the
/// caller's transaction.
pub(super) fn touch<'a>(batch: &mut Batch<'a>, digests: &'a str, now: i64) -> Result<()> {
    batch.push(
        "INSERT INTO blob_records (digest, state, generation, epoch, touched) \
         SELECT value, 0, 1, 0, ? FROM json_each(?) WHERE true ON CONFLICT (digest) DO UPDATE \
         SET state = 0, generation = generation + 1, touched = excluded.touched",
    );
    batch.bind(now)?.bind(digests)?;
    Ok(())
}

pub(super) async fn link_blob(
    writer: &Slot,
    repository: &RepositoryName,
    digest: &Digest,
) -> Result<()> {
    link(writer, repository, digest, None, None).await
}

pub(super) async fn link_blob_with(
    writer: &Slot,
    repository: &RepositoryName,
    ticket: &BlobTicket,
) -> Result<()> {
    link(
        writer,
        repository,
        ticket.digest(),
        Some(ticket.epoch()),
        ticket.size(),
    )
    .await
}

/// Links a blob unless a collector is deleting it or (with `epoch`) started
/// deleting it since the caller's ticket, or the namespace's quota would be
/// exceeded.
///
/// Usually one round trip: `BEGIN IMMEDIATE`, the reads the checks need, a
/// guard that holds when the checks would pass, the writes and `COMMIT`.
/// When the guard fails, the transaction stays open with the reads' rows:
/// the checks run in Rust, name what failed, or (the guard is stricter than
/// they are) pass and the writes follow in a second round trip.
async fn link(
    writer: &Slot,
    repository: &RepositoryName,
    digest: &Digest,
    epoch: Option<u64>,
    size: Option<u64>,
) -> Result<()> {
    let now = now();
    let list = super::manifests::digest_list([digest]);
    let mut batch = Batch::new();
    let record_at = batch.push(RECORD);
    batch.bind(digest.as_str())?;
    let policy_at = usage::quota_policy(&mut batch, repository.namespace())?;
    if let Some(size) = size {
        // Recorded before the quota's check (and the guard), which counts
        // recorded sizes; rolled back with the rest if a check fails.
        usage::record_size(&mut batch, digest, size)?;
    }
    push_link_guard(&mut batch, repository, digest, &list, epoch)?;
    link_writes(&mut batch, repository, digest, &list, now)?;
    let (mut tx, rows) = match writer.transact_guarded(batch).await? {
        Guarded::Committed => return Ok(()),
        Guarded::Stopped(tx, rows) => (tx, rows),
    };
    let current = match rows[record_at].first() {
        Some(row) => RecordRow::from_row(row)?.into_record()?,
        None => BlobRecord::UNKNOWN,
    };
    if current.state == BlobState::Deleting || epoch.is_some_and(|e| e != current.epoch) {
        return Err(Error::BlobDeleted(digest.clone()));
    }
    usage::check_quota(&mut tx, repository, &list, &rows[policy_at]).await?;
    let mut writes = Batch::new();
    link_writes(&mut writes, repository, digest, &list, now)?;
    tx.commit_with(writes).await?;
    Ok(())
}

/// [`link`]'s guard: holds only when the checks in Rust would pass. The
/// blob's record, if any, is live or deleted (not being deleted, not
/// corrupt) and of the ticket's epoch (a blob without one is of epoch 0),
/// and the namespace stays within its quota, if any.
fn push_link_guard<'a>(
    batch: &mut Batch<'a>,
    repository: &'a RepositoryName,
    digest: &'a Digest,
    list: &'a str,
    epoch: Option<u64>,
) -> Result<()> {
    // An epoch past `i64::MAX` was never stored: -1 matches none, and the
    // checks in Rust then report the blob deleted.
    let epoch = epoch.map(|e| i64::try_from(e).unwrap_or(-1));
    batch.push_guard(&format!(
        "NOT EXISTS (SELECT 1 FROM blob_records WHERE digest = ? \
             AND (state NOT IN (?, ?) OR epoch < 0 OR generation < 0 OR epoch <> coalesce(?, epoch))) \
         AND (? IS NULL OR ? = 0 OR EXISTS (SELECT 1 FROM blob_records WHERE digest = ?)) \
         AND {}",
        usage::WITHIN_QUOTA
    ));
    batch
        .bind(digest.as_str())?
        .bind(LIVE)?
        .bind(DELETED)?
        .bind(epoch)?
        .bind(epoch)?
        .bind(epoch)?
        .bind(digest.as_str())?
        .bind(repository.namespace())?
        .bind(list)?;
    Ok(())
}

/// A link's writes: the blob marked live and wanted now, the repository
/// and the link.
fn link_writes<'a>(
    batch: &mut Batch<'a>,
    repository: &'a RepositoryName,
    digest: &'a Digest,
    list: &'a str,
    now: i64,
) -> Result<()> {
    touch(batch, list, now)?;
    ensure_repository(batch, repository, now)?;
    batch.push(
        "INSERT INTO blob_links (repository, digest, created) VALUES (?, ?, ?) \
         ON CONFLICT DO NOTHING",
    );
    batch
        .bind(repository.as_str())?
        .bind(digest.as_str())?
        .bind(now)?;
    Ok(())
}

pub(super) async fn linked_blob(
    reader: &Readers,
    repository: &RepositoryName,
    digest: &Digest,
) -> Result<Option<LinkedBlob>> {
    let found: Option<(Option<i64>,)> = sqlx::query_as(
        "SELECT s.size FROM blob_links l LEFT JOIN blob_sizes s ON s.digest = l.digest \
         WHERE l.repository = ? AND l.digest = ?",
    )
    .bind(repository.as_str())
    .bind(digest.as_str())
    .fetch_optional(reader)
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
    writer: &Slot,
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

pub(super) async fn referenced_blobs(reader: &Readers) -> Result<HashSet<Digest>> {
    // DISTINCT walks `manifest_blobs_by_blob` instead of sorting.
    let digests: Vec<String> = sqlx::query_scalar("SELECT DISTINCT blob FROM manifest_blobs")
        .fetch_all(reader)
        .await?;
    digests
        .iter()
        .map(|d| parse("manifest_blobs.blob", d))
        .collect()
}

pub(super) async fn forget_blob(writer: &Slot, digest: &Digest) -> Result<()> {
    sqlx::query("DELETE FROM blob_links WHERE digest = ?")
        .bind(digest.as_str())
        .execute(writer)
        .await?;
    Ok(())
}

pub(super) async fn begin_blob_delete(
    writer: &Slot,
    digest: &Digest,
    generation: u64,
) -> Result<bool> {
    let now = now();
    let mut tx = writer.begin().await?;
    let current = record(&mut tx, digest).await?;
    let referenced: Option<i64> = sqlx::query_scalar("SELECT 1 FROM manifest_blobs WHERE blob = ?")
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
         VALUES (?1, 1, ?2, ?3, ?4) ON CONFLICT (digest) DO UPDATE SET \
         state = 1, generation = ?2, epoch = ?3, touched = ?4",
    )
    .bind(digest.as_str())
    .bind(next(current.generation))
    .bind(next(current.epoch))
    .bind(now)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM blob_links WHERE digest = ?")
        .bind(digest.as_str())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

pub(super) async fn finish_blob_delete(writer: &Slot, digest: &Digest) -> Result<()> {
    sqlx::query(
        "UPDATE blob_records SET state = 2, generation = generation + 1 \
         WHERE digest = ? AND state = 1",
    )
    .bind(digest.as_str())
    .execute(writer)
    .await?;
    Ok(())
}

pub(super) async fn stale_blob_deletes(reader: &Readers, before: i64) -> Result<Vec<Digest>> {
    let digests: Vec<String> = sqlx::query_scalar(
        "SELECT digest FROM blob_records WHERE state = 1 AND touched < ? ORDER BY digest",
    )
    .bind(before)
    .fetch_all(reader)
    .await?;
    digests
        .iter()
        .map(|d| parse("blob_records.digest", d))
        .collect()
}
