//! Blobs and upload sessions under a data directory.

mod blob;
mod upload;
