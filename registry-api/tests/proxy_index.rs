//! An index pulled through a proxy namespace by tag, then one of its
//! children by digest (what a client pulling one platform does): the
//! child is stored and recorded as the index's child, so retention keeps
//! it (and its blobs) with the index, and the index stays servable while
//! its other children are not cached.

mod common;
mod proxy_support;

use std::time::Duration;

use axum::http::StatusCode;
use bytes::Bytes;
use registry_api::client::Client;
use registry_api::model::admin::MirrorSyncRequest;
use registry_core::{Digest, Reference, RepositoryName};

use common::PASSWORD;
use proxy_support::*;

async fn manifest_size(client: &Client, repo: &RepositoryName, digest: &Digest) -> usize {
    client
        .get_manifest(repo, &Reference::Digest(digest.clone()))
        .await
        .unwrap()
        .bytes
        .len()
}

/// Sends `body` (JSON) to an admin endpoint of `down` as the cluster admin.
async fn admin_call(down: &Downstream, method: reqwest::Method, path: &str, body: &str) -> String {
    let response = reqwest::Client::new()
        .request(method, format!("{}{path}", down.url))
        .basic_auth("admin", Some(PASSWORD))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert!(status.is_success(), "{path}: {status} {text}");
    text
}

/// What [`two_platforms`] pushed to the upstream's `team/app`.
struct TwoPlatforms {
    amd: Digest,
    amd_layer: Bytes,
    amd_layer_digest: Digest,
    arm: Digest,
    index: Digest,
}

/// An image per platform (amd64, arm64) and an index over both, tagged
/// `multi`, pushed to the upstream.
async fn two_platforms(upstream: &Upstream) -> TwoPlatforms {
    let amd_layer = layer_of(5_000, 1);
    let (amd, amd_layer_digest) = upstream.push_image("amd64", amd_layer.clone()).await;
    let (arm, _) = upstream.push_image("arm64", layer_of(5_000, 2)).await;
    let repo = name("team/app");
    let pusher = upstream.pusher();
    let children = [
        (amd.clone(), manifest_size(&pusher, &repo, &amd).await),
        (arm.clone(), manifest_size(&pusher, &repo, &arm).await),
    ];
    let index = upstream.push_index("multi", &children).await;
    TwoPlatforms {
        amd,
        amd_layer,
        amd_layer_digest,
        arm,
        index,
    }
}

/// The children `index` lists in `cache/team/app` of `down`'s store, sorted.
async fn listed_children(down: &Downstream, index: &Digest) -> Vec<Digest> {
    let nodes = down
        .registry
        .metadata()
        .manifest_nodes(&name("cache/team/app"), None, 100)
        .await
        .unwrap();
    let mut listed = nodes
        .into_iter()
        .find(|n| n.digest == *index)
        .expect("the index is cached")
        .children;
    listed.sort();
    listed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_pulled_after_its_index_is_kept_with_it_and_the_index_served_without_the_others() {
    let mut upstream = Upstream::start().await;
    let TwoPlatforms {
        amd,
        amd_layer,
        amd_layer_digest,
        arm,
        index,
    } = two_platforms(&upstream).await;

    let down = Downstream::start(&upstream.url, Duration::from_secs(300)).await;
    let bob = down.client("bob");
    let repo = name("cache/team/app");
    let pulled = bob.get_manifest(&repo, &reference("multi")).await.unwrap();
    assert_eq!(pulled.digest, index);
    let child = bob
        .get_manifest(&repo, &Reference::Digest(amd.clone()))
        .await
        .unwrap();
    assert_eq!(child.digest, amd);
    assert_eq!(
        bob.pull_blob_bytes(&repo, &amd_layer_digest).await.unwrap(),
        amd_layer
    );

    // The index lists the child that is cached, and only it.
    assert_eq!(listed_children(&down, &index).await, vec![amd.clone()]);

    // Retention dropping untagged manifests at once keeps the child (its
    // index is tagged) and so its layer.
    admin_call(
        &down,
        reqwest::Method::PUT,
        "/apis/admin/v1/namespaces/cache/policy",
        r#"{"prune_untagged_after":"0s"}"#,
    )
    .await;
    let report = admin_call(
        &down,
        reqwest::Method::POST,
        "/apis/admin/v1/prune",
        r#"{"dry_run":false,"grace_period_seconds":0}"#,
    )
    .await;
    assert!(!report.contains(amd.as_str()), "{report}");
    assert!(!report.contains(amd_layer_digest.as_str()), "{report}");

    // From the cache alone: the index by tag and by digest, the child and
    // its layer; the child never pulled is a clear 503, not a broken index.
    upstream.stop().await;
    assert_eq!(
        bob.get_manifest(&repo, &reference("multi"))
            .await
            .unwrap()
            .bytes,
        pulled.bytes
    );
    assert_eq!(
        bob.get_manifest(&repo, &Reference::Digest(index.clone()))
            .await
            .unwrap()
            .digest,
        index
    );
    assert_eq!(
        bob.get_manifest(&repo, &Reference::Digest(amd.clone()))
            .await
            .unwrap()
            .bytes,
        child.bytes
    );
    assert_eq!(
        bob.pull_blob_bytes(&repo, &amd_layer_digest).await.unwrap(),
        amd_layer
    );
    let missing = down
        .get("bob", &format!("/v2/cache/team/app/manifests/{arm}"))
        .await;
    assert_eq!(missing.status(), StatusCode::SERVICE_UNAVAILABLE);
}

/// The index pulled before a restart (or through another replica), the
/// child after it: the child is found in the stored index all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_pulled_after_a_restart_is_listed_in_its_stored_index() {
    let upstream = Upstream::start().await;
    let TwoPlatforms { amd, index, .. } = two_platforms(&upstream).await;
    let stores = registry_storage::Stores::in_memory();
    let multi = reference("multi");
    let after = index_then_child_across_a_restart(&upstream, &stores, &multi, &amd).await;
    assert_eq!(listed_children(&after, &index).await, vec![amd]);
}

