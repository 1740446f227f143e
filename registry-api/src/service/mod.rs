//! The service core: the registry's operations as typed Rust calls, with no
//! HTTP in them. Every operation takes the [`Caller`] it runs for, checks
//! what it needs through [`Registry::authorize`] (the one place permissions
//! are checked) and fails with a [`RegistryError`]. The HTTP handlers, the
//! embedding host, background jobs and tests all call these.
//!
//! ```
//! use futures::StreamExt;
//! use registry_api::{Caller, Registry};
//! use registry_core::{Reference, RepositoryName};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let registry = Registry::in_memory();
//! let caller = Caller::anonymous();
//! let repo: RepositoryName = "team/app".parse().unwrap();
//! let config = bytes::Bytes::from_static(b"{}");
//! let digest = registry_core::Digest::sha256_of(&config);
//! let body = futures::stream::iter([Ok(config)]).boxed();
//! registry.push_blob(&caller, &repo, &digest, body).await.unwrap();
//! let manifest = format!(
//!     r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{digest}","size":2}},"layers":[]}}"#
//! );
//! let tag: Reference = "v1".parse().unwrap();
//! let pushed = registry
//!     .put_manifest(&caller, &repo, &tag, None, manifest.into(), &[])
//!     .await
//!     .unwrap();
//! let found = registry.get_manifest(&caller, &repo, &tag).await.unwrap();
//! assert_eq!(found.digest, pushed.digest);
//! # });
//! ```

mod admin;
mod authorize;
mod blobs;
mod caller;
mod changes;
mod error;
mod identities;
mod image_streams;
mod images;
mod listing;
mod manifests;
mod policy;
mod references;
mod tokens;
mod upload_limits;
mod uploads;
mod usage;
mod webhooks;

pub use admin::MIN_PASSWORD_LEN;
pub use blobs::BlobRange;
pub use caller::Caller;
pub use error::{ArgumentKind, RegistryError, RegistryResult};
pub use identities::{ManagedSecret, MAX_TOKEN_LIFETIME};
pub use listing::Paged;
pub(crate) use manifests::manifest_record;
pub use manifests::{ManifestPushed, PulledManifest};
pub use tokens::{GrantedToken, TokenRequest, MAX_REFRESH_TOKENS_PER_OWNER, MAX_SCOPES_PER_TOKEN};
pub use uploads::{Chunk, MountFrom, UploadStarted};

pub(crate) use error::BodyIdleTimeout;
use std::sync::{Arc, Weak};
use std::time::Duration;

use registry_storage::{
    BlobStore, GcOptions, GcReport, MetadataStore, StorageError, Stores, UploadStore,
};

use crate::auth::{AuthConfig, AuthState};
use crate::metrics::Metrics;

/// Limits the service enforces. Start from [`Limits::default`] and set
/// the fields you need (new fields may be added).
#[derive(Debug, Clone)]
#[non_exhaustive]
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
    /// ends, on every route of the routers: the client (if still there)
    /// gets 408 and the connection closes; an upload rolls back to where it
    /// stood before the request. Without it a stalled client holds its
    /// connection (and an upload slot and session) for ever.
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

/// The registry: its stores, settings and access control. Cheap to clone.
/// Build one with [`Registry::builder`] (or [`Registry::in_memory`]).
#[derive(Debug, Clone)]
pub struct Registry {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    /// The stores as given.
    pub(crate) stores: Stores,
    /// The stores' upload store, counting sessions for the metrics gauge.
    pub(crate) uploads: Arc<dyn UploadStore>,
    pub(crate) limits: Limits,
    pub(crate) auth: Option<Arc<AuthState>>,
    pub(crate) metrics: Arc<Metrics>,
    /// Held while garbage collection runs: one run at a time per registry
    /// (to save work; safety does not depend on it).
    pub(crate) gc_lock: Arc<tokio::sync::Mutex<()>>,
    /// One permit per upload request in flight (`Limits::max_concurrent_uploads`).
    pub(crate) upload_slots: Arc<tokio::sync::Semaphore>,
    /// Upload requests in flight per user (`Limits::max_concurrent_uploads_per_user`).
    pub(crate) user_upload_slots: Arc<upload_limits::UserSlots>,
    /// The last readiness probe, reused for a moment.
    pub(crate) readiness: Arc<crate::http::health::ReadinessCache>,
    /// Applies other replicas' changes to the caches, when the stores
    /// have a change feed.
    pub(crate) _changes: Option<changes::ChangeListener>,
    /// The proxy namespaces (pull-through caches of upstream registries).
    pub(crate) proxies: crate::proxy::Proxies,
    /// The outbox and its settings, when the stores keep events.
    pub(crate) events: Option<Arc<crate::events::Events>>,
    /// Sends webhook deliveries; stopped with the registry.
    pub(crate) _delivery: Option<crate::events::worker::DeliveryWorker>,
}

