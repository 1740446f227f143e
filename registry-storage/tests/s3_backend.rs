//! The blob and upload conformance suites against [`S3Backend`] on a real
//! S3 server (Garage in CI: `bash .ci/services.sh start`), plus what only
//! S3 has: multipart parts across chunk boundaries, tails kept between
//! appends, sessions continued by another process, staging leftovers.
//!
//! Needs `REGISTRY_TEST_S3_ENDPOINT`, `_REGION`, `_BUCKET`, `_ACCESS_KEY_ID`
//! and `_SECRET_ACCESS_KEY`; without them each test says it was skipped and
//! passes. Every test works under its own random key prefix.

use std::sync::Arc;

use futures::TryStreamExt;
use registry_storage::backend::{BackendBlobStore, BackendUploadStore, BlobBackend};
use registry_storage::memory::MemoryUploadSessions;
use registry_storage::s3::{S3Backend, S3Config, MIN_PART_SIZE};
use registry_storage::sqlite::SqliteMetadataStore;
use registry_storage::testing;
use registry_storage::{BlobStore, UploadSessionStore, UploadStore};

/// The test server's settings under a fresh prefix, or `None` (skipped).
fn config(test: &str) -> Option<S3Config> {
    let var = |name: &str| std::env::var(format!("REGISTRY_TEST_S3_{name}")).ok();
    let Some(endpoint) = var("ENDPOINT") else {
        eprintln!("skipped {test}: REGISTRY_TEST_S3_ENDPOINT is not set (bash .ci/services.sh start sets it)");
        return None;
    };
    Some(S3Config {
        bucket: var("BUCKET").expect("REGISTRY_TEST_S3_BUCKET"),
        endpoint: Some(endpoint),
        region: var("REGION"),
        prefix: format!("test-{test}-{}", uuid_like()),
        access_key_id: var("ACCESS_KEY_ID"),
        secret_access_key: var("SECRET_ACCESS_KEY"),
        part_size: MIN_PART_SIZE,
        // Signed over the test server's plain HTTP, as by default; the
        // blob suite runs unsigned.
        unsigned_payload: None,
    })
}

fn uuid_like() -> String {
    registry_storage::UploadId::random().to_string()
}

fn stores(
    config: &S3Config,
    sessions: Arc<dyn UploadSessionStore>,
) -> (BackendBlobStore<S3Backend>, BackendUploadStore<S3Backend>) {
    let backend = Arc::new(S3Backend::new(config).expect("S3 config"));
    let uploads = BackendUploadStore::new(backend.clone(), sessions);
    (BackendBlobStore::from_arc(backend), uploads)
}

/// Objects under the test's prefix outside `blobs/`: staging leftovers.
async fn staging_objects(blobs: &BackendBlobStore<S3Backend>) -> usize {
    let live = std::collections::HashSet::new();
    // Age zero: everything not owned by a session counts (and goes).
    blobs
        .backend()
        .remove_stale_staged(&live, std::time::Duration::ZERO)
        .await
        .unwrap() as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_blob_suite() {
    let Some(config) = config("blobs") else {
        return;
    };
    // Bodies left out of the signature (`UNSIGNED-PAYLOAD`) work as well.
    let config = S3Config {
        unsigned_payload: Some(true),
        ..config
    };
    assert!(config.payload_unsigned());
    let (blobs, _) = stores(&config, Arc::new(MemoryUploadSessions::default()));
    blobs.backend().check().await.unwrap();
    testing::run_blob_suite(&blobs, &|_| {}).await;
    assert_eq!(staging_objects(&blobs).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_upload_suite() {
    let Some(config) = config("uploads") else {
        return;
    };
    let sessions = SqliteMetadataStore::open_in_memory().await.unwrap();
    let (blobs, uploads) = stores(&config, Arc::new(sessions));
    testing::run_upload_suite(&uploads, &blobs, &|_| {}).await;
    assert_eq!(staging_objects(&blobs).await, 0, "staging objects left");
}

/// 12 MiB in chunks that do not divide the 5 MiB part size, alternating
/// between two stores (two replicas) over one bucket and one database,
/// committed under SHA-512; then a one-shot put of several parts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_multipart_sessions_across_replicas() {
    let Some(config) = config("replicas") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("registry.db");
    let one = SqliteMetadataStore::open(&db).await.unwrap();
    let two = SqliteMetadataStore::open(&db).await.unwrap();
    let (blobs, first) = stores(&config, Arc::new(one));
    let (_, second) = stores(&config, Arc::new(two));
    testing::upload_continues_on_another_store(&first, &second, &blobs, 12 << 20).await;
    testing::upload_commit_races(&first, &second, &blobs).await;
    testing::whole_put_into_a_moved_session(&first, &second, &blobs).await;

    let data = testing::test_data(11 << 20, 5);
    let digest = registry_core::Digest::sha256_of(&data);
    blobs
        .put(&digest, testing::body_of(&data, 1 << 20))
        .await
        .unwrap();
    let read = testing::read_body(blobs.get(&digest, None).await.unwrap().stream)
        .await
        .unwrap();
    assert!(read == data, "multipart put read back differs");
    blobs.delete(&digest).await.unwrap();

    testing::assert_no_uploads(&first).await;
    testing::assert_no_blobs(&blobs).await;
    assert_eq!(staging_objects(&blobs).await, 0, "staging objects left");
}

/// A session cancelled or abandoned mid-way leaves no object behind once
/// cancelled; an unowned staging object is swept only when old enough.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_cancel_and_stale_sweep() {
    let Some(config) = config("sweep") else {
        return;
    };
    let sessions: Arc<dyn UploadSessionStore> = Arc::new(MemoryUploadSessions::default());
    let (blobs, uploads) = stores(&config, sessions.clone());
    let repo = "team/app".parse().unwrap();
    let data = testing::test_data(7 << 20, 9);
    let session = uploads.create(&repo).await.unwrap();
    uploads
        .append(&session.id, 0, testing::body_of(&data, 1 << 20))
        .await
        .unwrap();
    // The session owns its tail: a sweep leaves it.
    assert_eq!(uploads.remove_stale_files().await.unwrap(), 0);
    uploads.cancel(&session.id).await.unwrap();
    assert_eq!(staging_objects(&blobs).await, 0, "cancel left objects");

    // A session whose record vanished (a crash between the two writes)
    // leaves an unowned tail: kept while young, swept once old.
    let orphan = uploads.create(&repo).await.unwrap();
    uploads
        .append(&orphan.id, 0, testing::body_of(b"tail", 4))
        .await
        .unwrap();
    sessions.remove_session(&orphan.id, None).await.unwrap();
    assert_eq!(uploads.remove_stale_files().await.unwrap(), 0);
    assert_eq!(staging_objects(&blobs).await, 1);
    let listed: Vec<_> = blobs.list().try_collect().await.unwrap();
    assert!(listed.is_empty());
}
