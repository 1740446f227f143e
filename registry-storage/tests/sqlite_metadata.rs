//! The metadata conformance suite against [`SqliteMetadataStore`], on a file
//! in a temporary directory and in memory, plus persistence across reopening.

use std::sync::Arc;

use registry_core::{Digest, Namespace, Reference, RepositoryName};
use registry_storage::sqlite::SqliteMetadataStore;
use registry_storage::testing;
use registry_storage::{MetadataStore, NewManifest};

/// A store on a fresh file; the directory lives as long as the store is used.
async fn store() -> (Arc<dyn MetadataStore>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteMetadataStore::open(dir.path().join("metadata.db"))
        .await
        .expect("open sqlite store");
    (Arc::new(store), dir)
}

/// One `#[tokio::test]` per suite function, each on a fresh database file.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let (store, _dir) = store().await;
            testing::$name(store.as_ref()).await;
        }
    )*};
}

suite!(
    metadata_namespaces,
    metadata_manifest_put_get,
    metadata_tag_history,
    metadata_list_tags_pagination,
    metadata_list_repositories_pagination,
    metadata_delete_manifest,
    metadata_find_manifest,
    metadata_blob_links,
    metadata_referrers,
    metadata_tags_pagination,
    metadata_tag_history_pagination,
    metadata_referrers_pagination,
    metadata_referenced_blobs,
    metadata_delete_repository,
    metadata_delete_namespace,
    metadata_blob_deletion_protocol,
    metadata_usage_accounting,
    metadata_quota,
    metadata_manifest_nodes,
    metadata_index_children_must_exist,
    metadata_delete_unreferenced_manifest,
    metadata_blob_reference_count,
    metadata_tag_events,
    metadata_delete_keeps_immutable_tags,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metadata_concurrent_puts() {
    let (store, _dir) = store().await;
    testing::metadata_concurrent_puts(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metadata_quota_concurrent() {
    let (store, _dir) = store().await;
    testing::metadata_quota_concurrent(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metadata_blob_deletion_races() {
    let (store, _dir) = store().await;
    testing::metadata_blob_deletion_races(store).await;
}

/// All tests one after another on one file: they must not disturb each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_suite_on_one_file() {
    let (store, _dir) = store().await;
    testing::run_metadata_suite(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_suite_in_memory() {
    let store = SqliteMetadataStore::open_in_memory()
        .await
        .expect("open in-memory store");
    testing::run_metadata_suite(Arc::new(store)).await;
}

#[tokio::test]
async fn reopening_the_file_keeps_the_data() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("metadata.db");
    let name: RepositoryName = "persist/app".parse().unwrap();
    let namespace: Namespace = "persist".parse().unwrap();
    let bytes = bytes::Bytes::from_static(b"{\"schemaVersion\":2}");
    let digest = Digest::sha256_of(&bytes);
    let layer = Digest::sha256_of(b"layer");

    let store = SqliteMetadataStore::open(&path).await.unwrap();
    store.create_namespace(&namespace).await.unwrap();
    store
        .put_manifest(NewManifest {
            repository: name.clone(),
            digest: digest.clone(),
            media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
            bytes: bytes.clone(),
            subject: None,
            artifact_type: None,
            annotations: Default::default(),
            config: None,
            blobs: vec![layer.clone()],
            children: Vec::new(),
            tags: vec!["latest".parse().unwrap()],
            fixed_tags: Vec::new(),
            actor: "alice".to_owned(),
            events: Vec::new(),
            tag_moved: Vec::new(),
        })
        .await
        .unwrap();
    let before = store
        .get_manifest(&name, &Reference::Digest(digest.clone()))
        .await
        .unwrap()
        .expect("stored");
    store.close().await;
    drop(store);

    // Opening again also re-runs the (already applied) migrations.
    let store = SqliteMetadataStore::open(&path).await.unwrap();
    assert!(store.namespace_exists(&namespace).await.unwrap());
    let tag = Reference::Tag("latest".parse().unwrap());
    let after = store
        .get_manifest(&name, &tag)
        .await
        .unwrap()
        .expect("kept");
    assert_eq!(after, before, "bytes, times and fields survive reopening");
    assert!(store.blob_linked(&name, &layer).await.unwrap());
    let history = store
        .tag_history(&name, &"latest".parse().unwrap(), None, usize::MAX)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].actor, "alice");
    store.close().await;
}

#[tokio::test]
async fn events_suite() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteMetadataStore::open(dir.path().join("metadata.db"))
        .await
        .expect("open sqlite store");
    testing::run_events_suite(&store).await;
    testing::auth_events_share_the_transaction(&store).await;
}

/// The cache in front of the store passes the events of its writes on.
#[tokio::test]
async fn cached_store_passes_events_on() {
    use registry_storage::{EventFilter, EventStore, EventType};
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteMetadataStore::open(dir.path().join("metadata.db"))
        .await
        .expect("open sqlite store");
    let cached = registry_storage::CachedMetadataStore::new(store.clone());
    let ns: Namespace = "cached".parse().unwrap();
    cached.create_namespace(&ns).await.unwrap();
    let repo: RepositoryName = "cached/app".parse().unwrap();
    let bytes = bytes::Bytes::from_static(b"{}");
    let digest = Digest::sha256_of(&bytes);
    let pushed = testing::event(EventType::ManifestPushed, &ns, "cached/app:v1");
    cached
        .put_manifest(NewManifest {
            repository: repo.clone(),
            digest: digest.clone(),
            media_type: "application/vnd.oci.image.manifest.v1+json".into(),
            bytes,
            subject: None,
            artifact_type: None,
            annotations: Default::default(),
            config: None,
            blobs: Vec::new(),
            children: Vec::new(),
            tags: vec!["v1".parse().unwrap()],
            fixed_tags: Vec::new(),
            actor: "alice".into(),
            events: vec![pushed.clone()],
            tag_moved: Vec::new(),
        })
        .await
        .unwrap();
    let deleted = testing::event(EventType::TagDeleted, &ns, "cached/app:v1");
    cached
        .delete_tag_raising(
            &repo,
            &"v1".parse().unwrap(),
            "alice",
            vec![deleted.clone()],
        )
        .await
        .unwrap();
    let recorded: Vec<String> = store
        .events(&EventFilter::default(), None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event.id)
        .collect();
    assert_eq!(recorded, vec![pushed.id, deleted.id]);
}
