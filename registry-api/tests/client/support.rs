//! What the tests share: serving a router on loopback, the secured registry, pushing an image.

use bytes::Bytes;
use registry_api::client::Client;
use registry_api::{router, Registry};
use registry_auth::{ClusterRole, Role};
use registry_core::{media_type, Digest, Reference, RepositoryName};

use crate::common::{image_manifest, with_access_control, PASSWORD};

/// Serves `app` on 127.0.0.1; its `http://` URL.
pub(crate) async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

pub(crate) fn repo(name: &str) -> RepositoryName {
    name.parse().unwrap()
}

pub(crate) fn tag(name: &str) -> Reference {
    Reference::Tag(name.parse().unwrap())
}

/// The registry with alice (editor of `team`), bob (viewer of `team`),
/// carol (no role) and admin (cluster-admin); its URL.
pub(crate) async fn secured() -> String {
    let (registry, _) = with_access_control(
        Registry::in_memory(),
        &["alice", "bob", "carol", "admin"],
        &[
            ("team", Role::Editor, "alice"),
            ("team", Role::Viewer, "bob"),
        ],
        &[(ClusterRole::ClusterAdmin, "admin")],
    )
    .await;
    let team = "team".parse().unwrap();
    registry.metadata().create_namespace(&team).await.unwrap();
    serve(router(&registry)).await
}

pub(crate) fn user(url: &str, name: &str) -> Client {
    Client::builder(url)
        .basic_auth(name, PASSWORD)
        .build()
        .unwrap()
}

/// Pushes a config and a layer (the layer streamed through an upload
/// session) and a manifest tagged `v`; the manifest's digest and bytes.
pub(crate) async fn push_image(
    client: &Client,
    repo: &RepositoryName,
    v: &str,
) -> (Digest, Vec<u8>) {
    let config = Bytes::from(format!(
        r#"{{"architecture":"amd64","os":"linux","v":"{v}"}}"#
    ));
    let config_digest = client.push_blob(repo, config.clone()).await.unwrap();
    // 3 MiB in 64 KiB chunks: a body that is never whole in memory.
    let chunk = Bytes::from(vec![v.as_bytes()[0]; 64 * 1024]);
    let chunks: Vec<Bytes> = std::iter::repeat_n(chunk, 48).collect();
    let mut digester = registry_core::Digester::new(registry_core::Algorithm::Sha256);
    chunks.iter().for_each(|c| digester.update(c));
    let layer_digest = digester.finish();
    let stream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    client
        .push_blob_stream(repo, &layer_digest, stream)
        .await
        .unwrap();
    assert_eq!(
        client.blob_size(repo, &layer_digest).await.unwrap(),
        Some(3 << 20)
    );
    let manifest = image_manifest(&config_digest, config.len(), &layer_digest, 3 << 20, None);
    let digest = client
        .put_manifest(
            repo,
            &tag(v),
            media_type::OCI_MANIFEST,
            manifest.clone().into(),
        )
        .await
        .unwrap();
    assert_eq!(digest, Digest::sha256_of(&manifest));
    (digest, manifest)
}
