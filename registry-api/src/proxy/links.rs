//! Which blobs a proxy repository may serve from the store.
//!
//! A proxy repository serves a blob from the store only once the blob came
//! from the upstream *into that repository* (fetched, its digest verified,
//! then linked), or when it was linked there before. The bytes being in
//! the store is not enough: the store is shared by every namespace, and an
//! upstream manifest may name any digest, a private blob of another
//! namespace included. Serving that one without the upstream serving it
//! would hand a viewer of the proxy namespace bytes it may not see.
//!
//! A cached manifest is stored with the store call a push uses, which
//! links every blob the manifest references (what keeps them from garbage
//! collection is the manifest's reference, not the link). So
//! [`Registry::put_cached_manifest`] removes again, right after the put,
//! the links the put made: a link in a proxy repository is then always one
//! a verified fetch made ([`super::tee`]), or one from before. Between the
//! put and the unlink those links exist; [`UnverifiedLinks`] lets the
//! blob reads of this process ([`Registry::cached_blob`]) see that window
//! and treat such a blob as not cached (it is fetched from the upstream).
//! Another replica's read in that window (milliseconds) is not covered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use futures::{stream, StreamExt, TryStreamExt};
use registry_core::{Digest, RepositoryName};
use registry_storage::{BlobInfo, MovedTag, NewManifest, StorageError};

use super::ProxyNamespace;
use crate::service::{Registry, RegistryResult};

/// Link lookups in flight at once for one manifest.
const LINK_LOOKUPS: usize = 8;

/// How often a blob read retries when a cached manifest's links changed
/// under it, before it takes the blob for not cached.
const READ_ATTEMPTS: usize = 3;

type Key = (RepositoryName, Digest);

/// Links a cached manifest's put is making and is about to remove, and a
/// counter that moves each time such removals end (a seqlock: a read that
/// saw it move may have seen a link that is gone now).
#[derive(Debug, Default)]
pub(crate) struct UnverifiedLinks {
    pending: Mutex<HashMap<Key, usize>>,
    ended: AtomicU64,
}

impl UnverifiedLinks {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, usize>> {
        // Counters only: a panic elsewhere cannot leave them half-written.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Marks `digests` of `repo` as linked without a fetch until the hold
    /// is dropped.
    fn hold<'a>(&'a self, repo: &RepositoryName, digests: &[Digest]) -> Hold<'a> {
        let keys: Vec<Key> = digests.iter().map(|d| (repo.clone(), d.clone())).collect();
        let mut pending = self.lock();
        for key in &keys {
            *pending.entry(key.clone()).or_default() += 1;
        }
        Hold { links: self, keys }
    }

    fn is_pending(&self, repo: &RepositoryName, digest: &Digest) -> bool {
        // One lookup without cloning the key: the map is small (what
        // manifest puts hold right now).
        self.lock()
            .iter()
            .any(|((r, d), _)| r == repo && d == digest)
    }

    fn ended(&self) -> u64 {
        self.ended.load(Ordering::SeqCst)
    }
}

/// Links made by a put and not yet removed; dropping it (after the
/// removal, or when the put failed) ends the window.
struct Hold<'a> {
    links: &'a UnverifiedLinks,
    keys: Vec<Key>,
}

impl Drop for Hold<'_> {
    fn drop(&mut self) {
        if self.keys.is_empty() {
            return;
        }
        // Moved before the keys go: a read that checks the keys after they
        // went sees the counter moved since it started.
        self.links.ended.fetch_add(1, Ordering::SeqCst);
        let mut pending = self.links.lock();
        for key in self.keys.drain(..) {
            if let Some(n) = pending.get_mut(&key) {
                *n -= 1;
                if *n == 0 {
                    pending.remove(&key);
                }
            }
        }
    }
}

impl Registry {
    /// Stores a manifest of proxy repository `record.repository` as a push
    /// would, without leaving links to blobs that did not come from the
    /// upstream into it (see the module's doc).
    pub(super) async fn put_cached_manifest(
        &self,
        proxy: &ProxyNamespace,
        record: NewManifest,
    ) -> Result<Vec<MovedTag>, StorageError> {
        let repo = record.repository.clone();
        let lookups: Vec<_> = record
            .blobs
            .iter()
            .map(|digest| {
                let repo = &repo;
                async move {
                    let linked = self.metadata().linked_blob(repo, digest).await?;
                    Ok::<_, StorageError>(linked.is_none().then(|| digest.clone()))
                }
            })
            .collect();
        let new: Vec<Digest> = stream::iter(lookups)
            .buffered(LINK_LOOKUPS)
            .try_filter_map(|d| async move { Ok(d) })
            .try_collect()
            .await?;
        let hold = proxy.unverified.hold(&repo, &new);
        let moved = self.metadata().put_manifest(record).await?;
        let mut failed = None;
        for digest in &new {
            if let Err(e) = self.unlink_unverified(&repo, digest).await {
                tracing::error!(repository = %repo, digest = %digest, error = %e,
                    "could not remove the link a cached manifest made to a blob not fetched");
                failed = Some(e);
            }
        }
        drop(hold);
        match failed {
            Some(e) => Err(e),
            None => Ok(moved),
        }
    }

    /// Removes a link a cached manifest's put made (retried once).
    async fn unlink_unverified(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<(), StorageError> {
        let once = self.metadata().unlink_blob(repo, digest).await;
        let result = match once {
            Err(StorageError::NotFound { .. }) | Ok(()) => return Ok(()),
            Err(_) => self.metadata().unlink_blob(repo, digest).await,
        };
        match result {
            Ok(()) | Err(StorageError::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether proxy repository `repo` serves `digest` from the store (a
    /// fetch linked it there), with its size as recorded with the link.
    /// A link a cached manifest's put is making is not one.
    pub(super) async fn cached_blob(
        &self,
        proxy: &ProxyNamespace,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> RegistryResult<Option<BlobInfo>> {
        let links = &proxy.unverified;
        for _ in 0..READ_ATTEMPTS {
            let started = links.ended();
            if links.is_pending(repo, digest) {
                return Ok(None);
            }
            let size = self.linked_blob_size(repo, digest).await?;
            if links.is_pending(repo, digest) {
                return Ok(None);
            }
            if links.ended() == started {
                return Ok(size.map(|size| BlobInfo {
                    digest: digest.clone(),
                    size,
                    modified: None,
                }));
            }
        }
        Ok(None)
    }
}
