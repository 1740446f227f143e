//! In-process backends: for tests and for embedding without a disk.

mod blob;
mod metadata;
mod sessions;
mod usage;
pub use self::blob::{MemoryBackend, MemoryBlobStore, MemoryUploadStore};
pub use self::metadata::MemoryMetadataStore;
pub use self::sessions::MemoryUploadSessions;
