//! Proxy namespaces against a real upstream: a second in-process instance
//! of this registry with access control on, served on a loopback port
//! behind a small layer that counts its requests and can be switched to
//! answer 429, serve wrong bytes, or be slow (`proxy_support`). The
//! downstream registry (access control on too) is served on its own port
//! and pulled from with the typed client and plain HTTP.

mod common;
mod proxy_support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use bytes::Bytes;
use registry_api::client::ClientError;
use registry_api::proxy::ProxyConfig;
use registry_api::Registry;
use registry_core::{media_type, Reference};
use registry_storage::Stores;

use proxy_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_is_fetched_and_stored_then_served_with_the_upstream_stopped() {
    let mut upstream = Upstream::start().await;
    let layer = layer_of(300_000, 1);
    let (manifest_digest, layer_digest) = upstream.push_image("v1", layer.clone()).await;
    let down = Downstream::start(&upstream.url, Duration::from_secs(300)).await;
    let bob = down.client("bob");
    let repo = name("cache/team/app");

    let pulled = bob.get_manifest(&repo, &reference("v1")).await.unwrap();
    assert_eq!(pulled.digest, manifest_digest);
    assert_eq!(
        bob.pull_blob_bytes(&repo, &layer_digest).await.unwrap(),
        layer
    );
    assert_eq!(upstream.front.manifest_gets.load(Ordering::SeqCst), 1);
    assert_eq!(upstream.front.blob_gets.load(Ordering::SeqCst), 1);
    assert!(down.counter("miss") >= 2);
    // Stored through the store calls a push uses: linked, tagged, listed.
    let registry = &down.registry;
    assert!(registry
        .blobs()
        .stat(&layer_digest)
        .await
        .unwrap()
        .is_some());
    assert!(registry
        .metadata()
        .blob_linked(&repo, &layer_digest)
        .await
        .unwrap());
    let streams = bob
        .all_image_streams(&"cache".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(streams.items[0].metadata.name, "team/app");
    let host = upstream.url.trim_start_matches("http://");
    assert_eq!(
        streams.items[0].status.upstream.as_deref(),
        Some(format!("{host}/team/app").as_str())
    );

    // The same pull again, and by digest: from the store, no upstream call.
    let again = bob.get_manifest(&repo, &reference("v1")).await.unwrap();
    assert_eq!(again.bytes, pulled.bytes);
    assert_eq!(upstream.front.manifest_gets.load(Ordering::SeqCst), 1);
    assert_eq!(upstream.front.manifest_heads.load(Ordering::SeqCst), 0);

    upstream.stop().await;
    let by_tag = bob.get_manifest(&repo, &reference("v1")).await.unwrap();
    assert_eq!(by_tag.digest, manifest_digest);
    let by_digest = bob
        .get_manifest(&repo, &Reference::Digest(manifest_digest.clone()))
        .await
        .unwrap();
    assert_eq!(by_digest.bytes, pulled.bytes);
    assert_eq!(
        bob.pull_blob_bytes(&repo, &layer_digest).await.unwrap(),
        layer
    );
    assert_eq!(
        bob.blob_size(&repo, &layer_digest).await.unwrap(),
        Some(300_000)
    );

    // Nothing cached and the upstream gone: a clear 503, soon.
    let started = Instant::now();
    let response = down.get("bob", "/v2/cache/team/app/manifests/v2").await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body = response.text().await.unwrap();
    assert!(body.contains("UNAVAILABLE"), "{body}");
    assert!(body.contains("upstream"), "{body}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(down.counter("error") >= 1);

    let metrics = down.registry.metrics().render(None);
    assert!(metrics.contains("registry_proxy_requests_total{result=\"hit\"}"));
}

/// An upstream whose manifest `HEAD` has no `Docker-Content-Digest`: a
/// moved tag is still seen after the TTL, through a `GET`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_tag_is_seen_when_the_upstream_head_has_no_digest() {
    let upstream = Upstream::start().await;
    upstream.front.mode.store(NO_HEAD_DIGEST, Ordering::SeqCst);
    let (first, _) = upstream.push_image("v1", layer_of(1000, 1)).await;
    let ttl = Duration::from_millis(300);
    let down = Downstream::start(&upstream.url, ttl).await;
    let bob = down.client("bob");
    let (repo, v1) = (name("cache/team/app"), reference("v1"));
    assert_eq!(bob.get_manifest(&repo, &v1).await.unwrap().digest, first);
    let (second, _) = upstream.push_image("v1", layer_of(1000, 2)).await;
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    // Before: the old digest for ever, with a stale warning.
    let pulled = bob.get_manifest(&repo, &v1).await.unwrap();
    assert_eq!(pulled.digest, second);
    assert!(upstream.front.manifest_heads.load(Ordering::SeqCst) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_tag_is_seen_after_its_ttl_and_not_before() {
    let upstream = Upstream::start().await;
    let (first, _) = upstream.push_image("v1", layer_of(1000, 1)).await;
    let ttl = Duration::from_millis(700);
    let down = Downstream::start(&upstream.url, ttl).await;
    let bob = down.client("bob");
    let repo = name("cache/team/app");
    assert_eq!(
        bob.get_manifest(&repo, &reference("v1"))
            .await
            .unwrap()
            .digest,
        first
    );

    let (second, _) = upstream.push_image("v1", layer_of(1000, 2)).await;
    assert_ne!(first, second);
    // Within the TTL: the cached tag, with no upstream request.
    assert_eq!(
        bob.get_manifest(&repo, &reference("v1"))
            .await
            .unwrap()
            .digest,
        first
    );
    assert_eq!(upstream.front.manifest_heads.load(Ordering::SeqCst), 0);

    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert_eq!(
        bob.get_manifest(&repo, &reference("v1"))
            .await
            .unwrap()
            .digest,
        second
    );
    assert_eq!(upstream.front.manifest_heads.load(Ordering::SeqCst), 1);
    assert_eq!(upstream.front.manifest_gets.load(Ordering::SeqCst), 2);

    // Revalidated unchanged after the TTL: a HEAD, no GET.
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    assert_eq!(
        bob.get_manifest(&repo, &reference("v1"))
            .await
            .unwrap()
            .digest,
        second
    );
    assert_eq!(upstream.front.manifest_heads.load(Ordering::SeqCst), 2);
    assert_eq!(upstream.front.manifest_gets.load(Ordering::SeqCst), 2);
    // Tag history records the move, by the proxy.
    let history = down
        .registry
        .metadata()
        .tag_history(&repo, &"v1".parse().unwrap(), None, 10)
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cached_tag_is_served_stale_when_the_upstream_answers_429_or_is_down() {
    let mut upstream = Upstream::start().await;
    let (digest, _) = upstream.push_image("v1", layer_of(1000, 1)).await;
    let ttl = Duration::from_millis(300);
    let down = Downstream::start(&upstream.url, ttl).await;
    let first = down.get("bob", "/v2/cache/team/app/manifests/v1").await;
    assert_eq!(first.status(), StatusCode::OK);
    assert!(first.headers().get("warning").is_none());

    upstream.set(TOO_MANY);
    tokio::time::sleep(ttl + Duration::from_millis(100)).await;
    let stale = down.get("bob", "/v2/cache/team/app/manifests/v1").await;
    assert_eq!(stale.status(), StatusCode::OK);
    assert_eq!(
        stale.headers()["warning"].to_str().unwrap(),
        "110 - \"Response is stale\""
    );
    assert_eq!(
        stale.headers()["docker-content-digest"].to_str().unwrap(),
        digest.as_str()
    );
    assert_eq!(down.counter("stale"), 1);
    // A miss while rate-limited: 503 naming the cause.
    let miss = down.get("bob", "/v2/cache/team/app/manifests/v9").await;
    assert_eq!(miss.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(miss.text().await.unwrap().contains("429"));

    upstream.set(NORMAL);
    upstream.stop().await;
    let stale = down.get("bob", "/v2/cache/team/app/manifests/v1").await;
    assert_eq!(stale.status(), StatusCode::OK);
    assert!(stale.headers().get("warning").is_some());
    assert_eq!(down.counter("stale"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_bytes_from_the_upstream_cut_the_client_and_are_never_stored() {
    let upstream = Upstream::start().await;
    let layer = layer_of(200_000, 7);
    let (_, layer_digest) = upstream.push_image("v1", layer.clone()).await;
    let down = Downstream::start(&upstream.url, Duration::from_secs(300)).await;
    upstream.set(LYING);
    let path = format!("/v2/cache/team/app/blobs/{layer_digest}");
    let response = down.get("bob", &path).await;
    assert_eq!(response.status(), StatusCode::OK);
    // The body never completes: the last bytes are withheld and the
    // connection cut.
    let read = response.bytes().await;
    assert!(read.is_err(), "the client got a whole body of wrong bytes");
    // Nothing stored; the fetch's entry is gone.
    assert!(down
        .registry
        .blobs()
        .stat(&layer_digest)
        .await
        .unwrap()
        .is_none());
    assert!(down.counter("error") >= 1);
    // The typed client sees it as a failure too.
    let bob = down.client("bob");
    let repo = name("cache/team/app");
    assert!(bob.pull_blob_bytes(&repo, &layer_digest).await.is_err());

    // The next request, with an honest upstream, fetches again.
    upstream.set(NORMAL);
    assert_eq!(
        bob.pull_blob_bytes(&repo, &layer_digest).await.unwrap(),
        layer
    );
    assert!(down
        .registry
        .blobs()
        .stat(&layer_digest)
        .await
        .unwrap()
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_pulls_of_an_uncached_blob_make_one_upstream_request() {
    let upstream = Upstream::start().await;
    let layer = layer_of(4 << 20, 3);
    let (_, layer_digest) = upstream.push_image("v1", layer.clone()).await;
    let down = Downstream::start(&upstream.url, Duration::from_secs(300)).await;
    // The upstream takes a while to answer, so that all twenty overlap.
    upstream.set(SLOW_BLOBS);
    let repo = name("cache/team/app");
    let mut pulls = Vec::new();
    for _ in 0..20 {
        let bob = down.client("bob");
        let repo = repo.clone();
        let digest = layer_digest.clone();
        pulls.push(tokio::spawn(async move {
            bob.pull_blob_bytes(&repo, &digest).await
        }));
    }
    for pull in pulls {
        let bytes = pull.await.unwrap().unwrap();
        assert_eq!(bytes.len(), layer.len());
        assert!(bytes == layer);
    }
    assert_eq!(upstream.front.blob_gets.load(Ordering::SeqCst), 1);
    assert_eq!(down.counter("miss"), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_refused_and_pulls_need_a_viewer_role() {
    let upstream = Upstream::start().await;
    let (_, layer_digest) = upstream.push_image("v1", layer_of(100, 1)).await;
    let down = Downstream::start(&upstream.url, Duration::from_secs(300)).await;
    let repo = name("cache/team/app");

    // Even a cluster-admin cannot push or delete there.
    let admin = down.client("admin");
    match admin.push_blob(&repo, Bytes::from_static(b"x")).await {
        Err(ClientError::Denied { code, message }) => {
            assert_eq!(code, "DENIED");
            assert!(message.contains("read-only proxy namespace"), "{message}");
        }
        other => panic!("push into a proxy namespace: {other:?}"),
    }
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let put = admin
        .put_manifest(
            &repo,
            &reference("v1"),
            media_type::OCI_MANIFEST,
            Bytes::from_static(manifest),
        )
        .await;
    assert!(matches!(put, Err(ClientError::Denied { .. })), "{put:?}");
    // Pulling through it works for the admin.
    let pulled = admin.get_manifest(&repo, &reference("v1")).await.unwrap();
    assert!(!pulled.bytes.is_empty());
    let deleted = admin.delete_manifest(&repo, &reference("v1")).await;
    assert!(
        matches!(deleted, Err(ClientError::Denied { .. })),
        "{deleted:?}"
    );

    // carol has no role in `cache`: refused, and the upstream is not asked.
    let before = upstream.front.blob_gets.load(Ordering::SeqCst);
    let carol = down.client("carol");
    let refused = carol.pull_blob_bytes(&repo, &layer_digest).await;
    assert!(
        matches!(
            refused,
            Err(ClientError::Denied { .. }) | Err(ClientError::Unauthorized { .. })
        ),
        "{refused:?}"
    );
    let anonymous = reqwest::get(format!("{}/v2/cache/team/app/manifests/v1", down.url))
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(upstream.front.blob_gets.load(Ordering::SeqCst), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_mirror_requests_are_served_by_the_namespace_of_their_host() {
    let upstream = Upstream::start().await;
    let (digest, layer_digest) = upstream.push_image("v1", layer_of(5000, 4)).await;
    let down = Downstream::start(&upstream.url, Duration::from_secs(300)).await;
    let host = upstream.url.trim_start_matches("http://").to_owned();

    // As containerd sends it: the name as in the image reference, the
    // registry host in `ns`.
    let by_own_host = down
        .get("bob", &format!("/v2/team/app/manifests/v1?ns={host}"))
        .await;
    assert_eq!(by_own_host.status(), StatusCode::OK);
    assert_eq!(
        by_own_host.headers()["docker-content-digest"]
            .to_str()
            .unwrap(),
        digest.as_str()
    );
    let blob = down
        .get(
            "bob",
            &format!("/v2/team/app/blobs/{layer_digest}?ns=upstream.example"),
        )
        .await;
    assert_eq!(blob.status(), StatusCode::OK);
    assert_eq!(blob.bytes().await.unwrap(), layer_of(5000, 4));

    let unknown = down
        .get("bob", "/v2/team/app/manifests/v1?ns=quay.io")
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let body = unknown.text().await.unwrap();
    assert!(
        body.contains("NAME_UNKNOWN") && body.contains("quay.io"),
        "{body}"
    );
    // The mirror's namespace still needs a role.
    let carol = down
        .get("carol", &format!("/v2/team/app/manifests/v1?ns={host}"))
        .await;
    assert_eq!(carol.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn unusable_proxy_settings_are_refused_at_build() {
    let upstream = |url: &str| url.parse().unwrap();
    let build = |configs: Vec<ProxyConfig>| async move {
        let mut builder = Registry::builder(Stores::in_memory());
        for c in configs {
            builder = builder.proxy(c);
        }
        builder.build().await.map(|_| ()).unwrap_err().to_string()
    };
    let ftp = ProxyConfig::new("hub".parse().unwrap(), upstream("ftp://example.com"));
    assert!(build(vec![ftp]).await.contains("http:// or https://"));
    let a = ProxyConfig::new("hub".parse().unwrap(), upstream("https://a.example"));
    let mut b = ProxyConfig::new("other".parse().unwrap(), upstream("https://b.example"));
    b.hosts.push("A.example".into());
    let message = build(vec![a.clone(), b]).await;
    assert!(
        message.contains("a.example") && message.contains("hub"),
        "{message}"
    );
    assert!(build(vec![a.clone(), a.clone()]).await.contains("twice"));
    let mut bad_ca = a.clone();
    bad_ca.ca_pem = Some(b"not a certificate".to_vec());
    assert!(build(vec![bad_ca]).await.contains("hub"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upstream_body_cuts_the_client_after_the_read_timeout_and_stores_nothing() {
    let upstream = Upstream::start().await;
    let (_, layer_digest) = upstream.push_image("v1", layer_of(100_000, 9)).await;
    // Downstream's read timeout is 2 s.
    let down = Downstream::start(&upstream.url, Duration::from_secs(300)).await;
    upstream.set(STALLING);
    let started = Instant::now();
    let response = down
        .get("bob", &format!("/v2/cache/team/app/blobs/{layer_digest}"))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.bytes().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(down
        .registry
        .blobs()
        .stat(&layer_digest)
        .await
        .unwrap()
        .is_none());
    upstream.set(NORMAL);
    let bob = down.client("bob");
    let repo = name("cache/team/app");
    assert_eq!(
        bob.pull_blob_bytes(&repo, &layer_digest).await.unwrap(),
        layer_of(100_000, 9)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_content_counts_against_the_namespace_quota() {
    let upstream = Upstream::start().await;
    let (_, layer) = upstream.push_image("v1", layer_of(100_000, 5)).await;
    let down =
        std::sync::Arc::new(Downstream::start(&upstream.url, Duration::from_secs(300)).await);
    let ns = "cache".parse().unwrap();
    let metadata = down.registry.metadata();
    let mut policy = metadata.namespace_policy(&ns).await.unwrap();
    policy.quota_bytes = Some(10_000);
    metadata.set_namespace_policy(&ns, &policy).await.unwrap();
    // The upstream takes a while to answer, so that all five share one
    // fetch: the first request streams it, the others wait for its end.
    upstream.set(SLOW_BLOBS);
    let mut pulls = Vec::new();
    for _ in 0..5 {
        let down = down.clone();
        let path = format!("/v2/cache/team/app/blobs/{layer}");
        pulls.push(tokio::spawn(async move {
            let response = down.get("bob", &path).await;
            let status = response.status();
            (status, response.text().await)
        }));
    }
    let (mut cut, mut refused) = (0, 0);
    for pull in pulls {
        match pull.await.unwrap() {
            // Refused at the link, after the bytes streamed: the client is cut.
            (StatusCode::OK, body) => {
                assert!(body.is_err(), "a complete body was served");
                cut += 1;
            }
            // The ones that waited get the refusal itself, not a 500.
            (StatusCode::FORBIDDEN, Ok(body)) => {
                assert!(body.contains("DENIED"), "{body}");
                assert!(body.contains("namespace cache is over its quota"), "{body}");
                refused += 1;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    // Refused before the body was read (its Content-Length passes what is
    // left of the quota): every puller gets the refusal itself. Before,
    // the leader's client was cut after the whole body had been stored.
    assert_eq!((cut, refused), (0, 5));
    assert_eq!(upstream.front.blob_gets.load(Ordering::SeqCst), 1);
    let repo = name("cache/team/app");
    assert!(!metadata.blob_linked(&repo, &layer).await.unwrap());
    assert!(down.counter("error") >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_slower_than_the_upstream_is_cut_and_the_fetch_goes_on_for_the_others() {
    let upstream = Upstream::start().await;
    // Far more than the socket buffers and the tee's channels hold.
    let layer = layer_of(32 << 20, 7);
    let (_, digest) = upstream.push_image("v1", layer.clone()).await;
    let mut limits = registry_api::Limits::default();
    limits.body_idle_timeout = Duration::from_secs(1);
    let down = Downstream::start_with(&upstream.url, Duration::from_secs(300), limits).await;
    let repo = name("cache/team/app");

    // The first puller (whose request runs the fetch) reads at 4 MB/s:
    // never idle for long (each of the proxy's chunks leaves within a
    // fraction of a second), but far slower than the upstream.
    let mut slow = down
        .get("bob", &format!("/v2/cache/team/app/blobs/{digest}"))
        .await;
    assert_eq!(slow.status(), StatusCode::OK);
    let hurry = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let trickle = tokio::spawn({
        let hurry = hurry.clone();
        async move {
            let mut read = 0;
            loop {
                let chunk_len = match slow.chunk().await {
                    Ok(Some(chunk)) => chunk.len(),
                    Ok(None) => return Ok(read),
                    Err(_) => return Err(read),
                };
                read += chunk_len;
                if !hurry.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_micros(chunk_len as u64 / 4)).await;
                }
            }
        }
    });

    // Another puller waits for that fetch and gets the blob from the store:
    // the fetch did not go at the slow client's pace (8 s and more; the
    // bound below only keeps a regression from hanging).
    let bob = down.client("bob");
    let pulled = tokio::time::timeout(Duration::from_secs(60), bob.pull_blob_bytes(&repo, &digest))
        .await
        .expect("the fetch went at the slow client's pace")
        .unwrap();
    assert_eq!(pulled, layer);
    assert_eq!(upstream.front.blob_gets.load(Ordering::SeqCst), 1);

    // The slow client was cut: its body ends short, with an error.
    hurry.store(true, Ordering::SeqCst);
    match trickle.await.unwrap() {
        Err(read) => assert!(read < layer.len(), "{read}"),
        Ok(read) => panic!("the slow client got a whole body of {read} bytes"),
    }
}
