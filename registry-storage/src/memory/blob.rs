//! [`MemoryBlobStore`]: blobs in a map, shared by clones.

use std::collections::HashMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::stream::{self, BoxStream, StreamExt};
use registry_core::Digest;

use crate::blob::{BlobBody, BlobInfo, BlobStore, ByteRange, ByteStream};
use crate::error::{Result, StorageError};
use crate::verify::Verifier;

/// Size of the chunks `get` yields: readers see the same shape of stream as
/// from a disk-backed store.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, Clone)]
struct Stored {
    data: Bytes,
    modified: SystemTime,
}

/// Blobs held in process memory. Cloning is cheap and clones share the
/// blobs. For tests and for embedding without a disk.
#[derive(Debug, Clone, Default)]
pub struct MemoryBlobStore {
    blobs: Arc<RwLock<HashMap<Digest, Stored>>>,
}

impl MemoryBlobStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn lookup(&self, digest: &Digest) -> Option<Stored> {
        self.blobs
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(digest)
            .cloned()
    }

    /// Stores bytes whose digest the caller has verified (an upload
    /// session's commit). An existing blob is kept and its age refreshed.
    pub(crate) fn insert_verified(&self, digest: &Digest, data: Bytes) -> BlobInfo {
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
impl BlobStore for MemoryBlobStore {
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

    async fn put(&self, expected: &Digest, mut body: ByteStream) -> Result<BlobInfo> {
        let mut verifier = Verifier::new(expected);
        let mut data = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            verifier.update(&chunk);
            data.extend_from_slice(&chunk);
        }
        verifier.finish(expected)?;
        Ok(self.insert_verified(expected, data.freeze()))
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
}
