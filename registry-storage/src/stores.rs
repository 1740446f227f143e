//! [`Stores`]: a complete set of stores for one registry, assembled here so
//! that the service on top depends on the storage traits only.

use std::fmt;
use std::sync::Arc;

use registry_auth::{AuthStore, MemoryAuthStore};

use crate::memory::{MemoryBlobStore, MemoryMetadataStore, MemoryUploadStore};
use crate::{BlobStore, MetadataStore, UploadStore};

/// The stores a registry runs on: blobs, upload sessions that publish into
/// those blobs, metadata, and where the auth records live (users, service
/// accounts, tokens, role bindings).
///
/// Assemble one with [`Stores::in_memory`], [`Stores::data_dir`] (with the
/// `sqlite` feature), `Stores::s3` (with the `s3` feature) or, for your own
/// backends, [`Stores::new`] and
/// [`Stores::with_auth_store`]. Cheap to clone.
///
/// ```
/// use registry_storage::Stores;
///
/// let stores = Stores::in_memory();
/// assert!(stores.auth().is_some());
/// ```
#[derive(Clone)]
pub struct Stores {
    blobs: Arc<dyn BlobStore>,
    uploads: Arc<dyn UploadStore>,
    metadata: Arc<dyn MetadataStore>,
    auth: Option<Arc<dyn AuthStore>>,
    changes: Option<Arc<dyn crate::ChangeFeed>>,
    events: Option<Arc<dyn crate::EventStore>>,
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stores")
            .field("blobs", &self.blobs)
            .field("uploads", &self.uploads)
            .field("metadata", &self.metadata)
            .field("auth", &self.auth.is_some())
            .field("changes", &self.changes)
            .field("events", &self.events)
            .finish()
    }
}

impl Stores {
    /// Stores over your own backends. `uploads` must publish committed
    /// sessions into `blobs`. No auth store: add one with
    /// [`with_auth_store`](Self::with_auth_store) to turn access control on.
    pub fn new(
        blobs: Arc<dyn BlobStore>,
        uploads: Arc<dyn UploadStore>,
        metadata: Arc<dyn MetadataStore>,
    ) -> Self {
        Stores {
            blobs,
            uploads,
            metadata,
            auth: None,
            changes: None,
            events: None,
        }
    }

    /// Everything in process memory, gone with the process (tests,
    /// ephemeral embedding), auth records included.
    pub fn in_memory() -> Self {
        let blobs = MemoryBlobStore::default();
        let uploads = MemoryUploadStore::in_memory(&blobs);
        let metadata = Arc::new(MemoryMetadataStore::default());
        Stores::new(Arc::new(blobs), Arc::new(uploads), metadata.clone())
            .with_auth_store(Arc::new(MemoryAuthStore::default()))
            .with_event_store(metadata)
    }

    /// The embedded default: blobs and upload sessions under `dir`,
    /// metadata and auth records in `dir/registry.db` (SQLite, created on
    /// first use), the state of upload sessions in `dir/registry-uploads.db`
    /// beside it. Requests read metadata through an in-memory cache
    /// ([`CachedMetadataStore`](crate::CachedMetadataStore)); auth records
    /// are read from the database directly (wrap them in
    /// `registry_auth::CachedAuthStore` if you want them cached too).
    #[cfg(feature = "sqlite")]
    pub async fn data_dir(
        dir: impl AsRef<std::path::Path>,
        durability: crate::filesystem::Durability,
    ) -> crate::Result<Self> {
        let dir = dir.as_ref();
        let blobs = crate::filesystem::FsBlobStore::with_durability(dir, durability)?;
        let database = crate::sqlite::SqliteMetadataStore::open(dir.join("registry.db")).await?;
        let uploads =
            crate::filesystem::FsUploadStore::for_blobs(&blobs, Arc::new(database.clone()));
        let metadata = crate::CachedMetadataStore::new(database.clone());
        Ok(
            Stores::new(Arc::new(blobs), Arc::new(uploads), Arc::new(metadata))
                .with_auth_store(Arc::new(database.clone()))
                .with_event_store(Arc::new(database)),
        )
    }

