//! Proxy namespaces against a real upstream: a second in-process instance
//! of this registry with access control on, served on a loopback port
//! behind a small layer that counts its requests and can be switched to
//! answer 429, serve wrong bytes, or be slow. The downstream registry
//! (access control on too) is served on its own port and pulled from with
//! the typed client and plain HTTP.

mod common;

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use registry_api::client::{Client, ClientError};
use registry_api::proxy::ProxyConfig;
use registry_api::{router, AuthConfig, Registry};
use registry_auth::{
    AuthStore, ClusterRole, ClusterRoleBinding, MemoryAuthStore, Password, PasswordHasher,
    PullSecretPolicy, Role, RoleBinding, SigningKey, Subject, User,
};
use registry_core::{media_type, Digest, Reference, RepositoryName};
use registry_storage::Stores;

use common::PASSWORD;

const NORMAL: u8 = 0;
const TOO_MANY: u8 = 1;
const LYING: u8 = 2;
const SLOW_BLOBS: u8 = 3;
const STALLING: u8 = 4;

/// What the upstream's front layer counts and how it behaves.
#[derive(Default)]
struct Front {
    mode: AtomicU8,
    blob_gets: AtomicUsize,
    manifest_gets: AtomicUsize,
    manifest_heads: AtomicUsize,
}

async fn front(
    axum::extract::State(front): axum::extract::State<Arc<Front>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let is_blob = path.contains("/blobs/sha256:") && method == Method::GET;
    let mode = front.mode.load(Ordering::SeqCst);
    if mode == TOO_MANY && path != "/v2/token" {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "60")],
            r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"pull rate limit"}]}"#,
        )
            .into_response();
    }
    if is_blob && mode == SLOW_BLOBS {
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let response = next.run(request).await;
    // Counted once answered: a 401 asking for a token is not a fetch.
    if response.status() != StatusCode::UNAUTHORIZED {
        let counter = match (is_blob, path.contains("/manifests/"), &method) {
            (true, _, _) => Some(&front.blob_gets),
            (false, true, &Method::GET) => Some(&front.manifest_gets),
            (false, true, &Method::HEAD) => Some(&front.manifest_heads),
            _ => None,
        };
        if let Some(counter) = counter {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    }
    if is_blob && mode == LYING && response.status() == StatusCode::OK {
        // Same length, other bytes: only the digest can tell.
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let wrong: Vec<u8> = bytes.iter().map(|b| b ^ 0xff).collect();
        return Response::from_parts(parts, Body::from(wrong));
    }
    if is_blob && mode == STALLING && response.status() == StatusCode::OK {
        // Half the body, then silence (the connection stays open).
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let half = bytes.slice(..bytes.len() / 2);
        let stream = futures::stream::once(async move { Ok::<_, std::io::Error>(half) })
            .chain(futures::stream::pending());
        return Response::from_parts(parts, Body::from_stream(stream));
    }
    response
}

/// An access-controlled registry over `stores` with `users` (password
/// [`PASSWORD`]), namespace `roles` and cluster `admins`, and `proxies`.
async fn secured(
    stores: Stores,
    users: &[&str],
    roles: &[(&str, Role, &str)],
    admins: &[&str],
    proxies: Vec<ProxyConfig>,
) -> Registry {
    let store = Arc::new(MemoryAuthStore::new());
    let hasher = PasswordHasher::insecure_fast();
    let hash = hasher.hash(&Password::new(PASSWORD)).unwrap();
    for name in users {
        let user = User {
            name: name.parse().unwrap(),
            password_hash: Some(hash.clone()),
            created: time::OffsetDateTime::now_utc(),
        };
        store.create_user(user).await.unwrap();
    }
    for (namespace, role, subject) in roles {
        let binding = RoleBinding {
            namespace: namespace.parse().unwrap(),
            role: *role,
            subject: subject.parse::<Subject>().unwrap(),
        };
        store.add_role_binding(binding).await.unwrap();
    }
    for subject in admins {
        let binding = ClusterRoleBinding {
            role: ClusterRole::ClusterAdmin,
            subject: subject.parse::<Subject>().unwrap(),
        };
        store.add_cluster_role_binding(binding).await.unwrap();
    }
    let mut config = AuthConfig::new(SigningKey::generate().unwrap())
        .with_store(store.clone() as Arc<dyn AuthStore>);
    config.hasher = hasher;
    config.service = "registry.test".into();
    config.pull_secrets = PullSecretPolicy::new(Vec::<String>::new());
    let mut builder = Registry::builder(stores).auth(config);
    for proxy in proxies {
        builder = builder.proxy(proxy);
    }
    builder.build().await.unwrap()
}

/// Serves `app` until the sender is used or dropped; the URL.
async fn serve(app: axum::Router) -> (String, tokio::sync::oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap()
    });
    (url, stop)
}

