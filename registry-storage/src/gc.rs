//! Online garbage collection: [`collect_garbage`] sweeps blobs that no
//! manifest references and expires abandoned upload sessions.
//!
//! # What is garbage
//! A blob is kept while any manifest of any repository references it (as
//! config or layer: [`MetadataStore::referenced_blobs`], the mark set).
//! A blob that is merely *linked* to a repository (uploaded or mounted into
//! it, but referenced by no manifest) is garbage once it is older than the
//! grace period, as in Distribution's garbage collector: a client pushes
//! its blobs first and the manifest last, and the grace period is what
//! protects the blobs of a push still in progress. Blobs whose age the
//! backend does not know are always kept. Manifests go only by the
//! retention rules of their namespace's policy ([`crate::retention`]),
//! applied first in the same run, so the blobs they free go at once.
//!
//! # Running online, safely
//! The collector runs while the registry serves, and several collectors
//! (threads, processes, replicas) may run at once: its safety comes from
//! the metadata store's transactions, not from a lock. Each blob has a
//! [`BlobRecord`] in the metadata store: a *generation* that every link and
//! every manifest commit moves inside its own transaction, and an *epoch*
//! that moves when a collector starts deleting the blob.
//!
//! A sweep lists the blobs; for each unreferenced one older than the grace
//! period (by its bytes' age and by when a link or manifest last touched
//! it) it reads the record. To delete, it first *marks* the blob
//! ([`MetadataStore::begin_blob_delete`]): one transaction that re-checks
//! that no manifest references it and that its generation has not moved
//! since the read, then records it `Deleting`, moves its epoch and removes
//! its links. Only then are the bytes deleted, and the record becomes
//! `Deleted` ([`MetadataStore::finish_blob_delete`]). On the other side:
//!
//! - A manifest commit ([`MetadataStore::put_manifest`]) fails with
//!   [`StorageError::BlobDeleted`] when one of its blobs is `Deleting` or
//!   `Deleted`, and otherwise moves their generations in the same
//!   transaction. Whichever commits first, the other sees it: a collector
//!   never deletes a blob that a manifest acknowledged before, during or
//!   after the sweep references, whatever the manifest's reference checks
//!   saw earlier (a `HEAD`, a stat before the sweep).
//! - An upload or mount takes a [`BlobTicket`](crate::BlobTicket) (the epoch) *before* storing
//!   or finding the bytes, and links with
//!   [`MetadataStore::link_blob_with`], which fails if the epoch moved. So a
//!   put that was a no-op because the bytes existed, or a mount that found
//!   them, cannot be acknowledged once a deletion started in between; and a
//!   link made after the collector read the record moves the generation, so
//!   that collector keeps the blob.
//!
//! A client racing a deletion gets an error (`BlobDeleted`, which it can
//! retry by uploading the blob again), never a success for bytes that are
//! then gone. The grace period is no longer what keeps acknowledged data:
//! it only spares the blobs of a push in progress (uploaded, manifest not
//! pushed yet) from being deleted under it, which would fail that push.
//! Blobs whose age the backend does not know are always kept. A blob left
//! `Deleting` by a collector that crashed is finished by a later run once
//! the mark is [`ABANDONED_DELETE`] old; a collector must not pause longer
//! than that between a mark and its delete.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use futures::TryStreamExt;
use registry_core::Digest;

use crate::blob::{BlobInfo, BlobStore};
use crate::error::{Result, StorageError};
use crate::metadata::{BlobRecord, BlobState, MetadataStore};
use crate::retention::{apply_retention, RetentionReport};
use crate::upload::UploadStore;

/// How old a collector's `Deleting` mark must be before another run takes
/// it for abandoned (its collector crashed) and finishes the deletion.
pub const ABANDONED_DELETE: Duration = Duration::from_secs(3600);

/// How [`collect_garbage`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcOptions {
    /// Unreferenced blobs younger than this are kept (a push in progress
    /// uploads its blobs before its manifest). Default: one hour.
    pub grace_period: Duration,
    /// Upload sessions started longer ago than this are cancelled.
    /// Default: 24 hours.
    pub upload_max_age: Duration,
    /// Report what would be deleted and cancelled, but change nothing.
    pub dry_run: bool,
    /// Apply the namespaces' retention rules first
    /// ([`crate::retention::apply_retention`]). Default: on (a namespace
    /// without retention rules keeps every manifest anyway).
    pub retention: bool,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace_period: Duration::from_secs(3600),
            upload_max_age: Duration::from_secs(24 * 3600),
            dry_run: false,
            retention: true,
        }
    }
}

