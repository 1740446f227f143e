//! A proxy namespace in front of an upstream that misbehaves on purpose
//! (`fake_upstream`): manifests naming blobs stored elsewhere in this
//! registry, endless and trickling blob bodies, answers without optional
//! headers, endless tag lists.

mod common;
mod fake_upstream;
mod proxy_support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use registry_api::client::{Client, ClientError};
use registry_api::model::admin::{MirrorSyncEvent, MirrorSyncRequest};
use registry_api::proxy::ProxyConfig;
use registry_api::{router, Limits, Registry};
use registry_auth::Role;
use registry_core::{Digest, Namespace};
use registry_storage::{NamespacePolicy, Stores};

use common::PASSWORD;
use fake_upstream::*;
use proxy_support::{name, reference, secured_with, serve};

struct Down {
    url: String,
    registry: Registry,
}

impl Down {
    /// Proxy namespace `cache` in front of `upstream`; bob views it, alice
    /// edits `private`, admin is cluster-admin.
    async fn start(upstream: &str, tune: impl FnOnce(&mut ProxyConfig, &mut Limits)) -> Self {
        Self::start_on(upstream, Stores::in_memory(), tune).await
    }

    async fn start_on(
        upstream: &str,
        stores: Stores,
        tune: impl FnOnce(&mut ProxyConfig, &mut Limits),
    ) -> Self {
        let mut proxy = ProxyConfig::new(cache(), upstream.parse().unwrap());
        proxy.read_timeout = Duration::from_secs(2);
        let mut limits = Limits::default();
        tune(&mut proxy, &mut limits);
        let registry = secured_with(
            stores,
            &["bob", "alice", "admin"],
            &[
                ("cache", Role::Viewer, "bob"),
                ("private", Role::Editor, "alice"),
            ],
            &["admin"],
            vec![proxy],
            limits,
        )
        .await;
        registry
            .metadata()
            .create_namespace(&"private".parse().unwrap())
            .await
            .unwrap();
        let (url, stop) = serve(router(&registry)).await;
        std::mem::forget(stop);
        Down { url, registry }
    }

    fn client(&self, user: &str) -> Client {
        Client::builder(&self.url)
            .basic_auth(user, PASSWORD)
            .build()
            .unwrap()
    }
}

fn cache() -> Namespace {
    "cache".parse().unwrap()
}

fn status<T: std::fmt::Debug>(r: &Result<T, ClientError>) -> Option<u16> {
    match r {
        Err(e) => e.status().map(|s| s.as_u16()),
        Ok(v) => panic!("accepted: {v:?}"),
    }
}

/// An image manifest of `team/app` naming a config the fake serves and
/// `layer` (`size` bytes), served as `tag`.
fn image_naming(fake: &Fake, tag: &str, layer: &Digest, size: usize) -> Digest {
    let config = Bytes::from_static(br#"{"architecture":"amd64","os":"linux"}"#);
    let config_digest = fake.put_blob(config.clone());
    fake.put_manifest(
        tag,
        common::image_manifest(&config_digest, config.len(), layer, size, None),
    )
}

// Defect: an upstream manifest naming a digest stored in another
// namespace linked that blob into the proxy repository, which then served
// it (and a mirror sync counted it as stored) without the upstream ever
// serving it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_stored_elsewhere_is_served_through_the_proxy_only_once_the_upstream_served_it() {
    let (fake, url) = fake_upstream::start().await;
    let down = Down::start(&url, |_, _| {}).await;
    let secret = Bytes::from_static(b"alice's private key, stored in namespace private");
    let secret_digest = down
        .client("alice")
        .push_blob(&name("private/vault"), secret.clone())
        .await
        .unwrap();
    // The upstream names it without having it.
    image_naming(&fake, "v1", &secret_digest, secret.len());
    let bob = down.client("bob");
    let repo = name("cache/team/app");
    bob.get_manifest(&repo, &reference("v1")).await.unwrap();

    assert!(!down
        .registry
        .metadata()
        .blob_linked(&repo, &secret_digest)
        .await
        .unwrap());
    // Before: Some(len) and the secret's bytes.
    assert_eq!(bob.blob_size(&repo, &secret_digest).await.unwrap(), None);
    let pulled = bob.pull_blob_bytes(&repo, &secret_digest).await;
    assert_eq!(status(&pulled), Some(404), "{pulled:?}");
    let mut events = Vec::new();
    let last = down
        .client("admin")
        .mirror_sync(
            &cache(),
            &MirrorSyncRequest::new("team/app", None, false),
            |e| events.push(e.clone()),
        )
        .await
        .unwrap();
    // Before: the tag synced, the secret counted as stored.
    assert!(
        matches!(
            last,
            MirrorSyncEvent::Finished {
                tags_failed: 1,
                blobs_cached: 0,
                ..
            }
        ),
        "{events:?}"
    );
    // The config only: the upstream has no such layer.
    assert_eq!(fake.blob_gets.load(Ordering::SeqCst), 1);

    // Once the upstream serves the bytes: fetched (verified), then served.
    fake.put_blob(secret.clone());
    assert_eq!(
        bob.pull_blob_bytes(&repo, &secret_digest).await.unwrap(),
        secret
    );
    assert_eq!(fake.blob_gets.load(Ordering::SeqCst), 2);
    assert_eq!(
        bob.pull_blob_bytes(&repo, &secret_digest).await.unwrap(),
        secret
    );
    assert_eq!(
        fake.blob_gets.load(Ordering::SeqCst),
        2,
        "then from the store"
    );
}