    /// Metadata and auth records in the PostgreSQL database at
    /// `database_url` (migrated on connect, shared by replicas), read
    /// through a [`CachedMetadataStore`](crate::CachedMetadataStore) as in
    /// [`data_dir`](Self::data_dir); blobs and upload sessions still under
    /// `blobs_dir` (upload-session state in the database).
    #[cfg(feature = "postgres")]
    pub async fn postgres(
        database_url: &str,
        blobs_dir: impl AsRef<std::path::Path>,
        durability: crate::filesystem::Durability,
    ) -> crate::Result<Self> {
        let dir = blobs_dir.as_ref();
        let blobs = crate::filesystem::FsBlobStore::with_durability(dir, durability)?;
        let database = crate::postgres::PgStore::connect(database_url).await?;
        let uploads =
            crate::filesystem::FsUploadStore::for_blobs(&blobs, Arc::new(database.clone()));
        let changes = database.change_feed().await?;
        let metadata = crate::CachedMetadataStore::new(database.clone());
        Ok(
            Stores::new(Arc::new(blobs), Arc::new(uploads), Arc::new(metadata))
                .with_auth_store(Arc::new(database.clone()))
                .with_event_store(Arc::new(database))
                .with_change_feed(changes),
        )
    }

    /// Blobs in an S3 bucket; metadata, upload-session state and auth
    /// records in `database` (the SQLite or PostgreSQL store), so that any
    /// process over the same bucket and database serves every request and
    /// continues every upload. Metadata is read through a
    /// [`CachedMetadataStore`](crate::CachedMetadataStore). Makes one
    /// listing request first, so that a wrong endpoint, bucket or
    /// credentials fail here rather than at the first push.
    #[cfg(feature = "s3")]
    pub async fn s3<D>(config: &crate::s3::S3Config, database: D) -> crate::Result<Self>
    where
        D: MetadataStore + crate::UploadSessionStore + AuthStore + crate::EventStore + Clone,
    {
        let backend = crate::s3::S3Backend::new(config).map_err(crate::StorageError::backend)?;
        backend.check().await?;
        let backend = Arc::new(backend);
        let uploads =
            crate::backend::BackendUploadStore::new(backend.clone(), Arc::new(database.clone()));
        let blobs = crate::backend::BackendBlobStore::from_arc(backend);
        let metadata = crate::CachedMetadataStore::new(database.clone());
        Ok(
            Stores::new(Arc::new(blobs), Arc::new(uploads), Arc::new(metadata))
                .with_auth_store(Arc::new(database.clone()))
                .with_event_store(Arc::new(database)),
        )
    }

    /// Replaces where auth records live.
    pub fn with_auth_store(mut self, auth: Arc<dyn AuthStore>) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Sets where other processes' changes come from (a database shared
    /// by replicas): a registry over these stores drops what its caches
    /// hold about each change as it arrives. See [`crate::changes`].
    pub fn with_change_feed(mut self, changes: Arc<dyn crate::ChangeFeed>) -> Self {
        self.changes = Some(changes);
        self
    }

    /// Sets the outbox (events, webhooks, deliveries). It must be the
    /// metadata store itself (or share its transactions), since events are
    /// written by the metadata writes that raise them.
    pub fn with_event_store(mut self, events: Arc<dyn crate::EventStore>) -> Self {
        self.events = Some(events);
        self
    }

    /// The outbox, if these stores have one.
    pub fn events(&self) -> Option<&Arc<dyn crate::EventStore>> {
        self.events.as_ref()
    }

    /// Where other processes' changes come from, if anywhere.
    pub fn changes(&self) -> Option<&Arc<dyn crate::ChangeFeed>> {
        self.changes.as_ref()
    }

    /// The blob store.
    pub fn blobs(&self) -> &Arc<dyn BlobStore> {
        &self.blobs
    }

    /// The upload store.
    pub fn uploads(&self) -> &Arc<dyn UploadStore> {
        &self.uploads
    }

    /// The metadata store.
    pub fn metadata(&self) -> &Arc<dyn MetadataStore> {
        &self.metadata
    }

    /// Where auth records live, if anywhere.
    pub fn auth(&self) -> Option<&Arc<dyn AuthStore>> {
        self.auth.as_ref()
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    #[tokio::test]
    async fn data_dir_puts_everything_under_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let stores = Stores::data_dir(dir.path(), crate::filesystem::Durability::None)
            .await
            .unwrap();
        assert!(dir.path().join("registry.db").exists());
        let ns: registry_core::Namespace = "team".parse().unwrap();
        stores.metadata().create_namespace(&ns).await.unwrap();
        assert!(stores.metadata().namespace_exists(&ns).await.unwrap());
        assert!(stores
            .auth()
            .unwrap()
            .list_users()
            .await
            .unwrap()
            .is_empty());
    }
}
