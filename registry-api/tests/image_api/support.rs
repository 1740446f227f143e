//! What the tests share: requests as a user, pushing images and manifests, a world with roles.

use axum::http::{Method, StatusCode};
use registry_api::Registry;
use registry_auth::{ClusterRole, Role};
use registry_core::Digest;
use serde_json::json;

use crate::common::{self, with_access_control, Client, Reply, PASSWORD};

pub(crate) const API: &str = "/apis/image/v1";

pub(crate) fn basic(user: &str) -> String {
    common::basic(user, PASSWORD)
}

pub(crate) async fn get_as(client: &Client, auth: Option<&str>, uri: &str) -> Reply {
    let mut headers = vec![("host", "registry.test:5000")];
    if let Some(a) = auth {
        headers.push(("authorization", a));
    }
    client.bare(Method::GET, uri, &headers).await
}

/// PUTs a manifest by `reference` as `auth` (or anonymously).
pub(crate) async fn put_manifest(
    client: &Client,
    auth: Option<&str>,
    repo: &str,
    reference: &str,
    content_type: &str,
    bytes: &[u8],
) -> Digest {
    let mut headers = vec![("content-type", content_type)];
    if let Some(a) = auth {
        headers.push(("authorization", a));
    }
    let r = client
        .call(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{reference}"),
            &headers,
            bytes.to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    Digest::sha256_of(bytes)
}

/// An OCI image with a full config; returns the manifest bytes and digest.
pub(crate) async fn push_platform_image(
    client: &Client,
    repo: &str,
    arch: &str,
) -> (Vec<u8>, Digest) {
    let config = json!({
        "architecture": arch, "os": "linux", "variant": (arch == "arm64").then_some("v8"),
        "created": "2024-05-01T10:00:00Z", "author": "builder@example",
        "config": {"Labels": {"org.opencontainers.image.title": "app"}},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [{"created_by": "COPY app /app"}, {"created_by": "CMD [\"/app\"]", "empty_layer": true}],
    })
    .to_string();
    let config_digest = client.push_blob(repo, config.as_bytes()).await;
    let layer = format!("layer for {arch}");
    let layer_digest = client.push_blob(repo, layer.as_bytes()).await;
    let manifest = common::image_manifest(
        &config_digest,
        config.len(),
        &layer_digest,
        layer.len(),
        None,
    );
    let digest = Digest::sha256_of(&manifest);
    (manifest, digest)
}

pub(crate) struct World {
    /// No access control: seeds data (same stores as `client`).
    pub(crate) open: Client,
    /// Access control on.
    pub(crate) client: Client,
}

/// Users: root (cluster-admin), viewer (registry-viewer in `team`), nobody
/// (no bindings). `pub` is public (anonymous viewer); `secret` is bound to
/// nobody but root.
pub(crate) async fn world() -> World {
    let open = Registry::in_memory();
    let roles = [
        ("team", Role::Viewer, "viewer"),
        ("pub", Role::Viewer, "system:anonymous"),
    ];
    let cluster = [(ClusterRole::ClusterAdmin, "root")];
    let users = ["root", "viewer", "nobody"];
    let (registry, _) = with_access_control(open.clone(), &users, &roles, &cluster).await;
    World {
        open: Client::with(open),
        client: Client::with(registry),
    }
}
