//! [`Registry`]: the stores and settings every handler shares.

use std::path::Path;
use std::sync::{Arc, Weak};
use std::time::Duration;

use registry_storage::filesystem::{Durability, FsBlobStore, FsUploadStore};
use registry_storage::memory::{MemoryBlobStore, MemoryMetadataStore, MemoryUploadStore};
use registry_storage::sqlite::SqliteMetadataStore;
use registry_storage::{
    BlobStore, CachedMetadataStore, GcOptions, GcReport, MetadataStore, StorageError, UploadStore,
};

use crate::access::{AuthConfig, AuthState};
use crate::metrics::Metrics;

/// Limits the service enforces.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest manifest accepted, in bytes (413 above it).
    pub max_manifest_bytes: usize,
    /// Largest page of tags or repositories one request returns.
    pub max_page: usize,
    /// Most requests streaming blob bytes in at once (monolithic pushes,
    /// `PATCH`es, final `PUT`s); beyond it clients get 429
    /// `TOOMANYREQUESTS` with `Retry-After`, instead of every upload slowing
    /// down together.
    pub max_concurrent_uploads: usize,
    /// Most descriptors one manifest may reference (config, layers, child
    /// manifests and subject together); above it a `PUT` is 400
    /// `MANIFEST_INVALID`. Each reference costs store lookups when the
    /// manifest is accepted, so this bounds the work of one request. Real
    /// images stay far below the default: Docker and containerd cannot
    /// even stack more than ~128 layers, and the largest multi-platform
    /// indexes list tens of entries.
    pub max_manifest_references: usize,
    /// How long a request body may go without a byte before the request
    /// ends: the upload rolls back to where it stood before the request and
    /// the client (if still there) gets 408. Without it a stalled client
    /// holds its upload slot, session and connection for ever.
    pub body_idle_timeout: Duration,
    /// Most upload requests in flight per user (service account, or the
    /// anonymous caller as one user), so that one user cannot take every
    /// slot of `max_concurrent_uploads`; beyond it, 429 with `Retry-After`.
    pub max_concurrent_uploads_per_user: usize,
    /// Most upload sessions one user may have open (started, neither
    /// committed, cancelled nor expired); beyond it, starting another is
    /// 429 `TOOMANYREQUESTS` with `Retry-After`.
    pub max_open_uploads_per_user: usize,
    /// An upload session that receives no byte for this long is cancelled
    /// by the background task of [`Registry::spawn_maintenance`].
    pub upload_idle_timeout: Duration,
    /// How often that background task runs (expiry of idle sessions and
    /// removal of stale temp files).
    pub maintenance_interval: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_manifest_bytes: 4 * 1024 * 1024,
            max_page: 1000,
            max_concurrent_uploads: 512,
            max_manifest_references: 1000,
            body_idle_timeout: Duration::from_secs(60),
            max_concurrent_uploads_per_user: 32,
            max_open_uploads_per_user: 1000,
            upload_idle_timeout: Duration::from_secs(3600),
            maintenance_interval: Duration::from_secs(60),
        }
    }
}

/// The registry: its stores and settings. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) blobs: Arc<dyn BlobStore>,
    pub(crate) uploads: Arc<dyn UploadStore>,
    pub(crate) metadata: Arc<dyn MetadataStore>,
    pub(crate) limits: Limits,
    pub(crate) auth: Option<Arc<AuthState>>,
    pub(crate) metrics: Arc<Metrics>,
    /// Held while garbage collection runs: one run at a time per registry
    /// (to save work; safety does not depend on it).
    pub(crate) gc_lock: Arc<tokio::sync::Mutex<()>>,
    /// One permit per upload request in flight (`Limits::max_concurrent_uploads`).
    pub(crate) upload_slots: Arc<tokio::sync::Semaphore>,
    /// Upload requests in flight per user (`Limits::max_concurrent_uploads_per_user`).
    pub(crate) user_upload_slots: Arc<crate::upload_limits::UserSlots>,
    /// The last readiness probe, reused for a moment.
    pub(crate) readiness: Arc<crate::health::ReadinessCache>,
}

impl Inner {
    fn rebuild(&self) -> Inner {
        Inner {
            blobs: self.blobs.clone(),
            uploads: self.uploads.clone(),
            metadata: self.metadata.clone(),
            limits: self.limits.clone(),
            auth: self.auth.clone(),
            metrics: self.metrics.clone(),
            gc_lock: self.gc_lock.clone(),
            upload_slots: self.upload_slots.clone(),
            user_upload_slots: self.user_upload_slots.clone(),
            readiness: self.readiness.clone(),
        }
    }
}

