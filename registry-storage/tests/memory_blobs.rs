//! The conformance suite against the in-memory backends.

use registry_storage::memory::{MemoryBlobStore, MemoryUploadStore};
use registry_storage::testing;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_blob_suite() {
    let blobs = MemoryBlobStore::default();
    testing::run_blob_suite(&blobs, &|_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_upload_suite() {
    let blobs = MemoryBlobStore::default();
    let uploads = MemoryUploadStore::in_memory(&blobs);
    testing::run_upload_suite(&uploads, &blobs, &|_| {}).await;
}

#[tokio::test]
async fn memory_clones_share_blobs() {
    use futures::StreamExt;
    use registry_storage::BlobStore;

    let blobs = MemoryBlobStore::default();
    let clone = blobs.clone();
    let digest = registry_core::Digest::sha256_of(b"shared");
    let body = futures::stream::iter([Ok(bytes::Bytes::from_static(b"shared"))]).boxed();
    blobs.put(&digest, body).await.unwrap();
    assert!(clone.stat(&digest).await.unwrap().is_some());
    clone.delete(&digest).await.unwrap();
    testing::assert_no_blobs(&blobs).await;
}
