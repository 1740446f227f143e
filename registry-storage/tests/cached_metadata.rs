//! The metadata conformance suite through the read cache, over memory and
//! SQLite, plus the cache's own promise: a process reads its own writes.

use std::sync::Arc;

use registry_core::{Digest, Reference, RepositoryName};
use registry_storage::memory::MemoryMetadataStore;
use registry_storage::sqlite::SqliteMetadataStore;
use registry_storage::testing::run_metadata_suite;
use registry_storage::{CachedMetadataStore, MetadataStore, NewManifest};

#[tokio::test]
async fn suite_over_cached_memory() {
    run_metadata_suite(Arc::new(CachedMetadataStore::new(
        MemoryMetadataStore::default(),
    )))
    .await;
}

#[tokio::test]
async fn suite_over_cached_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteMetadataStore::open(dir.path().join("registry.db"))
        .await
        .unwrap();
    run_metadata_suite(Arc::new(CachedMetadataStore::new(store))).await;
}

fn manifest(repo: &RepositoryName, body: &str, tag: &str) -> NewManifest {
    NewManifest {
        repository: repo.clone(),
        digest: Digest::sha256_of(body.as_bytes()),
        media_type: registry_core::media_type::OCI_MANIFEST.into(),
        bytes: bytes::Bytes::from(body.to_owned()),
        subject: None,
        artifact_type: None,
        annotations: Default::default(),
        config: None,
        blobs: vec![],
        children: vec![],
        tags: vec![tag.parse().unwrap()],
        fixed_tags: Vec::new(),
        actor: "test".into(),
        events: Vec::new(),
        tag_moved: Vec::new(),
    }
}

#[tokio::test]
async fn reads_its_own_writes() {
    let store = CachedMetadataStore::new(MemoryMetadataStore::default());
    let repo: RepositoryName = "ns/app".parse().unwrap();
    let latest: Reference = "latest".parse().unwrap();
    store
        .put_manifest(manifest(&repo, "one", "latest"))
        .await
        .unwrap();
    let first = store.get_manifest(&repo, &latest).await.unwrap().unwrap();
    assert_eq!(&first.bytes[..], b"one");
    // Served from the cache now; a move must be seen at once.
    store
        .put_manifest(manifest(&repo, "two", "latest"))
        .await
        .unwrap();
    let second = store.get_manifest(&repo, &latest).await.unwrap().unwrap();
    assert_eq!(&second.bytes[..], b"two");
    // Deleting the manifest drops it and its tag.
    store
        .delete_manifest(&repo, &second.digest, "test")
        .await
        .unwrap();
    assert!(store.get_manifest(&repo, &latest).await.unwrap().is_none());
    let by_digest = Reference::Digest(second.digest.clone());
    assert!(store
        .get_manifest(&repo, &by_digest)
        .await
        .unwrap()
        .is_none());
    // Links: cached positive answers go with unlink.
    let d = Digest::sha256_of(b"blob");
    store.link_blob(&repo, &d).await.unwrap();
    assert!(store.blob_linked(&repo, &d).await.unwrap());
    store.unlink_blob(&repo, &d).await.unwrap();
    assert!(!store.blob_linked(&repo, &d).await.unwrap());
    store.link_blob(&repo, &d).await.unwrap();
    assert!(store.blob_linked(&repo, &d).await.unwrap());
    store.forget_blob(&d).await.unwrap();
    assert!(!store.blob_linked(&repo, &d).await.unwrap());
    store.delete_repository(&repo).await.unwrap();
}
