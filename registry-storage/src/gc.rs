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
//! backend does not know are always kept. Manifests are never collected,
//! tagged or not.
//!
//! # Running online
//! The collector runs while the registry serves. To keep a manifest
//! committed during the sweep from losing its blobs, it re-reads the mark
//! set after listing the blobs and only deletes what is unreferenced in
//! both readings and older than the grace period. A manifest that starts
//! referencing an *old* unreferenced blob between that second reading and
//! the delete (a client that found the blob with `HEAD` and skipped the
//! upload) can still lose it: keep the grace period longer than the time
//! between a client's blob check and its manifest push. Only one collector
//! should run at a time against one set of stores; callers serialise runs.

use std::collections::HashSet;
use std::time::{Duration, Instant, SystemTime};

use futures::TryStreamExt;
use registry_core::Digest;

use crate::blob::{BlobInfo, BlobStore};
use crate::error::{Result, StorageError};
use crate::metadata::MetadataStore;
use crate::upload::UploadStore;

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
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace_period: Duration::from_secs(3600),
            upload_max_age: Duration::from_secs(24 * 3600),
            dry_run: false,
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
    /// The deleted blobs' digests.
    pub deleted: Vec<Digest>,
    /// Upload sessions cancelled for being older than `upload_max_age` (or,
    /// in a dry run, that would have been).
    pub uploads_expired: u64,
    /// How long the run took.
    pub duration: Duration,
    /// Whether this was a dry run (nothing was changed).
    pub dry_run: bool,
    /// Temp files of interrupted writes removed
    /// ([`UploadStore::remove_stale_files`]); not done in a dry run.
    pub stale_files_removed: u64,
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

/// Lists the blobs and returns those that are unreferenced and old enough,
/// counting the others into `report`.
async fn candidates(
    blobs: &dyn BlobStore,
    marked: &HashSet<Digest>,
    now: SystemTime,
    options: &GcOptions,
    report: &mut GcReport,
) -> Result<Vec<BlobInfo>> {
    let mut listing = blobs.list();
    let mut found = Vec::new();
    while let Some(info) = listing.try_next().await? {
        report.blobs_scanned += 1;
        if marked.contains(&info.digest) {
            report.blobs_referenced += 1;
        } else if info
            .modified
            .is_some_and(|m| older_than(m, now, options.grace_period))
        {
            found.push(info);
        } else {
            report.blobs_young += 1;
        }
    }
    Ok(found)
}

/// Runs one garbage collection over the three stores (see the module
/// documentation for what is collected and how it stays safe online).
///
/// Order: expire upload sessions; read the mark set; list the blobs and
/// pick the unreferenced ones older than the grace period; read the mark
/// set again and drop every candidate referenced now; then, for each
/// remaining candidate, [`MetadataStore::forget_blob`] (so no repository
/// claims it any more) and [`BlobStore::delete`]. A blob deleted by someone
/// else meanwhile is skipped. With `dry_run` nothing is changed and the
/// report says what would have been.
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
        report.stale_files_removed = uploads.remove_stale_files().await?;
    }

    let marked = metadata.referenced_blobs().await?;
    let found = candidates(blobs, &marked, now, &options, &mut report).await?;
    // Manifests committed while we listed: their blobs are not garbage.
    let marked_again = if found.is_empty() {
        HashSet::new()
    } else {
        metadata.referenced_blobs().await?
    };
    for info in found {
        if marked_again.contains(&info.digest) {
            report.blobs_referenced += 1;
            continue;
        }
        if !options.dry_run {
            metadata.forget_blob(&info.digest).await?;
            match blobs.delete(&info.digest).await {
                Ok(()) => {}
                Err(StorageError::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        tracing::info!(target: "gc", digest = %info.digest, size = info.size,
            dry_run = options.dry_run, "swept unreferenced blob");
        report.blobs_deleted += 1;
        report.bytes_freed += info.size;
        report.deleted.push(info.digest);
    }
    report.duration = started.elapsed();
    tracing::info!(target: "gc", scanned = report.blobs_scanned,
        deleted = report.blobs_deleted, bytes_freed = report.bytes_freed,
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
