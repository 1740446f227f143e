//! The metadata conformance suite against [`MemoryMetadataStore`].

use std::sync::Arc;

use registry_storage::memory::MemoryMetadataStore;
use registry_storage::testing;
use registry_storage::MetadataStore;

fn store() -> Arc<dyn MetadataStore> {
    Arc::new(MemoryMetadataStore::default())
}

/// One `#[tokio::test]` per suite function, each on a fresh store.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            testing::$name(store().as_ref()).await;
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
    testing::metadata_concurrent_puts(store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metadata_quota_concurrent() {
    testing::metadata_quota_concurrent(store()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metadata_blob_deletion_races() {
    testing::metadata_blob_deletion_races(store()).await;
}

/// All tests one after another on one store: they must not disturb each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_suite_on_one_store() {
    testing::run_metadata_suite(store()).await;
}

#[tokio::test]
async fn events_suite() {
    testing::run_events_suite(&MemoryMetadataStore::default()).await;
}
