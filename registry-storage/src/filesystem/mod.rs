//! Blobs and upload sessions under a data directory.
//!
//! Layout under the root:
//!
//! ```text
//! blobs/<alg>/<first two hex>/<hex>   published blobs, never written in place
//! tmp/<random>                        blobs being put (renamed into blobs/ when verified)
//! uploads/<id>                        the bytes an upload session received so far
//! ```
//!
//! [`FsBackend`] is a [`BlobBackend`](crate::backend::BlobBackend): digest
//! verification and upload sessions are the shared ones of
//! [`crate::backend`] ([`FsBlobStore`], [`FsUploadStore`]), so a session's
//! offset and hash states live in an
//! [`UploadSessionStore`](crate::UploadSessionStore) (the data directory's
//! SQLite database in [`Stores::data_dir`](crate::Stores::data_dir)).
//!
//! Everything that becomes visible does so by `rename` within one
//! filesystem, so a reader or a process restarted after a crash sees a whole
//! blob or none. With [`Durability::Fsync`] (the default) the file and its
//! directory are synced before a put or a commit returns.
//!
//! ```
//! use futures::StreamExt;
//! use registry_core::Digest;
//! use registry_storage::filesystem::{Durability, FsBlobStore};
//! use registry_storage::BlobStore;
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let dir = tempfile::tempdir().unwrap();
//! let blobs = FsBlobStore::builder(dir.path())
//!     .durability(Durability::None)
//!     .open()
//!     .unwrap();
//! let data = bytes::Bytes::from_static(b"hello");
//! let digest = Digest::sha256_of(&data);
//! blobs.put(&digest, futures::stream::iter([Ok(data)]).boxed()).await.unwrap();
//! assert_eq!(blobs.stat(&digest).await.unwrap().unwrap().size, 5);
//! # });
//! ```

mod backend;
pub mod permissions;
mod pipe;
mod staged;

use std::fs::File;
use std::io;
use std::path::Path;

use crate::error::{Result, StorageError};

pub use backend::{FsBackend, FsBlobStore, FsBlobStoreBuilder, FsUploadStore};

/// Whether writes are flushed to stable storage before they are acknowledged.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// `fsync` the file before publishing it and its directory after the
    /// rename: an acknowledged blob survives a power loss.
    #[default]
    Fsync,
    /// Skip every `fsync`: an acknowledged blob survives a process crash
    /// (the rename is still atomic) but maybe not a power loss. For tests,
    /// caches and benchmarks.
    None,
}

impl Durability {
    /// Syncs `file` unless durability is off.
    pub(crate) fn sync_file(self, file: &File) -> io::Result<()> {
        match self {
            // fdatasync: the bytes and what reading them back needs (the
            // size, the block map); not the times.
            Durability::Fsync => file.sync_data(),
            Durability::None => Ok(()),
        }
    }

    /// Starts writing `len` bytes of `file` at `offset` back to the disk,
    /// without waiting, unless durability is off: the sync at publish then
    /// finds them written or on their way, so a push's disk writes overlap
    /// its network reads instead of following them. Advisory: when it
    /// fails, the sync does all the work, as without it.
    pub(crate) fn start_write_back(self, file: &File, offset: u64, len: u64) {
        if self == Durability::None {
            return;
        }
        // `POSIX_FADV_DONTNEED` starts the write-back of the range's dirty
        // pages and drops only the pages that are clean already: what was
        // just written stays cached (moved to the inactive list: a blob's
        // bytes go before the pages readers use when memory runs short).
        #[cfg(target_os = "linux")]
        if let Err(e) = rustix::fs::fadvise(
            file,
            offset,
            std::num::NonZeroU64::new(len),
            rustix::fs::Advice::DontNeed,
        ) {
            tracing::debug!(error = %e, "could not start a staged file's write-back");
        }
        #[cfg(not(target_os = "linux"))]
        let _ = (file, offset, len);
    }

    /// Syncs the directory `dir` (its entries) unless durability is off.
    pub(crate) fn sync_dir(self, dir: &Path) -> io::Result<()> {
        match self {
            Durability::Fsync => File::open(dir)?.sync_all(),
            Durability::None => Ok(()),
        }
    }
}

/// Runs blocking file-system work off the async threads.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T>
where
    F: FnOnce() -> Result<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(StorageError::backend)?
}

/// Builds an error that names the path it concerns: `StorageFull` when
/// the disk or quota is full, a backend error otherwise.
pub(crate) fn io_error(context: &str, path: &Path, e: io::Error) -> StorageError {
    StorageError::from(io::Error::new(
        e.kind(),
        format!("{context} {}: {e}", path.display()),
    ))
}
