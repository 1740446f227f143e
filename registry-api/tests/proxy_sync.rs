//! `POST /apis/admin/v1/namespaces/{ns}/mirror/sync` (the typed client's
//! `mirror_sync`, what `registryctl mirror sync` calls): tags copied ahead
//! of time, resumed without refetching, bad input and refused callers.

mod common;
mod proxy_support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use registry_api::client::ClientError;
use registry_api::model::admin::{MirrorSyncEvent, MirrorSyncRequest};
use registry_core::Namespace;

use proxy_support::*;

fn cache() -> Namespace {
    "cache".parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matching_tags_are_mirrored_then_a_second_sync_fetches_nothing() {
    let mut upstream = Upstream::start().await;
    let (v1, layer1) = upstream.push_image("v1", layer_of(50_000, 1)).await;
    let (v2, _) = upstream.push_image("v2", layer_of(60_000, 2)).await;
    upstream.push_image("other", layer_of(70_000, 3)).await;
    let down = Downstream::start(&upstream.url, Duration::from_secs(300)).await;
    let admin = down.client("admin");

    let request = MirrorSyncRequest::new("team/app", Some("v*".into()), false);
    let mut events = Vec::new();
    let last = admin
        .mirror_sync(&cache(), &request, |e| events.push(e.clone()))
        .await
        .unwrap();
    assert!(
        matches!(events[0], MirrorSyncEvent::Started { tags: 2, .. }),
        "{events:?}"
    );
    let tagged: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            MirrorSyncEvent::Tag(t) => Some(t.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(tagged.len(), 2);
    assert!(tagged
        .iter()
        .all(|t| t.error.is_none() && t.blobs_fetched == 2));
    let digests: Vec<_> = tagged.iter().filter_map(|t| t.digest.clone()).collect();
    assert!(digests.contains(&v1) && digests.contains(&v2));
    match last {
        MirrorSyncEvent::Finished {
            tags_synced: 2,
            tags_failed: 0,
            blobs_fetched: 4,
            blobs_cached: 0,
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    let gets = upstream.front.blob_gets.load(Ordering::SeqCst);
    assert_eq!(gets, 4);

    // Resumed (run again): everything is stored, nothing is fetched.
    let last = admin.mirror_sync(&cache(), &request, |_| {}).await.unwrap();
    assert!(
        matches!(
            last,
            MirrorSyncEvent::Finished {
                blobs_fetched: 0,
                blobs_cached: 4,
                ..
            }
        ),
        "{last:?}"
    );
    assert_eq!(upstream.front.blob_gets.load(Ordering::SeqCst), gets);

    // Mirrored means pullable with the upstream gone.
    upstream.stop().await;
    let bob = down.client("bob");
    let repo = name("cache/team/app");
    assert_eq!(
        bob.pull_blob_bytes(&repo, &layer1).await.unwrap(),
        layer_of(50_000, 1)
    );
    assert!(bob.get_manifest(&repo, &reference("v2")).await.is_ok());
    // The upstream's tag list is gone too: the sync says so.
    let mut failed = None;
    let result = admin
        .mirror_sync(&cache(), &request, |e| {
            if let MirrorSyncEvent::Failed { message } = e {
                failed = Some(message.clone());
            }
        })
        .await;
    assert!(
        matches!(result, Ok(MirrorSyncEvent::Failed { .. })),
        "{result:?}"
    );
    assert!(failed.unwrap().contains("unavailable"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_and_callers_who_may_not_are_refused() {
    let upstream = Upstream::start().await;
    let down = Downstream::start(&upstream.url, Duration::from_secs(300)).await;
    let admin = down.client("admin");
    let status = |r: Result<MirrorSyncEvent, ClientError>| match r {
        Err(e) => e.status().map(|s| s.as_u16()),
        Ok(other) => panic!("accepted: {other:?}"),
    };
    let bad_glob = MirrorSyncRequest::new("team/app", Some("v/1".into()), false);
    assert_eq!(
        status(admin.mirror_sync(&cache(), &bad_glob, |_| {}).await),
        Some(400)
    );
    let bad_name = MirrorSyncRequest::new("Team/App", None, false);
    assert_eq!(
        status(admin.mirror_sync(&cache(), &bad_name, |_| {}).await),
        Some(400)
    );
    // One component: only Docker Hub has such names (`library/` added);
    // before, a 200 with no event at all.
    let one_component = MirrorSyncRequest::new("alpine", None, false);
    assert_eq!(
        status(admin.mirror_sync(&cache(), &one_component, |_| {}).await),
        Some(400)
    );
    let ok = MirrorSyncRequest::new("team/app", None, false);
    let not_proxy: Namespace = "team".parse().unwrap();
    assert_eq!(
        status(admin.mirror_sync(&not_proxy, &ok, |_| {}).await),
        Some(400)
    );
    // A viewer may pull, not mirror.
    let bob = down.client("bob");
    assert_eq!(
        status(bob.mirror_sync(&cache(), &ok, |_| {}).await),
        Some(403)
    );
    assert_eq!(upstream.front.blob_gets.load(Ordering::SeqCst), 0);
    // A body that is not a request.
    let response = reqwest::Client::new()
        .post(format!(
            "{}/apis/admin/v1/namespaces/cache/mirror/sync",
            down.url
        ))
        .basic_auth("admin", Some(common::PASSWORD))
        .body("{\"repository\": 7}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_rules_of_the_config_run_on_their_schedule() {
    let upstream = Upstream::start().await;
    let (_, layer1) = upstream.push_image("v1", layer_of(10_000, 1)).await;
    let (_, layer2) = upstream.push_image("latest", layer_of(10_000, 2)).await;
    let mut config = registry_api::proxy::ProxyConfig::new(cache(), upstream.url.parse().unwrap());
    config.username = Some("mirror".into());
    config.password = Some(common::PASSWORD.into());
    config.sync = vec!["team/app:v*".parse().unwrap()];
    config.sync_interval = Some(Duration::from_secs(3600));
    let registry = registry_api::Registry::builder(registry_storage::Stores::in_memory())
        .proxy(config)
        .build()
        .await
        .unwrap();
    // The first run starts at once.
    let handles = registry.spawn_mirror_sync();
    assert_eq!(handles.len(), 1);
    let repo = name("cache/team/app");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while registry.blobs().stat(&layer1).await.unwrap().is_none() {
        assert!(std::time::Instant::now() < deadline, "not synced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(registry
        .metadata()
        .blob_linked(&repo, &layer1)
        .await
        .unwrap());
    // `latest` does not match `v*`.
    assert!(registry.blobs().stat(&layer2).await.unwrap().is_none());
}