/// What one run of [`collect_garbage`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Blobs listed in the blob store.
    pub blobs_scanned: u64,
    /// Blobs kept because a manifest references them.
    pub blobs_referenced: u64,
    /// Unreferenced blobs kept because they are younger than the grace
    /// period or of unknown age.
    pub blobs_young: u64,
    /// Blobs deleted (or, in a dry run, that would have been).
    pub blobs_deleted: u64,
    /// Bytes of the deleted blobs.
    pub bytes_freed: u64,
    /// The first [`GcReport::MAX_LISTED`] deleted blobs' digests; the
    /// rest are counted in `deleted_unlisted` (every one is in the log).
    pub deleted: Vec<Digest>,
    /// Deleted blobs not listed in `deleted`, so a report's size stays
    /// bounded however much one run sweeps.
    pub deleted_unlisted: u64,
    /// Upload sessions cancelled for being older than `upload_max_age` (or,
    /// in a dry run, that would have been).
    pub uploads_expired: u64,
    /// Unreferenced blobs kept because a link or a manifest took them while
    /// the run was deciding (their record moved after it was read).
    pub blobs_raced: u64,
    /// How long the run took.
    pub duration: Duration,
    /// Whether this was a dry run (nothing was changed).
    pub dry_run: bool,
    /// Temp files of interrupted writes removed
    /// ([`UploadStore::remove_stale_files`]); not done in a dry run.
    pub stale_files_removed: u64,
    /// What retention removed before the sweep (empty when
    /// [`GcOptions::retention`] is off).
    pub retention: RetentionReport,
}

impl GcReport {
    /// Most digests [`GcReport::deleted`] lists.
    pub const MAX_LISTED: usize = 256;

    /// Records a deleted blob's digest: listed while there is room, else
    /// only counted.
    fn record_deleted(&mut self, digest: Digest) {
        if self.deleted.len() < Self::MAX_LISTED {
            self.deleted.push(digest);
        } else {
            self.deleted_unlisted += 1;
        }
    }
}

/// Whether something last changed at `modified` is at least `age` old at
/// `now`. A time in the future (clock skew) is young.
fn older_than(modified: SystemTime, now: SystemTime, age: Duration) -> bool {
    now.duration_since(modified)
        .is_ok_and(|elapsed| elapsed >= age)
}