// Defect: an upstream announcing 10^13 bytes with an endless body filled
// the disk, past the namespace's quota, after the client left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_upstream_blob_is_refused_by_the_quota_before_it_is_read() {
    let (fake, url) = fake_upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let stores = Stores::data_dir(dir.path(), registry_storage::filesystem::Durability::None)
        .await
        .unwrap();
    let down = Down::start_on(&url, stores, |_, _| {}).await;
    let mut policy = NamespacePolicy::default();
    policy.quota_bytes = Some(10 << 20);
    let ns = cache();
    let _ = down.registry.metadata().create_namespace(&ns).await;
    down.registry
        .metadata()
        .set_namespace_policy(&ns, &policy)
        .await
        .unwrap();
    let layer = Digest::sha256_of(b"never served");
    image_naming(&fake, "v1", &layer, 1 << 30);
    fake.blob_mode.store(BLOBS_ENDLESS, Ordering::SeqCst);
    let bob = down.client("bob");
    let repo = name("cache/team/app");
    bob.get_manifest(&repo, &reference("v1")).await.unwrap();
    let started = Instant::now();
    let pulled = bob.pull_blob_bytes(&repo, &layer).await;
    // Before: the body was streamed into the store until the disk filled.
    assert!(status(&pulled).is_some_and(|s| s >= 400), "{pulled:?}");
    assert!(format!("{pulled:?}").contains("quota"), "{pulled:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_stopped(&fake).await;
    assert!(down.registry.blobs().stat(&layer).await.unwrap().is_none());
    assert_eq!(files_under(dir.path(), "blob"), 0, "nothing staged is left");
}

// Defect: without a quota nothing bounded a proxied blob's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_larger_than_the_proxy_fetches_is_refused_before_it_is_read() {
    let (fake, url) = fake_upstream::start().await;
    let down = Down::start(&url, |proxy, _| proxy.max_blob_bytes = 1 << 20).await;
    let layer = Digest::sha256_of(b"never served");
    image_naming(&fake, "v1", &layer, 1 << 30);
    fake.blob_mode.store(BLOBS_ENDLESS, Ordering::SeqCst);
    let bob = down.client("bob");
    let repo = name("cache/team/app");
    bob.get_manifest(&repo, &reference("v1")).await.unwrap();
    let pulled = bob.pull_blob_bytes(&repo, &layer).await;
    assert_eq!(status(&pulled), Some(503), "{pulled:?}");
    assert!(
        format!("{pulled:?}").contains("more than the"),
        "{pulled:?}"
    );
    assert_stopped(&fake).await;
}

/// The fake's endless body was dropped (its connection closed) after at
/// most what socket buffers hold.
async fn assert_stopped(fake: &Fake) {
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.streaming.load(Ordering::SeqCst),
        0,
        "connection closed"
    );
    let sent = fake.streamed.load(Ordering::SeqCst);
    assert!(sent < 64 << 20, "{sent}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.streamed.load(Ordering::SeqCst), sent);
}

/// Regular files under `dir` whose path contains `part`.
fn files_under(dir: &std::path::Path, part: &str) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.to_string_lossy().contains(part) {
                n += 1;
            }
        }
    }
    n
}

