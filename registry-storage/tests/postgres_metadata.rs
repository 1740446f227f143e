//! The metadata conformance suite against [`PgStore`], each test on a fresh
//! database of the server `REGISTRY_TEST_DATABASE_URL` names (skipped,
//! saying so, when it is unset), plus persistence across reconnecting and
//! two stores (replicas) on one database.
//!
//!     eval "$(bash .ci/services/postgres.sh start /tmp/pg)"
//!     cargo test -p registry-storage --test postgres_metadata
#![cfg(feature = "postgres")]

mod postgres_common;

use std::sync::Arc;

use postgres_common::TestDb;
use registry_core::{Digest, Namespace, Reference, RepositoryName};
use registry_storage::backend::BackendUploadStore;
use registry_storage::memory::MemoryBlobStore;
use registry_storage::postgres::{PgSettings, PgStore};
use registry_storage::testing;
use registry_storage::{MetadataStore, NewManifest, StorageError};

/// One `#[tokio::test]` per suite function, each on a fresh database.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let Some(db) = TestDb::create(stringify!($name)).await else { return };
            testing::$name(db.store.as_ref()).await;
            db.finish().await;
        }
    )*};
}

suite!(
    metadata_namespaces,
    metadata_namespace_policies,
    metadata_fixed_tags,
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

/// The concurrency tests, whose contenders share one pool.
macro_rules! concurrent {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            let Some(db) = TestDb::create(stringify!($name)).await else { return };
            testing::$name(db.store.clone()).await;
            db.finish().await;
        }
    )*};
}

concurrent!(
    metadata_concurrent_puts,
    metadata_quota_concurrent,
    metadata_blob_deletion_races,
);

/// All tests one after another on one database: they must not disturb each other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn whole_suite_on_one_database() {
    let Some(db) = TestDb::create("whole_suite_on_one_database").await else {
        return;
    };
    testing::run_metadata_suite(db.store.clone()).await;
    db.finish().await;
}

/// Two stores (two replicas' pools) over one database push to one tag at
/// once: every move is one event, in commit order, and the tag points at
/// the newest.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_move_one_tag() {
    const PUSHES: usize = 16;
    let Some(db) = TestDb::create("two_replicas_move_one_tag").await else {
        return;
    };
    let other = PgStore::connect_options(db.options(), PgSettings::default())
        .await
        .expect("second store");
    let stores: [Arc<dyn MetadataStore>; 2] = [db.store.clone(), Arc::new(other.clone())];
    let repo: RepositoryName = "replicas/app".parse().unwrap();
    let latest: registry_core::Tag = "latest".parse().unwrap();
    let pushes: Vec<_> = (0..PUSHES)
        .map(|i| {
            let store = stores[i % 2].clone();
            let repo = repo.clone();
            let latest = latest.clone();
            tokio::spawn(async move {
                let bytes = bytes::Bytes::from(format!("{{\"push\":{i}}}"));
                let digest = Digest::sha256_of(&bytes);
                store
                    .put_manifest(NewManifest {
                        repository: repo,
                        digest: digest.clone(),
                        media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
                        bytes,
                        subject: None,
                        artifact_type: None,
                        annotations: Default::default(),
                        config: None,
                        blobs: vec![Digest::sha256_of(b"shared layer")],
                        children: Vec::new(),
                        tags: vec![latest],
                        fixed_tags: Vec::new(),
                        actor: format!("replica-{}", i % 2),
                        events: Vec::new(),
                        tag_moved: Vec::new(),
                    })
                    .await
                    .expect("put");
                digest
            })
        })
        .collect();
    let mut pushed = std::collections::BTreeSet::new();
    for push in pushes {
        pushed.insert(push.await.expect("push task"));
    }
    for store in &stores {
        let history = store
            .tag_history(&repo, &latest, None, usize::MAX)
            .await
            .unwrap();
        assert_eq!(history.len(), PUSHES, "every move is an event");
        let moved_to: std::collections::BTreeSet<_> =
            history.iter().filter_map(|e| e.digest.clone()).collect();
        assert_eq!(moved_to, pushed, "each push moved the tag once");
        let current = store
            .get_manifest(&repo, &Reference::Tag(latest.clone()))
            .await
            .unwrap()
            .expect("tagged");
        assert_eq!(Some(current.digest), history[0].digest, "newest event wins");
    }
    let ns: Namespace = "replicas".parse().unwrap();
    let usage = other.namespace_usage(&ns).await.unwrap();
    assert_eq!(usage.blobs, 1, "the shared layer counts once");
    other.close().await;
    db.finish().await;
}

/// Upload sessions with their state in PostgreSQL (as with S3 blobs): the
/// upload conformance suite, and two stores (replicas) over one blob backend
/// and one database continuing each other's sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_sessions_in_postgres() {
    let Some(db) = TestDb::create("upload_sessions_in_postgres").await else {
        return;
    };
    let blobs = MemoryBlobStore::default();
    let uploads = BackendUploadStore::new(blobs.backend().clone(), db.store.clone());
    testing::run_upload_suite(&uploads, &blobs, &|_| {}).await;

    let other = PgStore::connect_options(db.options(), PgSettings::default())
        .await
        .expect("second store");
    let second = BackendUploadStore::new(blobs.backend().clone(), Arc::new(other.clone()));
    testing::upload_continues_on_another_store(&uploads, &second, &blobs, 3_000_000).await;
    testing::upload_commit_races(&uploads, &second, &blobs).await;
    testing::whole_put_into_a_moved_session(&uploads, &second, &blobs).await;
    testing::assert_no_uploads(&uploads).await;
    testing::assert_no_blobs(&blobs).await;
    other.close().await;
    db.finish().await;
}

