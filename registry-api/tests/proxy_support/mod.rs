//! The proxy tests' harness: an upstream registry (a second in-process
//! instance with access control on) behind a layer that counts its
//! requests and can misbehave, and the downstream proxy registry.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use registry_api::client::Client;
use registry_api::proxy::ProxyConfig;
use registry_api::{router, Limits, Registry};
use registry_auth::{ClusterRole, Role};
use registry_core::{media_type, Digest, Reference, RepositoryName};
use registry_storage::Stores;

use crate::common::{self, PASSWORD};

pub const NORMAL: u8 = 0;
pub const TOO_MANY: u8 = 1;
pub const LYING: u8 = 2;
pub const SLOW_BLOBS: u8 = 3;
pub const STALLING: u8 = 4;
pub const NO_HEAD_DIGEST: u8 = 5;

/// What the upstream's front layer counts and how it behaves.
#[derive(Default)]
pub struct Front {
    pub mode: AtomicU8,
    pub blob_gets: AtomicUsize,
    pub manifest_gets: AtomicUsize,
    pub manifest_heads: AtomicUsize,
}

pub async fn front(
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
    if mode == NO_HEAD_DIGEST && method == Method::HEAD && path.contains("/manifests/") {
        // The header is optional: some registries leave it out.
        let mut response = response;
        response.headers_mut().remove("docker-content-digest");
        return response;
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
pub async fn secured(
    stores: Stores,
    users: &[&str],
    roles: &[(&str, Role, &str)],
    admins: &[&str],
    proxies: Vec<ProxyConfig>,
) -> Registry {
    secured_with(stores, users, roles, admins, proxies, Limits::default()).await
}

/// [`secured`] with `limits`.
pub async fn secured_with(
    stores: Stores,
    users: &[&str],
    roles: &[(&str, Role, &str)],
    admins: &[&str],
    proxies: Vec<ProxyConfig>,
    limits: Limits,
) -> Registry {
    let cluster: Vec<_> = admins
        .iter()
        .map(|subject| (ClusterRole::ClusterAdmin, *subject))
        .collect();
    let (config, _store) = common::auth_config(users, roles, &cluster).await;
    let mut builder = Registry::builder(stores).auth(config).limits(limits);
    for proxy in proxies {
        builder = builder.proxy(proxy);
    }
    builder.build().await.unwrap()
}

/// Serves `app` until the sender is used or dropped; the URL.
pub async fn serve(app: axum::Router) -> (String, tokio::sync::oneshot::Sender<()>) {
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

pub struct Upstream {
    pub url: String,
    pub front: Arc<Front>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Upstream {
    /// The upstream: `team` edited by `pusher`, read by `mirror`.
    pub async fn start() -> Self {
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

    pub fn pusher(&self) -> Client {
        Client::builder(&self.url)
            .basic_auth("pusher", PASSWORD)
            .build()
            .unwrap()
    }

    pub fn set(&self, mode: u8) {
        self.front.mode.store(mode, Ordering::SeqCst);
    }

    /// Stops the upstream: its port refuses connections from now on.
    pub async fn stop(&mut self) {
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
    pub async fn push_image(&self, tag: &str, layer: Bytes) -> (Digest, Digest) {
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

pub fn name(s: &str) -> RepositoryName {
    s.parse().unwrap()
}

pub fn reference(tag: &str) -> Reference {
    Reference::Tag(tag.parse().unwrap())
}

pub struct Downstream {
    pub url: String,
    pub registry: Registry,
}

impl Downstream {
    /// The proxy: namespace `cache` stands for the upstream (as `mirror`),
    /// bob views it, carol has no role, admin is cluster-admin.
    pub async fn start(upstream: &str, tag_ttl: Duration) -> Self {
        Self::start_with(upstream, tag_ttl, Limits::default()).await
    }

    /// [`Downstream::start`] with `limits`.
    pub async fn start_with(upstream: &str, tag_ttl: Duration, limits: Limits) -> Self {
        Self::start_on(upstream, tag_ttl, limits, Stores::in_memory()).await
    }

    /// [`Downstream::start_with`] over `stores`: a second one over the same
    /// stores is the same registry after a restart, or another replica.
    pub async fn start_on(
        upstream: &str,
        tag_ttl: Duration,
        limits: Limits,
        stores: Stores,
    ) -> Self {
        let mut proxy = ProxyConfig::new("cache".parse().unwrap(), upstream.parse().unwrap());
        proxy.username = Some("mirror".into());
        proxy.password = Some(PASSWORD.into());
        proxy.tag_ttl = tag_ttl;
        proxy.connect_timeout = Duration::from_secs(2);
        proxy.read_timeout = Duration::from_secs(2);
        proxy.hosts.push("upstream.example".into());
        let registry = secured_with(
            stores,
            &["bob", "carol", "admin"],
            &[("cache", Role::Viewer, "bob")],
            &["admin"],
            vec![proxy],
            limits,
        )
        .await;
        let (url, stop) = serve(router(&registry)).await;
        // Served for the rest of the test.
        std::mem::forget(stop);
        Downstream { url, registry }
    }

    pub fn client(&self, user: &str) -> Client {
        Client::builder(&self.url)
            .basic_auth(user, PASSWORD)
            .build()
            .unwrap()
    }

    /// A plain GET as `user` (Basic credentials).
    pub async fn get(&self, user: &str, path: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .basic_auth(user, Some(PASSWORD))
            .header("accept", media_type::OCI_MANIFEST)
            .send()
            .await
            .unwrap()
    }

    pub fn counter(&self, result: &str) -> u64 {
        self.registry.metrics().proxy.get(result)
    }
}

pub fn layer_of(len: usize, seed: u8) -> Bytes {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect::<Vec<u8>>()
        .into()
}

impl Upstream {
    /// Pushes an OCI index over `children` (image manifests of
    /// `team/app`, each `(digest, size)`) as `team/app:tag`; its digest.
    pub async fn push_index(&self, tag: &str, children: &[(Digest, usize)]) -> Digest {
        let manifests: Vec<_> = children
            .iter()
            .zip(["amd64", "arm64", "s390x", "ppc64le"].iter().cycle())
            .map(|((digest, size), arch)| {
                serde_json::json!({"mediaType": media_type::OCI_MANIFEST, "digest": digest,
                    "size": size, "platform": {"architecture": arch, "os": "linux"}})
            })
            .collect();
        let body = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": manifests,
        }))
        .unwrap();
        self.pusher()
            .put_manifest(
                &name("team/app"),
                &reference(tag),
                media_type::OCI_INDEX,
                Bytes::from(body),
            )
            .await
            .unwrap()
    }
}