// Defect: an upstream sending a byte every so often (never silent for
// `read_timeout`) held the fetch, and every request waiting for it, for
// as long as it liked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trickling_upstream_is_cut_and_its_waiters_told() {
    let (fake, url) = fake_upstream::start().await;
    let down = Down::start(&url, |proxy, _| {
        proxy.read_timeout = Duration::from_secs(1);
        proxy.min_fetch_rate = 1024;
    })
    .await;
    let layer = Bytes::from(vec![7u8; 4096]);
    let layer_digest = fake.put_blob(layer.clone());
    image_naming(&fake, "v1", &layer_digest, layer.len());
    fake.blob_mode.store(BLOBS_TRICKLE, Ordering::SeqCst);
    let repo = name("cache/team/app");
    down.client("bob")
        .get_manifest(&repo, &reference("v1"))
        .await
        .unwrap();
    let started = Instant::now();
    let pulls: Vec<_> = (0..3)
        .map(|_| {
            let bob = down.client("bob");
            let repo = repo.clone();
            let digest = layer_digest.clone();
            tokio::spawn(async move { bob.pull_blob_bytes(&repo, &digest).await })
        })
        .collect();
    for pull in pulls {
        let pulled = pull.await.unwrap();
        // Before: ~7 minutes of trickle (4096 bytes at 10 a second).
        assert!(pulled.is_err(), "{pulled:?}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(fake.blob_gets.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(fake.streaming.load(Ordering::SeqCst), 0);
    assert!(down
        .registry
        .blobs()
        .stat(&layer_digest)
        .await
        .unwrap()
        .is_none());
}

/// A sync of every tag matching a glob nothing matches: what listing the
/// upstream's tags costs, and the events.
async fn sync_nothing(down: &Down) -> (Result<MirrorSyncEvent, ClientError>, Vec<MirrorSyncEvent>) {
    let request = MirrorSyncRequest::new("team/app", Some("none-*".into()), false);
    let mut events = Vec::new();
    let admin = down.client("admin");
    let ns = cache();
    let sync = admin.mirror_sync(&ns, &request, |e| events.push(e.clone()));
    let last = tokio::time::timeout(Duration::from_secs(60), sync)
        .await
        .expect("the sync ends");
    (last, events)
}

// Defect: a mirror sync paged through an endless tag list for ever,
// memory growing; the cap on tags applied only after the listing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_tag_list_is_read_to_the_cap_and_the_cut_is_reported() {
    let (fake, url) = fake_upstream::start().await;
    let down = Down::start(&url, |_, _| {}).await;
    fake.tag_mode.store(TAGS_ENDLESS, Ordering::SeqCst);
    let (last, events) = sync_nothing(&down).await;
    assert!(
        matches!(last, Ok(MirrorSyncEvent::Finished { tags_failed: 0, .. })),
        "{last:?}"
    );
    // 10 001 tags (one past the cap says there are more), 10 a page.
    let max = registry_api::proxy::MAX_SYNC_TAGS;
    assert_eq!(
        fake.tag_pages.load(Ordering::SeqCst),
        (max + 1).div_ceil(10)
    );
    let notice = events.iter().find_map(|e| match e {
        MirrorSyncEvent::Tag(t) if t.tag.is_none() => t.error.clone(),
        _ => None,
    });
    assert!(
        notice
            .as_deref()
            .is_some_and(|n| n.contains("more than 10000 tags")),
        "{events:?}"
    );
}

// Defect: pages without tags whose `Link` moves on were followed for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_list_of_empty_pages_fails_the_sync() {
    let (fake, url) = fake_upstream::start().await;
    let down = Down::start(&url, |_, _| {}).await;
    fake.tag_mode.store(TAGS_EMPTY_PAGES, Ordering::SeqCst);
    let (last, events) = sync_nothing(&down).await;
    match last {
        Ok(MirrorSyncEvent::Failed { message }) => {
            assert!(message.contains("pages holding no tag"), "{message}")
        }
        other => panic!("{other:?} {events:?}"),
    }
    assert!(fake.tag_pages.load(Ordering::SeqCst) <= 5);
}

// Defect: a blob HEAD on a miss answered Content-Length: 0 when the
// upstream's HEAD had no length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blob_head_without_a_length_upstream_still_tells_the_right_size() {
    let (fake, url) = fake_upstream::start().await;
    let down = Down::start(&url, |_, _| {}).await;
    let layer = Bytes::from(vec![3u8; 12_345]);
    let layer_digest = fake.put_blob(layer.clone());
    image_naming(&fake, "v1", &layer_digest, layer.len());
    fake.no_head_length.store(true, Ordering::SeqCst);
    let repo = name("cache/team/app");
    let response = reqwest::Client::new()
        .head(format!("{}/v2/{repo}/blobs/{layer_digest}", down.url))
        .basic_auth("bob", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // Before: 0.
    assert_eq!(
        response.headers()["content-length"].to_str().unwrap(),
        "12345"
    );
    assert_eq!(fake.blob_heads.load(Ordering::SeqCst), 1);
    assert_eq!(fake.blob_ranges.load(Ordering::SeqCst), 1);
    assert_eq!(fake.blob_gets.load(Ordering::SeqCst), 0);
}