struct Upstream {
    url: String,
    front: Arc<Front>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Upstream {
    /// The upstream: `team` edited by `pusher`, read by `mirror`.
    async fn start() -> Self {
        let registry = secured(
            Stores::in_memory(),
            &["pusher", "mirror"],
            &[
                ("team", Role::Editor, "pusher"),
                ("team", Role::Viewer, "mirror"),
            ],
            &[],
            Vec::new(),
        )
        .await;
        registry
            .metadata()
            .create_namespace(&"team".parse().unwrap())
            .await
            .unwrap();
        let front = Arc::new(Front::default());
        let app = router(&registry).layer(axum::middleware::from_fn_with_state(
            front.clone(),
            self::front,
        ));
        let (url, stop) = serve(app).await;
        Upstream {
            url,
            front,
            stop: Some(stop),
        }
    }

    fn pusher(&self) -> Client {
        Client::builder(&self.url)
            .basic_auth("pusher", PASSWORD)
            .build()
            .unwrap()
    }

    fn set(&self, mode: u8) {
        self.front.mode.store(mode, Ordering::SeqCst);
    }

    /// Stops the upstream: its port refuses connections from now on.
    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        // Wait until the port refuses.
        for _ in 0..100 {
            if reqwest::get(format!("{}/v2/", self.url)).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("upstream still answers");
    }

    /// Pushes an image (config + one layer of `layer` bytes) as `team/app:tag`;
    /// the manifest digest and the layer's digest.
    async fn push_image(&self, tag: &str, layer: Bytes) -> (Digest, Digest) {
        let client = self.pusher();
        let repo = name("team/app");
        let config = Bytes::from(format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"tag":"{tag}"}}}}}}"#
        ));
        let config_digest = client.push_blob(&repo, config.clone()).await.unwrap();
        let layer_digest = client.push_blob(&repo, layer.clone()).await.unwrap();
        let manifest = common::image_manifest(
            &config_digest,
            config.len(),
            &layer_digest,
            layer.len(),
            None,
        );
        let digest = client
            .put_manifest(
                &repo,
                &reference(tag),
                media_type::OCI_MANIFEST,
                Bytes::from(manifest),
            )
            .await
            .unwrap();
        (digest, layer_digest)
    }
}

fn name(s: &str) -> RepositoryName {
    s.parse().unwrap()
}

fn reference(tag: &str) -> Reference {
    Reference::Tag(tag.parse().unwrap())
}

struct Downstream {
    url: String,
    registry: Registry,
}

impl Downstream {
    /// The proxy: namespace `cache` stands for the upstream (as `mirror`),
    /// bob views it, carol has no role, admin is cluster-admin.
    async fn start(upstream: &str, tag_ttl: Duration) -> Self {
        let mut proxy = ProxyConfig::new("cache".parse().unwrap(), upstream.parse().unwrap());
        proxy.username = Some("mirror".into());
        proxy.password = Some(PASSWORD.into());
        proxy.tag_ttl = tag_ttl;
        proxy.connect_timeout = Duration::from_secs(2);
        proxy.read_timeout = Duration::from_secs(2);
        proxy.hosts.push("upstream.example".into());
        let registry = secured(
            Stores::in_memory(),
            &["bob", "carol", "admin"],
            &[("cache", Role::Viewer, "bob")],
            &["admin"],
            vec![proxy],
        )
        .await;
        let (url, stop) = serve(router(&registry)).await;
        // Served for the rest of the test.
        std::mem::forget(stop);
        Downstream { url, registry }
    }

    fn client(&self, user: &str) -> Client {
        Client::builder(&self.url)
            .basic_auth(user, PASSWORD)
            .build()
            .unwrap()
    }

    /// A plain GET as `user` (Basic credentials).
    async fn get(&self, user: &str, path: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .basic_auth(user, Some(PASSWORD))
            .header("accept", media_type::OCI_MANIFEST)
            .send()
            .await
            .unwrap()
    }

    fn counter(&self, result: &str) -> u64 {
        self.registry.metrics().proxy.get(result)
    }
}

fn layer_of(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

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