/// Why a [`RegistryBuilder`] could not build a registry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Access control was asked for, but neither the [`Stores`] nor the
    /// [`AuthConfig`] name an auth store.
    #[error(
        "access control needs an auth store: use Stores::with_auth_store or AuthConfig::store"
    )]
    NoAuthStore,
    /// The auth settings are unusable (hashing parameters, login limits,
    /// signing key or token service name).
    #[error("invalid auth settings: {0}")]
    Auth(#[source] registry_storage::BoxError),
    /// The role bindings could not be loaded from the auth store.
    #[error("cannot load role bindings: {0}")]
    Bindings(#[source] registry_auth::AuthStoreError),
    /// A proxy namespace's settings are unusable.
    #[error(transparent)]
    Proxy(#[from] crate::proxy::ProxyConfigError),
    /// A proxy namespace could not be created in the metadata store.
    #[error("cannot create proxy namespace: {0}")]
    ProxyNamespace(#[source] StorageError),
    /// The configured webhook sinks ([`crate::EventsConfig::sinks`]) could
    /// not be recorded in the event store.
    #[error("cannot record the configured webhook sinks: {0}")]
    WebhookSinks(#[source] StorageError),
}

/// Builds a [`Registry`] from [`Stores`]: limits, and access control.
///
/// ```
/// use registry_api::{AuthConfig, Limits, Registry};
/// use registry_auth::SigningKey;
/// use registry_storage::Stores;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let mut limits = Limits::default();
/// limits.max_page = 100;
/// let registry = Registry::builder(Stores::in_memory())
///     .limits(limits)
///     .auth(AuthConfig::new(SigningKey::generate().unwrap()))
///     .build()
///     .await
///     .unwrap();
/// assert!(registry.access_control_on());
/// # });
/// ```
#[derive(Debug)]
#[must_use]
pub struct RegistryBuilder {
    stores: Stores,
    limits: Limits,
    auth: Option<AuthConfig>,
    proxies: Vec<crate::proxy::ProxyConfig>,
    events: crate::events::EventsConfig,
}

impl RegistryBuilder {
    /// Replaces how events are delivered and kept (see [`crate::events`]).
    /// Events are recorded whenever the [`Stores`] have an event store.
    pub fn events(mut self, config: crate::events::EventsConfig) -> Self {
        self.events = config;
        self
    }

    /// Replaces the limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Turns access control on: every operation then needs a caller whose
    /// roles allow it (anonymous callers get what `system:anonymous` is
    /// bound to). The auth store is the [`Stores`]' unless the config
    /// names one.
    pub fn auth(mut self, config: AuthConfig) -> Self {
        self.auth = Some(config);
        self
    }

    /// Makes a namespace a proxy of an upstream registry (see
    /// [`crate::proxy`]); call once per proxy namespace. The namespace is
    /// created when the registry is built, if it does not exist.
    pub fn proxy(mut self, config: crate::proxy::ProxyConfig) -> Self {
        self.proxies.push(config);
        self
    }

    /// The registry.
    pub async fn build(self) -> Result<Registry, BuildError> {
        let proxies = crate::proxy::Proxies::new(self.proxies, self.limits.max_manifest_bytes)?;
        for config in proxies.configs() {
            let ns = &config.namespace;
            let exists = self
                .stores
                .metadata()
                .namespace_exists(ns)
                .await
                .map_err(BuildError::ProxyNamespace)?;
            if !exists {
                match self.stores.metadata().create_namespace(ns).await {
                    Ok(()) | Err(StorageError::AlreadyExists { .. }) => {}
                    Err(e) => return Err(BuildError::ProxyNamespace(e)),
                }
            }
        }
        let auth = match self.auth {
            Some(config) => {
                let store = config
                    .store
                    .clone()
                    .or_else(|| self.stores.auth().cloned())
                    .ok_or(BuildError::NoAuthStore)?;
                Some(Arc::new(AuthState::new(config, store).await?))
            }
            None => None,
        };
        // The sinks are in place before the first change is accepted, so
        // that they receive every event this registry raises.
        if let Some(store) = self.stores.events() {
            store
                .sync_cluster_webhooks(&self.events.sinks)
                .await
                .map_err(BuildError::WebhookSinks)?;
        }
        Ok(Registry::assemble(
            self.stores,
            self.limits,
            auth,
            proxies,
            self.events,
        ))
    }
}

impl Registry {
    /// A builder over `stores`, with default limits and access control off.
    pub fn builder(stores: Stores) -> RegistryBuilder {
        RegistryBuilder {
            stores,
            limits: Limits::default(),
            auth: None,
            proxies: Vec::new(),
            events: Default::default(),
        }
    }

    /// A registry over `stores` with default limits and access control
    /// off. Use [`Registry::builder`] for limits, access control or the
    /// webhook sinks (this one leaves the sinks recorded in the stores as
    /// they are).
    pub fn new(stores: Stores) -> Self {
        Registry::assemble(
            stores,
            Limits::default(),
            None,
            Default::default(),
            Default::default(),
        )
    }

    /// A registry held entirely in memory with access control off (tests,
    /// ephemeral embedding).
    pub fn in_memory() -> Self {
        Registry::new(Stores::in_memory())
    }

    /// The stores this registry runs on, as they were given (a second
    /// registry built over them, with other settings, sees the same data).
    pub fn stores(&self) -> &Stores {
        &self.inner.stores
    }

    fn assemble(
        stores: Stores,
        limits: Limits,
        auth: Option<Arc<AuthState>>,
        proxies: crate::proxy::Proxies,
        events: crate::events::EventsConfig,
    ) -> Self {
        let metrics: Arc<Metrics> = Arc::default();
        let events = stores
            .events()
            .map(|store| Arc::new(crate::events::Events::new(store.clone(), events)));
        let delivery = events
            .as_ref()
            .and_then(|events| crate::events::worker::start(events, &metrics));
        // Counts sessions as they open and close, for the metrics gauge.
        let uploads = crate::metrics::CountingUploads::wrap(
            stores.uploads().clone(),
            metrics.open_uploads.clone(),
        );
        let feed = stores.changes().map(|feed| feed.subscribe());
        Registry {
            inner: Arc::new_cyclic(|weak| Inner {
                _changes: feed.and_then(|feed| changes::follow(weak.clone(), feed)),
                stores,
                uploads,
                upload_slots: Arc::new(tokio::sync::Semaphore::new(limits.max_concurrent_uploads)),
                limits,
                auth,
                metrics,
                gc_lock: Arc::default(),
                user_upload_slots: Arc::default(),
                readiness: Arc::default(),
                proxies,
                events,
                _delivery: delivery,
            }),
        }
    }

    /// The proxy namespace standing for a registry `host` (`docker.io`,
    /// `quay.io:443`) in containerd's mirror mode (`?ns=`), if any.
    pub fn proxy_for_host(&self, host: &str) -> Option<&registry_core::Namespace> {
        self.inner.proxies.for_host(host)
    }

    /// Whether `ns` is a proxy namespace.
    pub fn is_proxy_namespace(&self, ns: &registry_core::Namespace) -> bool {
        self.inner.proxies.is_proxy(ns)
    }

    /// The settings of every proxy namespace.
    pub fn proxy_configs(&self) -> impl Iterator<Item = &crate::proxy::ProxyConfig> {
        self.inner.proxies.configs()
    }

    /// The proxy namespace holding `repo`, if it is in one.
    pub(crate) fn proxy_of(
        &self,
        repo: &registry_core::RepositoryName,
    ) -> Option<&Arc<crate::proxy::ProxyNamespace>> {
        self.inner.proxies.of_repo(repo)
    }

    /// Refuses a client's write into a proxy namespace: its content comes
    /// from the upstream only.
    pub(crate) fn refuse_proxy_writes(
        &self,
        repo: &registry_core::RepositoryName,
    ) -> RegistryResult<()> {
        match self.proxy_of(repo) {
            Some(proxy) => Err(RegistryError::ProxyReadOnly(proxy.config.namespace.clone())),
            None => Ok(()),
        }
    }

    /// Whether access control is on.
    pub fn access_control_on(&self) -> bool {
        self.inner.auth.is_some()
    }

    /// The auth state, when access control is on.
    pub(crate) fn auth(&self) -> Option<&AuthState> {
        self.inner.auth.as_deref()
    }

    /// The blob store.
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        self.inner.stores.blobs()
    }

    /// The upload store.
    pub fn uploads(&self) -> &Arc<dyn UploadStore> {
        &self.inner.uploads
    }

    /// The metadata store.
    pub fn metadata(&self) -> &Arc<dyn MetadataStore> {
        self.inner.stores.metadata()
    }

    /// The metrics served at `/extensions/v2/metrics`.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Runs garbage collection over the registry's stores (see
    /// [`registry_storage::gc`]), waiting for a run already in progress in
    /// this process, then on other replicas (the metadata store's prune
    /// lock), to finish first, and records it in the metrics. The wait
    /// only saves duplicate work: concurrent runs are safe, because the
    /// metadata store's transactions decide every delete.
    pub async fn collect_garbage(&self, options: GcOptions) -> Result<GcReport, StorageError> {
        let _one_at_a_time = self.inner.gc_lock.lock().await;
        let _one_replica_at_a_time = self.metadata().lock_prune().await?;
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
        let interval = self
            .inner
            .limits
            .maintenance_interval
            .max(Duration::from_millis(10));
        self.spawn_every(
            tokio::time::Instant::now(),
            interval,
            |registry| async move { maintain(&registry.inner).await },
        )
    }

    /// Starts scheduled prunes on the current tokio runtime: every `every`
    /// (the first one `every` from now), a run of
    /// [`collect_garbage`](Self::collect_garbage) with `options`, which
    /// applies the namespaces' retention rules and sweeps the blobs nothing
    /// references. Failures are logged and retried at the next run. The
    /// task stops when the returned handle is dropped, or once the registry
    /// (every clone) is.
    pub fn spawn_scheduled_prune(&self, every: Duration, options: GcOptions) -> MaintenanceHandle {
        let every = every.max(Duration::from_secs(1));
        self.spawn_every(
            tokio::time::Instant::now() + every,
            every,
            move |registry| {
                let options = options.clone();
                async move {
                    match registry.collect_garbage(options).await {
                        Ok(report) => {
                            tracing::info!(target: "audit", actor = "system:scheduled-prune",
                        manifests_removed = report.retention.manifests_removed,
                        blobs_deleted = report.blobs_deleted, bytes_freed = report.bytes_freed,
                        "scheduled prune finished")
                        }
                        Err(e) => tracing::warn!(error = %e, "scheduled prune failed"),
                    }
                }
            },
        )
    }

    /// Runs `job` at `first`, then every `every` (a late run delays the
    /// next), until the handle is dropped or the registry is.
    pub(crate) fn spawn_every<F, Fut>(
        &self,
        first: tokio::time::Instant,
        every: Duration,
        job: F,
    ) -> MaintenanceHandle
    where
        F: Fn(Registry) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let registry = Arc::downgrade(&self.inner);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(first, every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                // Holding only a weak reference between runs: the task
                // must not keep a dropped registry alive.
                let Some(inner) = Weak::upgrade(&registry) else {
                    return;
                };
                job(Registry { inner }).await;
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
