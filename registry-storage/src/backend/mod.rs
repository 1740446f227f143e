//! Blob backends kept small: a [`BlobBackend`] implements only what differs
//! between storage systems (stat, ranged reads, delete, list, and a staged
//! write published under a digest or aborted). Everything else is written
//! once, here, for every backend:
//!
//! - [`BackendBlobStore`] turns a backend into a [`BlobStore`](crate::BlobStore):
//!   it hashes the bytes while they stream and publishes only what matches
//!   the promised digest.
//! - [`BackendUploadStore`] turns a backend and an [`UploadSessionStore`]
//!   into an [`UploadStore`](crate::UploadStore): resumable sessions whose
//!   state (offset, hash states, the backend's staged write) lives in the
//!   session store, so that a session begun on one replica continues on
//!   another, with SHA-256 and SHA-512 kept incrementally (a commit never
//!   reads the bytes again).
//!
//! [`UploadSessionStore`]: crate::sessions::UploadSessionStore

mod blobs;
mod hashing;
mod uploads;

use std::collections::HashSet;
use std::fmt::Debug;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use registry_core::Digest;

use crate::blob::{BlobBody, BlobInfo, ByteRange, ByteStream};
use crate::error::Result;
use crate::upload::UploadId;

pub use blobs::BackendBlobStore;
pub use uploads::BackendUploadStore;

/// Where a staged write will be published, as far as known when it starts.
#[derive(Debug, Clone, Copy)]
pub enum StageTarget<'a> {
    /// A one-shot write whose digest is promised up front: a backend may
    /// stage it right where the blob will live (an S3 multipart upload
    /// completed only once the digest matched), saving a copy.
    Blob(&'a Digest),
    /// An upload session: the digest is known at commit only.
    Session(&'a UploadId),
}

/// Whether more bytes may follow an [`append`](BlobBackend::append).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendMode {
    /// More appends may follow, from this process or another: everything
    /// appended must be stored durably before the call returns (an S3
    /// backend stores a tail shorter than a multipart part as an object).
    Resumable,
    /// The last append before [`publish`](BlobBackend::publish) in this
    /// process: a backend may keep a short tail in
    /// [`StagedWrite::pending`] instead of storing it.
    Final,
}

/// A write in progress that readers cannot see. `state` is the backend's
/// own serialised description of it (kept with an upload session in the
/// session store); only the backend that made it reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StagedWrite {
    /// Bytes appended so far.
    pub written: u64,
    /// The backend's state of the write (opaque to callers).
    pub state: Vec<u8>,
    /// Bytes kept in memory by an [`AppendMode::Final`] append, for
    /// `publish` in the same process. Always empty in a stored session.
    pub pending: bytes::Bytes,
}

/// What a storage system must provide for blobs; see the module docs for
/// what is built on top.
///
/// # Contract
/// - `get` of a missing digest is `NotFound`; a range outside the blob is
///   `RangeNotSatisfiable`; `delete` of a missing digest is `NotFound`.
/// - `append` returns the new state and leaves the old one valid: when it
///   fails part-way, the caller continues (or aborts) from the old state.
///   The bytes are hashed by the caller; a backend only stores them.
/// - `publish` makes the staged bytes readable under `digest` atomically
///   (whole or not at all) and ends the staged write; the caller verified
///   the digest. Publishing a digest that exists already leaves one copy.
/// - `abort` discards a staged write (a missing one is not an error).
/// - No method holds a whole blob in memory.
#[async_trait]
pub trait BlobBackend: Send + Sync + Debug + 'static {
    /// Size and age of a blob, or `None` when it does not exist.
    async fn stat(&self, digest: &Digest) -> Result<Option<BlobInfo>>;

    /// Reads a blob, or a range of it.
    async fn get(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobBody>;

    /// Removes a blob.
    async fn delete(&self, digest: &Digest) -> Result<()>;

    /// Every blob, in no particular order (for garbage collection).
    fn list(&self) -> BoxStream<'_, Result<BlobInfo>>;

    /// Starts a staged write.
    async fn stage(&self, target: StageTarget<'_>) -> Result<StagedWrite>;

    /// Stores `body` after what `staged` holds; returns the new state.
    async fn append(
        &self,
        staged: &StagedWrite,
        body: ByteStream,
        mode: AppendMode,
    ) -> Result<StagedWrite>;

    /// Publishes the staged bytes as `digest` (see the contract).
    async fn publish(&self, staged: StagedWrite, digest: &Digest) -> Result<BlobInfo>;

    /// Discards a staged write.
    async fn abort(&self, staged: StagedWrite) -> Result<()>;

    /// Called once an upload session moved from `old` to `new` for good:
    /// frees what `old` held that `new` does not (an S3 backend's stored
    /// tail). Failures are only logged; the default does nothing.
    async fn release(&self, _old: &StagedWrite, _new: &StagedWrite) {}

    /// Removes staged writes that no session in `live` owns and that are
    /// older than `age` (left by a process that died mid-write). Returns how
    /// many were removed. Backends whose staged writes cannot leak keep the
    /// default, which does nothing.
    async fn remove_stale_staged(&self, _live: &HashSet<UploadId>, _age: Duration) -> Result<u64> {
        Ok(0)
    }
}
