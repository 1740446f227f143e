//! Two registries over one database, as two replicas: each has its own
//! caches (metadata and auth records) and authorizer snapshot, and the
//! second follows a change feed. What the first writes is served stale by
//! the second until the change arrives (each test checks that first, so
//! it cannot pass without the feed), and fresh within a second after.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use common::{basic, Client, Reply, PASSWORD};
use registry_api::{AuthConfig, Registry};
use registry_auth::{
    AuthStore, CachedAuthStore, ClusterRole, ClusterRoleBinding, Password, PasswordHasher, Role,
    RoleBinding, SigningKey, Subject, User,
};
use registry_storage::memory::{MemoryBlobStore, MemoryUploadStore};
use registry_storage::sqlite::SqliteMetadataStore;
use registry_storage::{BroadcastFeed, CachedMetadataStore, Change, Stores};

struct Replicas {
    /// The writer: access control off, its own caches.
    first: Client,
    /// The follower: access control on, following `feed`.
    second: Client,
    db: SqliteMetadataStore,
    feed: BroadcastFeed,
    _dir: tempfile::TempDir,
}

fn stores(db: &SqliteMetadataStore, blobs: &MemoryBlobStore) -> Stores {
    Stores::new(
        Arc::new(blobs.clone()),
        Arc::new(MemoryUploadStore::in_memory(blobs)),
        Arc::new(CachedMetadataStore::new(db.clone())),
    )
    .with_auth_store(Arc::new(db.clone()))
}

async fn replicas() -> Replicas {
    let dir = tempfile::tempdir().unwrap();
    let db = SqliteMetadataStore::open(dir.path().join("registry.db"))
        .await
        .unwrap();
    let hasher = PasswordHasher::insecure_fast();
    for name in ["alice", "root"] {
        db.create_user(User {
            name: name.parse().unwrap(),
            password_hash: Some(hasher.hash(&Password::new(PASSWORD)).unwrap()),
            created: time::OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();
    }
    db.add_role_binding(viewer_binding()).await.unwrap();
    db.add_cluster_role_binding(ClusterRoleBinding {
        role: ClusterRole::ClusterAdmin,
        subject: "root".parse().unwrap(),
    })
    .await
    .unwrap();
    let blobs = MemoryBlobStore::default();
    let first = Registry::new(stores(&db, &blobs));
    let feed = BroadcastFeed::default();
    let mut config = AuthConfig::new(SigningKey::generate().unwrap())
        .with_store(Arc::new(CachedAuthStore::new(Arc::new(db.clone()))) as Arc<dyn AuthStore>);
    config.hasher = hasher;
    let second = Registry::builder(stores(&db, &blobs).with_change_feed(Arc::new(feed.clone())))
        .auth(config)
        .build()
        .await
        .unwrap();
    Replicas {
        first: Client::with(first),
        second: Client::with(second),
        db,
        feed,
        _dir: dir,
    }
}

fn viewer_binding() -> RoleBinding {
    RoleBinding {
        namespace: "team".parse().unwrap(),
        role: Role::Viewer,
        subject: "alice".parse::<Subject>().unwrap(),
    }
}

async fn get_as(client: &Client, user: &str, uri: &str) -> Reply {
    client
        .call(
            Method::GET,
            uri,
            &[
                ("authorization", &basic(user, PASSWORD)),
                ("accept", registry_core::media_type::OCI_MANIFEST),
            ],
            Vec::new(),
        )
        .await
}

/// Polls `check` on the follower for up to a second.
async fn within_a_second(mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "the follower did not see the change within a second"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    started.elapsed()
}

#[tokio::test]
async fn a_tag_move_is_served_at_once() {
    let r = replicas().await;
    let (old, _, _) = r.first.push_image("team/app", "latest", "one").await;
    let uri = "/v2/team/app/manifests/latest";
    let reply = get_as(&r.second, "alice", uri).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.header("docker-content-digest"), old.as_str());

    let (new, _, _) = r.first.push_image("team/app", "latest", "two").await;
    // Cached: without the change the follower still serves the old image.
    let stale = get_as(&r.second, "alice", uri).await;
    assert_eq!(stale.header("docker-content-digest"), old.as_str());

    r.feed
        .publish(Change::Repository("team/app".parse().unwrap()));
    within_a_second(async || {
        get_as(&r.second, "alice", uri)
            .await
            .header("docker-content-digest")
            == new.as_str()
    })
    .await;
}

#[tokio::test]
async fn a_removed_binding_and_a_deleted_user_are_refused_at_once() {
    let r = replicas().await;
    r.first.push_image("team/app", "v1", "one").await;
    let uri = "/v2/team/app/manifests/v1";
    assert_eq!(get_as(&r.second, "alice", uri).await.status, StatusCode::OK);

    r.db.remove_role_binding(&viewer_binding()).await.unwrap();
    // The follower's authorizer snapshot still has the binding.
    assert_eq!(get_as(&r.second, "alice", uri).await.status, StatusCode::OK);
    r.feed.publish(Change::Auth);
    within_a_second(async || get_as(&r.second, "alice", uri).await.status != StatusCode::OK).await;

    // root reads through the cached user record; deleting root elsewhere
    // ends that once the change arrives.
    assert_eq!(get_as(&r.second, "root", uri).await.status, StatusCode::OK);
    r.db.delete_user(&"root".parse().unwrap()).await.unwrap();
    assert_eq!(get_as(&r.second, "root", uri).await.status, StatusCode::OK);
    r.feed.publish(Change::Auth);
    within_a_second(async || {
        get_as(&r.second, "root", uri).await.status == StatusCode::UNAUTHORIZED
    })
    .await;
}

#[tokio::test]
async fn a_feed_that_lagged_drops_everything() {
    let r = replicas().await;
    let (old, _, _) = r.first.push_image("team/app", "latest", "one").await;
    let uri = "/v2/team/app/manifests/latest";
    assert_eq!(
        get_as(&r.second, "alice", uri)
            .await
            .header("docker-content-digest"),
        old.as_str()
    );
    let (new, _, _) = r.first.push_image("team/app", "latest", "two").await;
    r.feed.publish(Change::Everything);
    within_a_second(async || {
        get_as(&r.second, "alice", uri)
            .await
            .header("docker-content-digest")
            == new.as_str()
    })
    .await;
}
