//! `POST /apis/admin/v1/namespaces/{ns}/mirror/sync`: the request and the
//! progress events of ahead-of-time mirroring into a proxy namespace.

use registry_core::{Digest, RepositoryName, Tag};
use serde::{Deserialize, Serialize};

/// What to copy from the upstream of a proxy namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(deny_unknown_fields)]
pub struct MirrorSyncRequest {
    /// The repository under the namespace, as the upstream names it
    /// (`library/alpine`).
    pub repository: String,
    /// A glob over the upstream's tags (`3.*`); every tag when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<String>,
    /// Every platform of an index, not only the server's own
    /// (`linux/<its architecture>`).
    #[serde(default)]
    pub all_platforms: bool,
}

impl MirrorSyncRequest {
    /// A sync of `repository`'s tags matching `tags`.
    pub fn new(repository: impl Into<String>, tags: Option<String>, all_platforms: bool) -> Self {
        MirrorSyncRequest {
            repository: repository.into(),
            tags,
            all_platforms,
        }
    }
}

/// What one tag's sync did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SyncedTag {
    /// The tag.
    pub tag: Option<Tag>,
    /// The manifest it points at, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// Manifests stored or found (the tag's, and an index's children).
    pub manifests: u64,
    /// Blobs fetched from the upstream.
    pub blobs_fetched: u64,
    /// Blobs already stored (skipped: what makes a sync resumable).
    pub blobs_cached: u64,
    /// Bytes fetched from the upstream.
    pub bytes_fetched: u64,
    /// Why this tag failed, if it did (the sync goes on with the next).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One line of the answer (newline-delimited JSON, streamed as the sync
/// goes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum MirrorSyncEvent {
    /// The tags to sync, as listed by the upstream and filtered.
    Started {
        /// The repository (with the namespace).
        repository: RepositoryName,
        /// `host[:port]/<name>` upstream.
        upstream: String,
        /// How many tags matched.
        tags: u64,
    },
    /// One tag synced (or failed).
    Tag(SyncedTag),
    /// The end.
    Finished {
        /// Tags synced.
        tags_synced: u64,
        /// Tags that failed.
        tags_failed: u64,
        /// Blobs fetched.
        blobs_fetched: u64,
        /// Blobs already stored.
        blobs_cached: u64,
        /// Bytes fetched.
        bytes_fetched: u64,
    },
    /// The sync could not go on (the upstream's tag list failed, …).
    Failed {
        /// Why.
        message: String,
    },
}
