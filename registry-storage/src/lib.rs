//! Storage for the registry: three small object-safe traits and their backends.
//!
//! - [`BlobStore`]: content-addressed blobs shared by all repositories.
//! - [`UploadStore`]: resumable upload sessions that publish into a blob store.
//! - [`MetadataStore`]: repositories, manifests, tags with history, blob
//!   links, referrers and namespaces.
//!
//! [`Stores`] assembles a complete set: [`Stores::in_memory`], or
//! `Stores::data_dir` (filesystem blobs + SQLite metadata, `sqlite` feature).
//!
//! [`CachedMetadataStore`] wraps any metadata store with an in-memory read
//! cache for the hot paths. [`collect_garbage`] sweeps blobs no manifest
//! references and expires abandoned uploads, online.
//!
//! Backends: [`memory`] (everything in process), [`filesystem`] (blobs and
//! uploads under a data directory) and, with the default `sqlite` feature,
//! [`sqlite`] metadata. The `testing` feature exposes the conformance suite
//! every backend runs.
//!
//! ```
//! use futures::StreamExt;
//! use registry_core::Digest;
//! use registry_storage::{memory::MemoryBlobStore, BlobStore};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let blobs = MemoryBlobStore::default();
//! let data = bytes::Bytes::from_static(b"hello");
//! let digest = Digest::sha256_of(&data);
//! blobs
//!     .put(&digest, futures::stream::iter([Ok(data)]).boxed())
//!     .await
//!     .unwrap();
//! assert_eq!(blobs.stat(&digest).await.unwrap().unwrap().size, 5);
//! # });
//! ```

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod auth_change_sql;
pub mod backend;
pub mod blob;
pub mod cache;
pub mod changes;
pub mod error;
pub mod events;
pub mod filesystem;
pub mod gc;
mod keyed_locks;
pub mod memory;
pub mod metadata;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod outbox_rows;
pub mod policy;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod retention;
#[cfg(feature = "s3")]
pub mod s3;
pub mod sessions;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod stores;
#[cfg(feature = "testing")]
pub mod testing;
pub mod upload;
pub mod usage;
pub mod verify;

pub use blob::{BlobBody, BlobInfo, BlobStore, ByteRange, ByteStream};
pub use cache::{CacheConfig, CachedMetadataStore};
pub use changes::{BroadcastFeed, Change, ChangeFeed, ChangeStream};
pub use error::{BoxError, Result, StorageError};
pub use events::{
    DeliveryOutcome, DeliveryQueue, DeliveryRecord, DeliveryStatus, EventFilter, EventRecord,
    EventStore, EventType, NewEvent, NewWebhook, WebhookRecord,
};
pub use gc::{collect_garbage, GcOptions, GcReport};
pub use metadata::{
    BlobRecord, BlobState, BlobTicket, LinkedBlob, ManifestNode, MetadataStore, MovedTag,
    NewManifest, PruneGuard, Referrer, RepositoryInfo, StoredManifest, TagEvent, TagRecord,
};
pub use policy::{NamespacePolicy, PolicyDuration, TagPattern};
pub use retention::{RemovalReason, RemovedManifest, RetentionReport};
pub use sessions::{UploadSession, UploadSessionStore};
pub use stores::Stores;
pub use upload::{InvalidUploadId, SessionOwner, UploadId, UploadStatus, UploadStore};
pub use usage::{HumanBytes, NamespaceUsage, RepositoryUsage, UsageRecount, UsageSummary};
