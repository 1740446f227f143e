//! `POST /apis/admin/v1/prune`: the request and the report.

use registry_core::{Digest, RepositoryName};
use serde::{Deserialize, Serialize};

/// `POST /prune` (the body is optional: every field defaults).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(deny_unknown_fields)]
pub struct PruneRequest {
    /// Report what would be deleted without deleting.
    #[serde(default)]
    pub dry_run: bool,
    /// Blobs younger than this are kept (default: the server's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grace_period_seconds: Option<u64>,
    /// Upload sessions idle longer than this are expired (default: the
    /// server's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upload_max_age_seconds: Option<u64>,
}

impl PruneRequest {
    /// A prune with the given options.
    pub fn new(
        dry_run: bool,
        grace_period_seconds: Option<u64>,
        upload_max_age_seconds: Option<u64>,
    ) -> Self {
        PruneRequest {
            dry_run,
            grace_period_seconds,
            upload_max_age_seconds,
        }
    }
}

/// The answer to `POST /prune`: what the run found and did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PruneReport {
    /// Blobs deleted (or, on a dry run, that would be).
    pub blobs_deleted: u64,
    /// Blobs a manifest or upload references.
    pub blobs_referenced: u64,
    /// Blobs looked at.
    pub blobs_scanned: u64,
    /// Unreferenced blobs kept because they are within the grace period.
    pub blobs_young: u64,
    /// Bytes freed.
    pub bytes_freed: u64,
    /// The digests of deleted blobs, at most a bounded number (the run's
    /// log names every one).
    pub deleted: Vec<Digest>,
    /// Deleted blobs not listed in `deleted`.
    pub deleted_unlisted: u64,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// How long the run took.
    pub duration_seconds: f64,
    /// Manifests planned for removal that a tag, index or push took while
    /// the run decided (kept).
    #[serde(default)]
    pub manifests_raced: u64,
    /// Manifests removed by the namespaces' retention rules (or, on a dry
    /// run, that would be).
    #[serde(default)]
    pub manifests_removed: u64,
    /// Manifests of namespaces with retention rules looked at.
    #[serde(default)]
    pub manifests_scanned: u64,
    /// The removed manifests with the reason, at most a bounded number (the
    /// run's log names every one).
    #[serde(default)]
    pub removed: Vec<PrunedManifest>,
    /// Removed manifests not listed in `removed`.
    #[serde(default)]
    pub removed_unlisted: u64,
    /// Upload sessions expired.
    pub uploads_expired: u64,
}

/// A manifest a prune removed by retention, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PrunedManifest {
    /// Its digest.
    pub digest: Digest,
    /// Why it goes, as a sentence ("revision 4 of tag latest
    /// (keep_tag_revisions 3)").
    pub reason: String,
    /// Its repository.
    pub repository: RepositoryName,
}