/// Expires abandoned upload sessions; returns how many.
async fn expire_uploads(
    uploads: &dyn UploadStore,
    now: SystemTime,
    options: &GcOptions,
) -> Result<u64> {
    let mut expired = 0;
    for session in uploads.list().await? {
        if !older_than(session.started, now, options.upload_max_age) {
            continue;
        }
        if !options.dry_run {
            match uploads.cancel(&session.id).await {
                Ok(()) => {}
                // Committed or cancelled since the listing: not ours to count.
                Err(StorageError::UploadUnknown { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        tracing::info!(target: "gc", upload = %session.id, repository = %session.repository,
            dry_run = options.dry_run, "expired upload session");
        expired += 1;
    }
    Ok(expired)
}

/// A blob the run may delete: what the listing said, and the record's
/// generation when it was read.
struct Candidate {
    info: BlobInfo,
    generation: u64,
}

/// Whether a record says the blob was linked or referenced within the grace
/// period (or is being deleted by another run).
fn recently_touched(record: &BlobRecord, now: SystemTime, options: &GcOptions) -> bool {
    record.state == BlobState::Deleting
        || record
            .touched
            .is_some_and(|t| !older_than(t, now, options.grace_period))
}

/// Lists the blobs and returns those that are unreferenced and old enough,
/// each with its record's generation read at listing time, counting the
/// others into `report`.
async fn candidates(
    blobs: &dyn BlobStore,
    metadata: &dyn MetadataStore,
    marked: &HashSet<Digest>,
    now: SystemTime,
    options: &GcOptions,
    report: &mut GcReport,
) -> Result<Vec<Candidate>> {
    let mut listing = blobs.list();
    let mut found = Vec::new();
    while let Some(info) = listing.try_next().await? {
        report.blobs_scanned += 1;
        if marked.contains(&info.digest) {
            report.blobs_referenced += 1;
            continue;
        }
        let old_bytes = info
            .modified
            .is_some_and(|m| older_than(m, now, options.grace_period));
        if !old_bytes {
            report.blobs_young += 1;
            continue;
        }
        let record = metadata.blob_record(&info.digest).await?;
        if recently_touched(&record, now, options) {
            report.blobs_young += 1;
            continue;
        }
        found.push(Candidate {
            info,
            generation: record.generation,
        });
    }
    Ok(found)
}

/// Deletes the bytes of a blob marked `Deleting`, then records it
/// `Deleted`. The record is finished even when the delete fails: the bytes
/// are then still there, unlinked, for a later run.
async fn delete_marked(
    blobs: &dyn BlobStore,
    metadata: &dyn MetadataStore,
    digest: &Digest,
) -> Result<()> {
    let deleted = match blobs.delete(digest).await {
        Ok(()) | Err(StorageError::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    };
    metadata.finish_blob_delete(digest).await?;
    deleted
}

/// Finishes deletions that a crashed collector marked and never ended.
async fn finish_abandoned(
    blobs: &dyn BlobStore,
    metadata: &dyn MetadataStore,
    now: SystemTime,
) -> Result<()> {
    let Some(before) = now.checked_sub(ABANDONED_DELETE) else {
        return Ok(());
    };
    for digest in metadata.stale_blob_deletes(before).await? {
        tracing::warn!(target: "gc", %digest, "finishing a deletion an earlier run abandoned");
        delete_marked(blobs, metadata, &digest).await?;
    }
    Ok(())
}

/// Drops from the mark set the blobs only manifests a dry run of
/// retention would remove reference.
async fn released(
    metadata: &dyn MetadataStore,
    retention: &RetentionReport,
    marked: &mut HashSet<Digest>,
) -> Result<()> {
    for (blob, removed) in &retention.released_blobs {
        if metadata.blob_reference_count(blob).await? <= *removed {
            marked.remove(blob);
        }
    }
    Ok(())
}

/// Runs one garbage collection over the three stores (see the module
/// documentation for what is collected and why it is safe online).
///
/// Order: expire upload sessions; finish abandoned deletions; apply
/// retention (when [`GcOptions::retention`]); read the mark
/// set; list the blobs and pick the unreferenced ones older than the grace
/// period, reading each one's record; read the mark set again and drop
/// every candidate referenced now (for the report: the mark re-checks it
/// anyway); then for each remaining candidate mark it
/// ([`MetadataStore::begin_blob_delete`], which refuses a blob whose record
/// moved), delete its bytes and finish its record. With `dry_run` nothing
/// is changed and the report says what would have been.
pub async fn collect_garbage(
    blobs: &dyn BlobStore,
    uploads: &dyn UploadStore,
    metadata: &dyn MetadataStore,
    options: GcOptions,
) -> Result<GcReport> {
    let started = Instant::now();
    let now = SystemTime::now();
    let mut report = GcReport {
        dry_run: options.dry_run,
        ..GcReport::default()
    };
    report.uploads_expired = expire_uploads(uploads, now, &options).await?;
    if !options.dry_run {
        finish_abandoned(blobs, metadata, now).await?;
        report.stale_files_removed = uploads.remove_stale_files().await?;
    }

    if options.retention {
        report.retention = apply_retention(metadata, options.dry_run).await?;
    }
    let mut marked = metadata.referenced_blobs().await?;
    if options.dry_run {
        // The manifests retention would remove still reference their
        // blobs: a blob every reference of which is among them is counted
        // as the real run would find it, unreferenced.
        released(metadata, &report.retention, &mut marked).await?;
    }
    let found = candidates(blobs, metadata, &marked, now, &options, &mut report).await?;
    // Manifests committed while we listed: their blobs are not garbage (a
    // dry run deletes nothing, so what it read first stands).
    let marked_again = if found.is_empty() || options.dry_run {
        marked
    } else {
        metadata.referenced_blobs().await?
    };
    for Candidate { info, generation } in found {
        if marked_again.contains(&info.digest) {
            report.blobs_referenced += 1;
            continue;
        }
        if !options.dry_run {
            if !metadata.begin_blob_delete(&info.digest, generation).await? {
                report.blobs_raced += 1;
                continue;
            }
            delete_marked(blobs, metadata, &info.digest).await?;
        }
        tracing::info!(target: "gc", digest = %info.digest, size = info.size,
            dry_run = options.dry_run, "swept unreferenced blob");
        report.blobs_deleted += 1;
        report.bytes_freed += info.size;
        report.record_deleted(info.digest);
    }
    report.duration = started.elapsed();
    tracing::info!(target: "gc", scanned = report.blobs_scanned,
        deleted = report.blobs_deleted, bytes_freed = report.bytes_freed,
        raced = report.blobs_raced,
        uploads_expired = report.uploads_expired, dry_run = report.dry_run,
        elapsed_ms = report.duration.as_millis() as u64, "garbage collection finished");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::older_than;
    use std::time::{Duration, SystemTime};

    #[test]
    fn ages() {
        let now = SystemTime::now();
        let hour = Duration::from_secs(3600);
        assert!(older_than(now - 2 * hour, now, hour));
        assert!(!older_than(now - hour / 2, now, hour));
        assert!(older_than(now, now, Duration::ZERO));
        // Clock skew: a blob from the future is young.
        assert!(!older_than(now + hour, now, Duration::ZERO));
    }
}
