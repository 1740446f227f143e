//! In-process backends: for tests and for embedding without a disk.

mod blob;
mod metadata;
mod upload;
mod usage;
pub use self::metadata::MemoryMetadataStore;
pub use self::{blob::MemoryBlobStore, upload::MemoryUploadStore};
