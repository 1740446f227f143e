//! Usage documents: what a namespace stores against its quota.
//!
//! - `GET /apis/admin/v1/namespaces/{ns}/usage`: [`NamespaceUsage`].
//! - `POST /apis/admin/v1/namespaces/{ns}/usage/recompute`: [`UsageRecomputed`].
//!
//! The Image API shows the same figures on its namespace and ImageStream
//! documents ([`crate::model::image`]).

use registry_core::Namespace;
use serde::{Deserialize, Serialize};

/// Counts of one namespace. Fields in alphabetical order, like the rest of
/// the admin API.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UsageFigures {
    /// Distinct blobs linked to its repositories (each counted once).
    pub blobs: u64,
    /// Bytes of those blobs: what the quota limits.
    pub bytes: u64,
    /// Manifests stored in its repositories.
    pub images: u64,
    /// Its repositories.
    pub imagestreams: u64,
}

impl From<registry_storage::NamespaceUsage> for UsageFigures {
    fn from(u: registry_storage::NamespaceUsage) -> Self {
        UsageFigures {
            blobs: u.blobs,
            bytes: u.bytes,
            images: u.images,
            imagestreams: u.imagestreams,
        }
    }
}

/// `GET /namespaces/{ns}/usage`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NamespaceUsage {
    /// The namespace.
    pub namespace: Namespace,
    /// Its quota in bytes, `null` when it has none.
    pub quota_bytes: Option<u64>,
    /// What it stores.
    pub usage: UsageFigures,
}

/// `POST /namespaces/{ns}/usage/recompute`: the counters before and after
/// they were rebuilt from the links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct UsageRecomputed {
    /// The counters after the recount.
    pub after: UsageFigures,
    /// The counters before it (they differ only if something went wrong).
    pub before: UsageFigures,
    /// The namespace.
    pub namespace: Namespace,
    /// Blobs whose size was unknown and is now recorded (read from the
    /// blob store).
    pub sizes_learned: u64,
    /// Linked blobs whose bytes are missing from the blob store: they
    /// count 0.
    pub sizes_missing: u64,
}
