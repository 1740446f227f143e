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
    assert!(store.list_refresh_tokens(None).await.unwrap().is_empty());
    assert!(store.list_token_signing_keys().await.unwrap().is_empty());
    // The token CA is the one record kept: the trust anchor of the keys.
    assert!(store.token_ca().await.unwrap().is_some());
}

#[tokio::test]
async fn checks_can_share_a_store_concurrently() {
    let store = MemoryAuthStore::new();
    tokio::join!(testing::run_all(&store), testing::run_all(&store));
}

#[tokio::test]
async fn cached_store_conformance() {
    let inner = std::sync::Arc::new(MemoryAuthStore::new());
    let store = registry_auth::CachedAuthStore::new(inner.clone());
    testing::run_all(&store).await;
    assert!(inner.list_users().await.unwrap().is_empty());
    assert!(inner.list_tokens(None).await.unwrap().is_empty());
    assert!(inner.list_refresh_tokens(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn cached_store_sees_its_own_writes() {
    use registry_auth::{AccessToken, CachedAuthStore, Subject, User};
    let store = CachedAuthStore::new(std::sync::Arc::new(MemoryAuthStore::new()));
    let name: registry_auth::UserName = "carol".parse().unwrap();
    let user = User {
        name: name.clone(),
        password_hash: None,
        created: time::OffsetDateTime::now_utc(),
    };
    store.create_user(user).await.unwrap();
    assert!(store.get_user(&name).await.unwrap().is_some());
    let (token, secret) =
        AccessToken::generate(Subject::User(name.clone()), "ci".parse().unwrap(), None).unwrap();
    store.create_token(token.clone()).await.unwrap();
    assert!(store
        .find_token_by_hash(&secret.hash())
        .await
        .unwrap()
        .is_some());
    let at = time::OffsetDateTime::now_utc();
    store.touch_token(&token.id, at).await.unwrap();
    let cached = store
        .find_token_by_hash(&secret.hash())
        .await
        .unwrap()
        .unwrap();
    assert!(cached.last_used.is_some());
    // Revocation and deletion are seen at once, though both were cached.
    store.delete_token(&token.id).await.unwrap();
    assert!(store
        .find_token_by_hash(&secret.hash())
        .await
        .unwrap()
        .is_none());
    store.delete_user(&name).await.unwrap();
    assert!(store.get_user(&name).await.unwrap().is_none());
}
