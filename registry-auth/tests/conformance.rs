//! The AuthStore conformance suite against the memory backend.

use registry_auth::{testing, AuthStore, MemoryAuthStore};

#[tokio::test]
async fn memory_store_conformance() {
    let store = MemoryAuthStore::new();
    testing::run_all(&store).await;
    // Run alone on a fresh store: the whole store must be empty again.
    assert!(store.list_users().await.unwrap().is_empty());
    assert!(store.list_service_accounts(None).await.unwrap().is_empty());
    assert!(store.list_tokens(None).await.unwrap().is_empty());
    assert!(store.list_role_bindings(None).await.unwrap().is_empty());
    assert!(store.list_cluster_role_bindings().await.unwrap().is_empty());
}

#[tokio::test]
async fn checks_can_share_a_store_concurrently() {
    let store = MemoryAuthStore::new();
    tokio::join!(testing::run_all(&store), testing::run_all(&store));
}