impl Registry {
    /// A registry over the given stores. `uploads` must publish into `blobs`.
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        uploads: Arc<dyn UploadStore>,
        metadata: Arc<dyn MetadataStore>,
    ) -> Self {
        let metrics: Arc<Metrics> = Arc::default();
        // Counts sessions as they open and close, for the metrics gauge.
        let uploads = crate::metrics::CountingUploads::wrap(uploads, metrics.open_uploads.clone());
        Registry {
            inner: Arc::new(Inner {
                blobs,
                uploads,
                metadata,
                limits: Limits::default(),
                auth: None,
                metrics,
                gc_lock: Arc::default(),
                upload_slots: Arc::new(tokio::sync::Semaphore::new(
                    Limits::default().max_concurrent_uploads,
                )),
                user_upload_slots: Arc::default(),
                readiness: Arc::default(),
            }),
        }
    }

    /// A registry held entirely in memory (tests, ephemeral embedding).
    pub fn in_memory() -> Self {
        let blobs = MemoryBlobStore::default();
        let uploads = MemoryUploadStore::new(blobs.clone());
        Registry::new(
            Arc::new(blobs),
            Arc::new(uploads),
            Arc::new(MemoryMetadataStore::default()),
        )
    }

    /// The embedded default: blobs and uploads under `dir`, metadata in
    /// `dir/registry.db` (SQLite).
    pub async fn open_data_dir(dir: &Path, durability: Durability) -> Result<Self, StorageError> {
        Ok(Self::open_data_dir_with_database(dir, durability).await?.0)
    }

    /// [`open_data_dir`](Self::open_data_dir), also handing back the SQLite
    /// database itself (uncached), which holds the auth records too: pass it
    /// to [`with_auth`](Self::with_auth) as the `AuthStore`.
    pub async fn open_data_dir_with_database(
        dir: &Path,
        durability: Durability,
    ) -> Result<(Self, SqliteMetadataStore), StorageError> {
        let blobs = FsBlobStore::with_durability(dir, durability)?;
        let uploads = FsUploadStore::new(dir, blobs.clone())?;
        let database = SqliteMetadataStore::open(dir.join("registry.db")).await?;
        // Requests read metadata through an in-memory cache.
        let metadata = CachedMetadataStore::new(database.clone());
        let registry = Registry::new(Arc::new(blobs), Arc::new(uploads), Arc::new(metadata));
        Ok((registry, database))
    }

    /// Replaces the limits.
    pub fn with_limits(self, limits: Limits) -> Self {
        let upload_slots = Arc::new(tokio::sync::Semaphore::new(limits.max_concurrent_uploads));
        Registry {
            inner: Arc::new(Inner {
                limits,
                upload_slots,
                ..self.inner.rebuild()
            }),
        }
    }

    /// Turns authentication and access control on: every request then needs
    /// credentials or an anonymous binding that allows it.
    pub async fn with_auth(self, config: AuthConfig) -> Result<Self, String> {
        let auth = AuthState::new(config).await?;
        Ok(Registry {
            inner: Arc::new(Inner {
                auth: Some(Arc::new(auth)),
                ..self.inner.rebuild()
            }),
        })
    }

    /// The auth state, when access control is on.
    pub(crate) fn auth(&self) -> Option<&AuthState> {
        self.inner.auth.as_deref()
    }

    /// The blob store.
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.inner.blobs
    }

    /// The upload store.
    pub fn uploads(&self) -> &Arc<dyn UploadStore> {
        &self.inner.uploads
    }

    /// The metadata store.
    pub fn metadata(&self) -> &Arc<dyn MetadataStore> {
        &self.inner.metadata
    }

    /// The metrics served at `/extensions/v2/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Runs garbage collection over the registry's stores (see
    /// [`registry_storage::gc`]), waiting for a run already in progress in
    /// this process to finish first, and records it in the metrics. The
    /// wait only saves duplicate work: concurrent runs (here or on other
    /// replicas) are safe, because the metadata store's transactions decide
    /// every delete.
    pub async fn collect_garbage(&self, options: GcOptions) -> Result<GcReport, StorageError> {
        let _one_at_a_time = self.inner.gc_lock.lock().await;
        let report = registry_storage::collect_garbage(
            self.blobs().as_ref(),
            self.uploads().as_ref(),
            self.metadata().as_ref(),
            options,
        )
        .await?;
        self.metrics().record_gc(&report);
        Ok(report)
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Starts the registry's background maintenance on the current tokio
    /// runtime: every `Limits::maintenance_interval`, upload sessions idle
    /// for `Limits::upload_idle_timeout` are cancelled and temp files of
    /// interrupted writes are removed
    /// ([`UploadStore::remove_stale_files`]). The task stops when the
    /// returned handle is dropped, or once the registry (every clone) is.
    /// Call it once per registry, after the last `with_*`.
    pub fn spawn_maintenance(&self) -> MaintenanceHandle {
        let registry = Arc::downgrade(&self.inner);
        let interval = self
            .inner
            .limits
            .maintenance_interval
            .max(Duration::from_millis(10));
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                // Holding only a weak reference between runs: the task
                // must not keep a dropped registry alive.
                let Some(inner) = Weak::upgrade(&registry) else {
                    return;
                };
                maintain(&inner).await;
            }
        });
        MaintenanceHandle(task)
    }
}

/// One run of the background maintenance; failures are logged and retried
/// at the next run.
async fn maintain(inner: &Inner) {
    let uploads = inner.uploads.as_ref();
    match registry_storage::upload::expire_idle(uploads, inner.limits.upload_idle_timeout).await {
        Ok(report) if report.expired > 0 => {
            tracing::info!(
                expired = report.expired,
                busy = report.busy,
                "expired idle upload sessions"
            );
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "upload session expiry failed"),
    }
    match uploads.remove_stale_files().await {
        Ok(0) => {}
        Ok(removed) => tracing::info!(removed, "removed stale temp files"),
        Err(e) => tracing::warn!(error = %e, "stale temp file removal failed"),
    }
}

/// The background maintenance task of a [`Registry`]; dropping it stops
/// the task.
#[derive(Debug)]
pub struct MaintenanceHandle(tokio::task::JoinHandle<()>);

impl Drop for MaintenanceHandle {
    fn drop(&mut self) {
        self.0.abort();
    }
}