/// Pulls `index` of `cache/team/app` through one proxy over `stores`, then
/// `child` through a second one over the same stores (a restart, or
/// another replica); the second.
async fn index_then_child_across_a_restart(
    upstream: &Upstream,
    stores: &registry_storage::Stores,
    index: &Reference,
    child: &Digest,
) -> Downstream {
    let ttl = Duration::from_secs(300);
    let repo = name("cache/team/app");
    let before = Downstream::start_on(&upstream.url, ttl, Default::default(), stores.clone()).await;
    before
        .client("bob")
        .get_manifest(&repo, index)
        .await
        .unwrap();
    let after = Downstream::start_on(&upstream.url, ttl, Default::default(), stores.clone()).await;
    after
        .client("bob")
        .get_manifest(&repo, &Reference::Digest(child.clone()))
        .await
        .unwrap();
    after
}

/// As above with an index that was only ever pulled by digest (no tag in
/// the store points at it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_of_an_index_cached_by_digest_is_listed_after_a_restart() {
    let upstream = Upstream::start().await;
    let TwoPlatforms { arm, index, .. } = two_platforms(&upstream).await;
    let stores = registry_storage::Stores::in_memory();
    let by_digest = Reference::Digest(index.clone());
    let after = index_then_child_across_a_restart(&upstream, &stores, &by_digest, &arm).await;
    let repo = name("cache/team/app");
    let tags = stores.metadata().tags(&repo, None, 10).await.unwrap();
    assert!(
        tags.is_empty(),
        "pulled by digest: no tag cached ({tags:?})"
    );
    assert_eq!(listed_children(&after, &index).await, vec![arm]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_fetched_after_its_child_lists_the_cached_child() {
    let upstream = Upstream::start().await;
    let TwoPlatforms { arm, index, .. } = two_platforms(&upstream).await;

    let down = Downstream::start(&upstream.url, Duration::from_secs(300)).await;
    let bob = down.client("bob");
    let repo = name("cache/team/app");
    // The child first (pulled by digest on its own), then the index.
    bob.get_manifest(&repo, &Reference::Digest(arm.clone()))
        .await
        .unwrap();
    bob.get_manifest(&repo, &reference("multi")).await.unwrap();
    assert_eq!(listed_children(&down, &index).await, vec![arm]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirrored_index_lists_every_child_it_synced() {
    let upstream = Upstream::start().await;
    let TwoPlatforms {
        amd, arm, index, ..
    } = two_platforms(&upstream).await;

    let down = Downstream::start(&upstream.url, Duration::from_secs(300)).await;
    let request = MirrorSyncRequest::new("team/app", Some("multi".into()), true);
    down.client("admin")
        .mirror_sync(&"cache".parse().unwrap(), &request, |_| {})
        .await
        .unwrap();
    let mut expected = vec![amd, arm];
    expected.sort();
    assert_eq!(listed_children(&down, &index).await, expected);
}
