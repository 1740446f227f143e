//! The content-addressed [`BlobStore`] and the types it trades in.

use std::fmt::Debug;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use registry_core::Digest;

use crate::error::Result;

/// A stream of bytes read from or written to a store.
pub type ByteStream = BoxStream<'static, Result<Bytes>>;

/// What a store knows about a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The blob's digest.
    pub digest: Digest,
    /// The blob's size in bytes.
    pub size: u64,
    /// When the blob was written, where the backend knows it (garbage
    /// collection spares blobs younger than its grace period).
    pub modified: Option<SystemTime>,
}

/// A byte range of a blob: `start..end` (end exclusive). `end: None` reads
/// to the end of the blob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteRange {
    /// First byte.
    pub start: u64,
    /// One past the last byte, or `None` for the end of the blob.
    pub end: Option<u64>,
}

impl ByteRange {
    /// Resolves the range against a blob of `size` bytes into `start..end`.
    ///
    /// Fails with [`crate::StorageError::RangeNotSatisfiable`] when the range
    /// starts past the end, is empty, or ends beyond the blob.
    pub fn resolve(self, size: u64) -> Result<(u64, u64)> {
        let end = self.end.unwrap_or(size);
        if self.start >= end || end > size {
            return Err(crate::StorageError::RangeNotSatisfiable {
                start: self.start,
                end,
                size,
            });
        }
        Ok((self.start, end))
    }
}

/// A blob being read: its total size, the range served, and the bytes.
pub struct BlobBody {
    /// Size of the whole blob.
    pub total_size: u64,
    /// The range this body holds (`start..end`); the whole blob when no
    /// range was asked for.
    pub range: (u64, u64),
    /// The bytes of `range`.
    pub stream: ByteStream,
}

impl BlobBody {
    /// Number of bytes the stream yields.
    pub fn len(&self) -> u64 {
        self.range.1 - self.range.0
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Debug for BlobBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobBody")
            .field("total_size", &self.total_size)
            .field("range", &self.range)
            .finish_non_exhaustive()
    }
}

/// Content-addressed storage shared by all repositories: one copy per digest.
///
/// # Contract
/// - [`put`](BlobStore::put) hashes the stream while it arrives and publishes
///   the blob only if the digest matches `expected`; otherwise it returns
///   `DigestMismatch` and leaves nothing behind. Publication is atomic: a
///   reader (or a process restarted after a crash) sees the whole blob or
///   nothing. Putting a digest that already exists succeeds without
///   rewriting it (the stream is still drained and checked).
/// - Concurrent puts of one digest all succeed and leave one copy.
/// - [`get`](BlobStore::get) of a missing digest is `NotFound`; a range
///   outside the blob is `RangeNotSatisfiable`.
/// - [`delete`](BlobStore::delete) of a missing digest is `NotFound`.
/// - No method holds a whole blob in memory.
#[async_trait]
pub trait BlobStore: Send + Sync + Debug + 'static {
    /// Size and age of a blob, or `None` when it does not exist.
    async fn stat(&self, digest: &Digest) -> Result<Option<BlobInfo>>;

    /// Reads a blob, or a range of it.
    async fn get(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobBody>;

    /// Writes a blob from a stream, verifying its digest (see the contract).
    async fn put(&self, expected: &Digest, body: ByteStream) -> Result<BlobInfo>;

    /// Removes a blob.
    async fn delete(&self, digest: &Digest) -> Result<()>;

    /// Every blob, in no particular order (for garbage collection).
    fn list(&self) -> BoxStream<'_, Result<BlobInfo>>;
}
