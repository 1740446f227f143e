//! [`BackendUploadStore`] with its session state in SQLite: the upload
//! conformance suite, and two stores over one backend and one database
//! continuing each other's sessions, as two replicas do.

use std::sync::Arc;

use registry_storage::backend::BackendUploadStore;
use registry_storage::memory::{MemoryBlobStore, MemoryUploadStore};
use registry_storage::sqlite::SqliteMetadataStore;
use registry_storage::{testing, UploadSessionStore};

async fn sqlite_sessions(dir: &tempfile::TempDir) -> Arc<dyn UploadSessionStore> {
    let store = SqliteMetadataStore::open(dir.path().join("registry.db"))
        .await
        .unwrap();
    Arc::new(store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_suite_with_sessions_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = MemoryBlobStore::default();
    let uploads = BackendUploadStore::new(blobs.backend().clone(), sqlite_sessions(&dir).await);
    testing::run_upload_suite(&uploads, &blobs, &|_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_continue_across_stores_sharing_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = MemoryBlobStore::default();
    // Two connections to one database file, as two processes would have.
    let first = BackendUploadStore::new(blobs.backend().clone(), sqlite_sessions(&dir).await);
    let second = BackendUploadStore::new(blobs.backend().clone(), sqlite_sessions(&dir).await);
    testing::upload_continues_on_another_store(&first, &second, &blobs, 3_000_000).await;
    testing::upload_commit_races(&first, &second, &blobs).await;
    testing::whole_put_into_a_moved_session(&first, &second, &blobs).await;
    testing::assert_no_uploads(&first).await;
    testing::assert_no_blobs(&blobs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_sessions_are_shared_by_clones() {
    let blobs = MemoryBlobStore::default();
    let first = MemoryUploadStore::in_memory(&blobs);
    let second = first.clone();
    testing::upload_continues_on_another_store(&first, &second, &blobs, 1_000_000).await;
    testing::upload_commit_races(&first, &second, &blobs).await;
    testing::whole_put_into_a_moved_session(&first, &second, &blobs).await;
}
