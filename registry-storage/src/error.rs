//! The one error type of the storage layer.

use registry_core::Digest;

use crate::usage::HumanBytes;

/// Boxed error source from a backend or an incoming body.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a store. Variants describe meaning, not backend detail;
/// backends keep their own errors private and convert with `From`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// The object (blob, manifest, tag, repository, namespace, record) does not exist.
    #[error("{what} not found")]
    NotFound {
        /// What was looked up, for logs.
        what: String,
    },
    /// The object exists already and the operation does not replace it.
    #[error("{what} already exists")]
    AlreadyExists {
        /// What was created, for logs.
        what: String,
    },
    /// The content's digest differs from the one the caller promised.
    #[error("digest mismatch: expected {expected}, content is {actual}")]
    DigestMismatch {
        /// The digest the caller promised.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// The content's size differs from the one the caller promised.
    #[error("size mismatch: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// The size promised.
        expected: u64,
        /// The size received.
        actual: u64,
    },
    /// An upload chunk does not start where the session ends.
    #[error("invalid upload offset: session is at {expected}, chunk starts at {got}")]
    InvalidOffset {
        /// Bytes the session holds: where the next chunk must start.
        expected: u64,
        /// Where the chunk claimed to start.
        got: u64,
    },
    /// A requested byte range lies outside the object.
    #[error("range {start}..{end} not satisfiable for {size} bytes")]
    RangeNotSatisfiable {
        /// First byte asked for.
        start: u64,
        /// One past the last byte asked for.
        end: u64,
        /// Size of the object.
        size: u64,
    },
    /// The upload session does not exist (never created, committed or cancelled).
    #[error("upload session {id} unknown")]
    UploadUnknown {
        /// The session id.
        id: String,
    },
    /// The backend cannot do this.
    #[error("operation not supported: {what}")]
    NotSupported {
        /// What was asked.
        what: &'static str,
    },
    /// The incoming byte stream failed (client went away, body error).
    #[error("incoming body failed: {source}")]
    Incoming {
        /// The stream's error.
        source: BoxError,
    },
    /// The store has no space left (disk full, quota exhausted, database
    /// at its size limit). Writes fail until space is freed; nothing was
    /// half-written. Reads still work.
    #[error("storage full: {source}")]
    StorageFull {
        /// What ran out, as the backend said it.
        source: BoxError,
    },
    /// The backend failed (IO, database, object store).
    #[error("storage backend error: {source}")]
    Backend {
        /// The backend's error.
        source: BoxError,
    },
    /// Garbage collection is deleting the blob, or deleted it after the
    /// operation began (see [`crate::gc`]): the link or manifest that needed
    /// it was not recorded. Retrying (uploading the blob again) succeeds.
    #[error("blob {digest} is being deleted or was deleted by garbage collection")]
    BlobDeleted {
        /// The blob.
        digest: Digest,
    },
    /// A manifest put names a child manifest (an index's entry) that is not
    /// a manifest of the repository, for instance because a retention run
    /// deleted it after the caller checked; nothing was stored. Pushing
    /// the child again, then the index, succeeds.
    #[error("manifest {digest} is not in the repository")]
    ManifestMissing {
        /// The missing child.
        digest: Digest,
    },
    /// A manifest put would move an immutable tag
    /// ([`NewManifest::fixed_tags`](crate::NewManifest::fixed_tags)) away
    /// from the image it points at; nothing was stored.
    #[error("tag {tag} points at {current} and may not move")]
    TagImmutable {
        /// The tag.
        tag: registry_core::Tag,
        /// The image it points at.
        current: Digest,
    },
    /// A link or manifest would bring blobs new to the namespace past its
    /// quota ([`NamespacePolicy::quota_bytes`](crate::NamespacePolicy::quota_bytes));
    /// nothing was recorded.
    #[error(
        "namespace {namespace} is over its quota: {} used of {}, this push needs {} more",
        HumanBytes(*.usage), HumanBytes(*.limit), HumanBytes(*.needed)
    )]
    QuotaExceeded {
        /// The namespace.
        namespace: registry_core::Namespace,
        /// Bytes it stores now.
        usage: u64,
        /// Its quota in bytes.
        limit: u64,
        /// Bytes the refused operation would have added.
        needed: u64,
    },
    /// An owner has as many upload sessions open as they may
    /// ([`SessionOwner::max_open`](crate::SessionOwner::max_open)); no
    /// session was started.
    #[error("{owner} has {open} upload sessions open (at most {max})")]
    SessionCapReached {
        /// The owner.
        owner: String,
        /// Sessions they have open.
        open: usize,
        /// How many they may have.
        max: usize,
    },
    /// A bounded collection is full (webhooks per namespace); nothing was
    /// recorded.
    #[error("limit reached: {what}")]
    LimitReached {
        /// What is full, and its limit.
        what: String,
    },
}

impl StorageError {
    /// A `NotFound` for `what`.
    pub fn not_found(what: impl std::fmt::Display) -> Self {
        StorageError::NotFound {
            what: what.to_string(),
        }
    }

    /// A `Backend` error wrapping `source`.
    pub fn backend(source: impl Into<BoxError>) -> Self {
        StorageError::Backend {
            source: source.into(),
        }
    }

    /// Whether this is `NotFound`.
    pub fn is_not_found(&self) -> bool {
        matches!(self, StorageError::NotFound { .. })
    }

    /// Whether this is `StorageFull`.
    pub fn is_storage_full(&self) -> bool {
        matches!(self, StorageError::StorageFull { .. })
    }
}

/// Whether an IO error means the disk or the caller's quota is full
/// (`ENOSPC`, `EDQUOT`).
pub(crate) fn io_is_full(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    )
}

impl From<std::io::Error> for StorageError {
    fn from(e: std::io::Error) -> Self {
        // A backend failure unless the disk is full: a backend that means
        // "the object is missing" checks the kind itself and says
        // `NotFound` explicitly.
        if io_is_full(&e) {
            StorageError::StorageFull { source: e.into() }
        } else {
            StorageError::backend(e)
        }
    }
}

/// Result alias of the storage layer.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
