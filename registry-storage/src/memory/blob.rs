//! [`MemoryBackend`]: blobs in a map, shared by clones, and the
//! [`MemoryBlobStore`] and [`MemoryUploadStore`] built on it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream, StreamExt};
use registry_core::Digest;

use super::sessions::MemoryUploadSessions;
use crate::backend::{AppendMode, BackendBlobStore, BackendUploadStore, BlobBackend};
use crate::backend::{StageTarget, StagedWrite};
use crate::blob::{BlobBody, BlobInfo, ByteRange, ByteStream};
use crate::error::{Result, StorageError};

/// Size of the chunks `get` yields: readers see the same shape of stream as
/// from a disk-backed store.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone)]
struct Stored {
    data: Bytes,
    modified: SystemTime,
}

/// Blobs held in process memory: a [`BlobBackend`] whose staged writes are
/// buffers in a map. Cloning is cheap and clones share the blobs.
#[derive(Debug, Clone, Default)]
pub struct MemoryBackend {
    blobs: Arc<RwLock<HashMap<Digest, Stored>>>,
    /// Staged writes by number; a state's bytes are the first
    /// [`StagedWrite::written`] of its buffer (later ones belong to an
    /// append that failed or lost its race).
    staged: Arc<Mutex<HashMap<u64, BytesMut>>>,
    next_staged: Arc<AtomicU64>,
}

/// Blobs held in process memory, for tests and for embedding without a
/// disk. Cloning is cheap and clones share the blobs.
pub type MemoryBlobStore = BackendBlobStore<MemoryBackend>;

/// Upload sessions held in memory, publishing into a [`MemoryBlobStore`].
pub type MemoryUploadStore = BackendUploadStore<MemoryBackend>;

impl Default for MemoryBlobStore {
    fn default() -> Self {
        BackendBlobStore::new(MemoryBackend::default())
    }
}

impl MemoryUploadStore {
    /// Sessions in memory whose commits publish into `blobs`.
    pub fn in_memory(blobs: &MemoryBlobStore) -> Self {
        BackendUploadStore::new(
            blobs.backend().clone(),
            Arc::new(MemoryUploadSessions::default()),
        )
    }
}

fn staged_number(staged: &StagedWrite) -> Result<u64> {
    let bytes: [u8; 8] = staged.state.as_slice().try_into().map_err(|_| {
        StorageError::backend("memory staged write state is not a staged-write number")
    })?;
    Ok(u64::from_le_bytes(bytes))
}

impl MemoryBackend {
    fn staged_map(&self) -> std::sync::MutexGuard<'_, HashMap<u64, BytesMut>> {
        self.staged.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lookup(&self, digest: &Digest) -> Option<Stored> {
        self.blobs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(digest)
            .cloned()
    }

    /// Stores bytes whose digest the caller has verified. An existing blob
    /// is kept and its age refreshed.
    fn insert_verified(&self, digest: &Digest, data: Bytes) -> BlobInfo {
        let mut blobs = self.blobs.write().unwrap_or_else(PoisonError::into_inner);
        let stored = blobs.entry(digest.clone()).or_insert(Stored {
            data,
            modified: SystemTime::now(),
        });
        stored.modified = SystemTime::now();
        info(digest, stored)
    }
}

fn info(digest: &Digest, stored: &Stored) -> BlobInfo {
    BlobInfo {
        digest: digest.clone(),
        size: stored.data.len() as u64,
        modified: Some(stored.modified),
    }
}

fn not_found(digest: &Digest) -> StorageError {
    StorageError::not_found(format_args!("blob {digest}"))
}

/// Splits `data` into `CHUNK`-sized pieces without copying.
fn chunked(data: Bytes) -> ByteStream {
    let len = data.len();
    stream::iter((0..len).step_by(CHUNK))
        .map(move |start| Ok(data.slice(start..(start + CHUNK).min(len))))
        .boxed()
}

#[async_trait]
impl BlobBackend for MemoryBackend {
    async fn stat(&self, digest: &Digest) -> Result<Option<BlobInfo>> {
        Ok(self.lookup(digest).map(|stored| info(digest, &stored)))
    }

    async fn get(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobBody> {
        let stored = self.lookup(digest).ok_or_else(|| not_found(digest))?;
        let total_size = stored.data.len() as u64;
        let (start, end) = match range {
            Some(range) => range.resolve(total_size)?,
            None => (0, total_size),
        };
        // Both bounds are within the blob, which is in memory: they fit in usize.
        let data = stored.data.slice(start as usize..end as usize);
        Ok(BlobBody {
            total_size,
            range: (start, end),
            stream: chunked(data),
        })
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        self.blobs
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(digest)
            .map(drop)
            .ok_or_else(|| not_found(digest))
    }

    fn list(&self) -> BoxStream<'_, Result<BlobInfo>> {
        let infos: Vec<_> = self
            .blobs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(digest, stored)| Ok(info(digest, stored)))
            .collect();
        stream::iter(infos).boxed()
    }

    async fn stage(&self, _target: StageTarget<'_>) -> Result<StagedWrite> {
        let number = self.next_staged.fetch_add(1, Ordering::Relaxed);
        self.staged_map().insert(number, BytesMut::new());
        Ok(StagedWrite {
            written: 0,
            state: number.to_le_bytes().to_vec(),
            pending: Bytes::new(),
        })
    }

    async fn append(
        &self,
        staged: &StagedWrite,
        mut body: ByteStream,
        _mode: AppendMode,
    ) -> Result<StagedWrite> {
        let number = staged_number(staged)?;
        let mut received = BytesMut::new();
        while let Some(chunk) = body.next().await {
            received.extend_from_slice(&chunk?);
        }
        let mut map = self.staged_map();
        let buffer = map
            .get_mut(&number)
            .ok_or_else(|| StorageError::backend("memory staged write is gone"))?;
        // Both are within the buffer, which is in memory: they fit in usize.
        buffer.truncate(staged.written as usize);
        buffer.extend_from_slice(&received);
        Ok(StagedWrite {
            written: staged.written + received.len() as u64,
            ..staged.clone()
        })
    }

    async fn publish(&self, staged: StagedWrite, digest: &Digest) -> Result<BlobInfo> {
        let number = staged_number(&staged)?;
        let mut buffer = self
            .staged_map()
            .remove(&number)
            .ok_or_else(|| StorageError::backend("memory staged write is gone"))?;
        buffer.truncate(staged.written as usize);
        Ok(self.insert_verified(digest, buffer.freeze()))
    }

    async fn abort(&self, staged: StagedWrite) -> Result<()> {
        self.staged_map().remove(&staged_number(&staged)?);
        Ok(())
    }
}
