//! PostgreSQL's change feed: what one store (replica) commits reaches
//! another store's [`PgChangeFeed`] subscribers, as precisely as caches
//! need it; token use (`touch_token`) and reads announce nothing.

#![cfg(feature = "postgres")]

mod postgres_common;

use std::time::Duration;

use futures::StreamExt;
use postgres_common::TestDb;
use registry_auth::{AccessToken, AuthStore, Role, RoleBinding, Subject, User};
use registry_core::{Digest, Namespace, RepositoryName};
use registry_storage::postgres::{PgSettings, PgStore};
use registry_storage::{Change, ChangeFeed, ChangeStream, MetadataStore};

async fn next(changes: &mut ChangeStream) -> Change {
    tokio::time::timeout(Duration::from_secs(1), changes.next())
        .await
        .expect("a change within a second")
        .expect("the feed ended")
}

async fn quiet(changes: &mut ChangeStream) {
    if let Ok(change) = tokio::time::timeout(Duration::from_millis(300), changes.next()).await {
        panic!("unexpected change: {change:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_stores_writes_arrive_as_changes() {
    let Some(db) = TestDb::create("another_stores_writes_arrive_as_changes").await else {
        return;
    };
    let follower = PgStore::connect_options(db.options(), PgSettings::default())
        .await
        .expect("second store");
    let feed = follower.change_feed().await.expect("listen");
    let mut changes = feed.subscribe();
    let writer = &db.store;

    let ns: Namespace = "team".parse().unwrap();
    writer.create_namespace(&ns).await.unwrap();
    assert_eq!(next(&mut changes).await, Change::Namespace(ns.clone()));

    let repo: RepositoryName = "team/app".parse().unwrap();
    writer
        .link_blob(&repo, &Digest::sha256_of(b"layer"))
        .await
        .unwrap();
    assert_eq!(next(&mut changes).await, Change::Repository(repo.clone()));

    writer
        .create_user(User {
            name: "alice".parse().unwrap(),
            password_hash: None,
            created: time::OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();
    assert_eq!(next(&mut changes).await, Change::Auth);
    let binding = RoleBinding {
        namespace: ns.clone(),
        role: Role::Viewer,
        subject: "alice".parse::<Subject>().unwrap(),
    };
    writer.add_role_binding(binding.clone()).await.unwrap();
    assert_eq!(next(&mut changes).await, Change::Auth);

    let (token, _) = AccessToken::generate(
        "alice".parse::<Subject>().unwrap(),
        "ci".parse().unwrap(),
        None,
    )
    .unwrap();
    writer.create_token(token.clone()).await.unwrap();
    assert_eq!(next(&mut changes).await, Change::Auth);
    // Using a token is not a change anyone caches; reads are none either.
    writer
        .touch_token(&token.id, time::OffsetDateTime::now_utc())
        .await
        .unwrap();
    writer.list_role_bindings(Some(&ns)).await.unwrap();
    quiet(&mut changes).await;

    writer.remove_role_binding(&binding).await.unwrap();
    assert_eq!(next(&mut changes).await, Change::Auth);
    writer.delete_repository(&repo).await.unwrap();
    assert_eq!(next(&mut changes).await, Change::Repository(repo));

    drop(changes);
    drop(feed);
    follower.close().await;
    db.finish().await;
}