/// One prune at a time over a database: a second store's `lock_prune` waits
/// while the first holds the guard, and gets the lock once it is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_lock_is_one_at_a_time_across_stores() {
    let Some(db) = TestDb::create("prune_lock_is_one_at_a_time_across_stores").await else {
        return;
    };
    let other = PgStore::connect_options(db.options(), PgSettings::default())
        .await
        .expect("second store");
    let held = db.store.lock_prune().await.expect("first lock");
    let waiting = {
        let other = other.clone();
        tokio::spawn(async move { other.lock_prune().await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert!(
        !waiting.is_finished(),
        "a second prune ran while one held the lock"
    );
    drop(held);
    let second = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
        .await
        .expect("the lock is free once the guard is dropped")
        .expect("task")
        .expect("second lock");
    drop(second);
    // And free again after the second guard.
    let third = tokio::time::timeout(std::time::Duration::from_secs(5), db.store.lock_prune())
        .await
        .expect("free again")
        .expect("third lock");
    drop(third);
    other.close().await;
    db.finish().await;
}

#[tokio::test]
async fn reconnecting_keeps_the_data() {
    let Some(db) = TestDb::create("reconnecting_keeps_the_data").await else {
        return;
    };
    let name: RepositoryName = "persist/app".parse().unwrap();
    let namespace: Namespace = "persist".parse().unwrap();
    let bytes = bytes::Bytes::from_static(b"{\"schemaVersion\":2}");
    let digest = Digest::sha256_of(&bytes);
    let layer = Digest::sha256_of(b"layer");

    let store = &db.store;
    store.create_namespace(&namespace).await.unwrap();
    store
        .put_manifest(NewManifest {
            repository: name.clone(),
            digest: digest.clone(),
            media_type: "application/vnd.oci.image.manifest.v1+json".to_owned(),
            bytes: bytes.clone(),
            subject: None,
            artifact_type: None,
            annotations: [("a".to_owned(), "b".to_owned())].into(),
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

    // Connecting again also re-runs the (already applied) migrations.
    let store = PgStore::connect_options(db.options(), PgSettings::default())
        .await
        .unwrap();
    assert!(store.namespace_exists(&namespace).await.unwrap());
    let tag = Reference::Tag("latest".parse().unwrap());
    let after = store
        .get_manifest(&name, &tag)
        .await
        .unwrap()
        .expect("kept");
    assert_eq!(
        after, before,
        "bytes, times and fields survive reconnecting"
    );
    assert!(store.blob_linked(&name, &layer).await.unwrap());
    let history = store
        .tag_history(&name, &"latest".parse().unwrap(), None, usize::MAX)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].actor, "alice");
    store.close().await;
    db.finish().await;
}

/// Stores connecting at once to a fresh database migrate it once between
/// them (the migrator's advisory lock), and all of them work.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_connecting_at_once_migrate_once() {
    let Some(db) = TestDb::create("replicas_connecting_at_once_migrate_once").await else {
        return;
    };
    // A second, unmigrated database made through the first store's server.
    let fresh = format!("t_{}", uuid::Uuid::new_v4().simple());
    let admin = db.options().database("postgres");
    {
        use sqlx::{ConnectOptions, Connection};
        let mut conn = admin.connect().await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {fresh}"))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    let connects: Vec<_> = (0..4)
        .map(|_| {
            let options = admin.clone().database(&fresh);
            tokio::spawn(
                async move { PgStore::connect_options(options, PgSettings::default()).await },
            )
        })
        .collect();
    let mut stores = Vec::new();
    for connect in connects {
        stores.push(connect.await.unwrap().expect("connect and migrate"));
    }
    let ns: Namespace = "both".parse().unwrap();
    stores[0].create_namespace(&ns).await.unwrap();
    for store in &stores {
        assert!(store.namespace_exists(&ns).await.unwrap());
    }
    assert!(matches!(
        stores[1].create_namespace(&ns).await,
        Err(StorageError::AlreadyExists { .. })
    ));
    for store in &stores {
        store.close().await;
    }
    {
        use sqlx::{ConnectOptions, Connection};
        let mut conn = admin.connect().await.unwrap();
        sqlx::query(&format!("DROP DATABASE {fresh} WITH (FORCE)"))
            .execute(&mut conn)
            .await
            .unwrap();
        conn.close().await.unwrap();
    }
    db.finish().await;
}

/// The events conformance suite (outbox, fan-out, leases) on PostgreSQL.
#[tokio::test]
async fn events_suite() {
    let Some(db) = TestDb::create("events_suite").await else {
        return;
    };
    testing::run_events_suite(db.store.as_ref()).await;
    testing::auth_events_share_the_transaction(db.store.as_ref()).await;
    db.finish().await;
}
