//! End-to-end test of the registry with a client nobody here wrote.
//!
//! Each test starts the real HTTP service in-process on an ephemeral loopback
//! port, over the embedded default stores (`Registry::open_data_dir`:
//! filesystem blobs + SQLite metadata in a temp dir), and drives it with the
//! `oci-client` crate over plain HTTP:
//!
//! - push / pull of an image with a multi-MiB layer (chunked `PATCH` uploads),
//!   manifest digests, ranged blob reads, tag listing and the catalog;
//! - a streamed chunked blob upload and cross-repository mounts;
//! - an OCI image index over two platform images;
//! - artifacts with a `subject` and the referrers API.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use bytes::Bytes;
use futures::TryStreamExt;
use oci_client::client::{
    linux_amd64_resolver, BlobResponse, ClientConfig, ClientProtocol, Config, ImageLayer,
};
use oci_client::config::{Architecture, Os};
use oci_client::manifest::{
    ImageIndexEntry, OciDescriptor, OciImageIndex, OciImageManifest, OciManifest, Platform,
    IMAGE_CONFIG_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use registry::api::{router, Registry};
use registry::storage::filesystem::Durability;
use sha2::{Digest as _, Sha256};

const MIB: usize = 1024 * 1024;
/// oci-client pushes in chunks of at most 4 MiB: this size takes two `PATCH`es
/// and leaves an odd-sized tail.
const BIG_LAYER_SIZE: usize = 5 * MIB + 4321;
const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
const SBOM_TYPE: &str = "application/vnd.example.sbom.v1+json";
const SIGNATURE_TYPE: &str = "application/vnd.example.signature.v1";

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// One request the server answered: method, path, status.
type Logged = (Method, String, StatusCode);

/// The registry served on `127.0.0.1:<ephemeral>` over a temp data dir, with
/// a log of the requests it answered (to check what the client really sent:
/// oci-client's `push_blob` silently falls back to a monolithic upload when
/// chunked uploads misbehave).
struct TestServer {
    host: String,
    log: Arc<Mutex<Vec<Logged>>>,
    task: tokio::task::JoinHandle<()>,
    // Removed after `drop` has asked the server task to stop (the abort is
    // asynchronous; on Unix files still open survive their unlinking).
    _dir: tempfile::TempDir,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    async fn start() -> Self {
        let dir = tempfile::tempdir().expect("creating the temp data dir");
        let registry = Registry::open_data_dir(dir.path(), Durability::None)
            .await
            .expect("Registry::open_data_dir over a fresh temp dir");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding an ephemeral loopback port");
        let addr = listener.local_addr().expect("listener address");
        let log: Arc<Mutex<Vec<Logged>>> = Arc::default();
        let recorder = log.clone();
        let app = router(registry).layer(axum::middleware::from_fn(
            move |request: Request, next: Next| {
                let recorder = recorder.clone();
                async move {
                    let method = request.method().clone();
                    let path = request.uri().path().to_owned();
                    let response = next.run(request).await;
                    let entry = (method, path, response.status());
                    recorder.lock().expect("request log").push(entry);
                    response
                }
            },
        ));
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("axum::serve failed");
        });
        TestServer {
            host: addr.to_string(),
            log,
            task,
            _dir: dir,
        }
    }

    /// The requests answered since the last call.
    fn take_log(&self) -> Vec<Logged> {
        std::mem::take(&mut *self.log.lock().expect("request log"))
    }

    fn tagged(&self, repo: &str, tag: &str) -> Reference {
        Reference::with_tag(self.host.clone(), repo.to_owned(), tag.to_owned())
    }

    fn by_digest(&self, repo: &str, digest: &str) -> Reference {
        Reference::with_digest(self.host.clone(), repo.to_owned(), digest.to_owned())
    }
}

/// A plain-HTTP anonymous client that resolves indexes to linux/amd64 (not
/// to the host's platform, so the test is the same everywhere).
fn client() -> Client {
    // oci-client is built without a bundled TLS crypto provider (see the
    // root Cargo.toml); reqwest still builds a TLS config, so install one.
    // `Err` means another test already did.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        platform_resolver: Some(Box::new(linux_amd64_resolver)),
        read_timeout: Some(Duration::from_secs(30)),
        connect_timeout: Some(Duration::from_secs(5)),
        ..Default::default()
    })
}

const AUTH: RegistryAuth = RegistryAuth::Anonymous;

fn sha256(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Deterministic pseudo-random bytes (xorshift64*), incompressible enough to
/// look like a real layer.
fn generated_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The digest at the end of a manifest URL returned by a push
/// (`…/v2/<name>/manifests/<digest>`).
fn digest_of_manifest_url(url: &str) -> String {
    let (_, digest) = url
        .rsplit_once("/manifests/")
        .unwrap_or_else(|| panic!("manifest URL {url:?} has no /manifests/ segment"));
    assert!(
        digest.starts_with("sha256:"),
        "manifest URL {url:?} does not end in a digest (Location should name the digest)"
    );
    digest.to_owned()
}

/// The `PATCH`es in a request log, after checking that none of the logged
/// requests failed.
fn patches(log: &[Logged]) -> usize {
    let failed: Vec<&Logged> = log.iter().filter(|(_, _, s)| !s.is_success()).collect();
    assert!(failed.is_empty(), "requests failed: {failed:?}");
    log.iter().filter(|(m, _, _)| *m == Method::PATCH).count()
}

async fn read_blob(client: &Client, reference: &Reference, digest: &str) -> Vec<u8> {
    let mut out = Vec::new();
    client
        .pull_blob(reference, digest, &mut out)
        .await
        .unwrap_or_else(|e| panic!("pulling blob {digest} from {reference}: {e:?}"));
    out
}

fn image_config(arch: &str, label: &str) -> Config {
    let json = format!(
        r#"{{"architecture":"{arch}","os":"linux","config":{{"Labels":{{"test":"{label}"}}}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
    );
    Config::oci_v1(json.into_bytes(), None)
}

/// What a push produced.
struct Pushed {
    digest: String,
    layers: Vec<ImageLayer>,
    config: Bytes,
}

async fn push_image(
    client: &Client,
    reference: &Reference,
    arch: &str,
    layers: Vec<ImageLayer>,
) -> Pushed {
    let config = image_config(arch, &reference.to_string());
    let config_bytes = config.data.clone();
    let response = client
        .push(reference, &layers, config, &AUTH, None)
        .await
        .unwrap_or_else(|e| panic!("push of {reference}: {e:?}"));
    Pushed {
        digest: digest_of_manifest_url(&response.manifest_url),
        layers,
        config: config_bytes,
    }
}

// ---------------------------------------------------------------------------
// 1. push, pull, digests, ranged reads, tags, catalog
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_pull_tags_and_catalog() {
    let server = TestServer::start().await;
    let client = client();
    let v1 = server.tagged("ns/app", "v1");

    let small = ImageLayer::oci_v1(b"small layer: hello registry\n".to_vec(), None);
    let big = ImageLayer::oci_v1(generated_bytes(1, BIG_LAYER_SIZE), None);
    server.take_log();
    let pushed = push_image(&client, &v1, "amd64", vec![small, big]).await;
    // Config and small layer: one PATCH each; the big layer: 4 MiB + the rest.
    assert_eq!(
        patches(&server.take_log()),
        4,
        "push should upload in chunked PATCHes (no monolithic fallback)"
    );

    // Manifest digest: the Location of the push, the HEAD digest and the
    // digest of the raw bytes served all agree.
    let head_digest = client
        .fetch_manifest_digest(&v1, &AUTH)
        .await
        .expect("HEAD of ns/app:v1 (fetch_manifest_digest)");
    assert_eq!(
        head_digest, pushed.digest,
        "HEAD Docker-Content-Digest differs from the push's Location"
    );
    let (raw, raw_digest) = client
        .pull_manifest_raw(&v1, &AUTH, &[OCI_IMAGE_MEDIA_TYPE])
        .await
        .expect("GET of ns/app:v1 manifest");
    assert_eq!(
        raw_digest, pushed.digest,
        "GET digest differs from the push's"
    );
    assert_eq!(
        sha256(&raw),
        pushed.digest,
        "served manifest bytes do not hash to their digest"
    );
    // The same manifest by digest.
    let (raw_by_digest, _) = client
        .pull_manifest_raw(
            &server.by_digest("ns/app", &pushed.digest),
            &AUTH,
            &[OCI_IMAGE_MEDIA_TYPE],
        )
        .await
        .expect("GET of the manifest by digest");
    assert_eq!(raw_by_digest, raw, "manifest by digest differs from by tag");

    // Full pull: config and both layers byte for byte.
    let image = client
        .pull(&v1, &AUTH, vec![IMAGE_LAYER_MEDIA_TYPE])
        .await
        .expect("pull of ns/app:v1");
    assert_eq!(
        image.digest.as_deref(),
        Some(pushed.digest.as_str()),
        "pulled digest"
    );
    assert_eq!(image.config.data, pushed.config, "pulled config bytes");
    assert_eq!(image.layers.len(), 2, "pulled layer count");
    // oci-client downloads layers concurrently and returns them in completion
    // order, so match them to what was sent by digest.
    for (i, sent) in pushed.layers.iter().enumerate() {
        let digest = sent.sha256_digest();
        let got = image
            .layers
            .iter()
            .find(|l| l.sha256_digest() == digest)
            .unwrap_or_else(|| panic!("layer {i} ({digest}) missing from the pull"));
        assert_eq!(got.data.len(), sent.data.len(), "layer {i} length");
        assert_eq!(got.media_type, sent.media_type, "layer {i} media type");
    }
    let manifest_layers: Vec<String> = image
        .manifest
        .as_ref()
        .expect("pulled manifest")
        .layers
        .iter()
        .map(|d| d.digest.clone())
        .collect();
    let sent_layers: Vec<String> = pushed.layers.iter().map(|l| l.sha256_digest()).collect();
    assert_eq!(manifest_layers, sent_layers, "layer order in the manifest");

    // Blob existence, and layer authorization: another repository cannot see it.
    let big_digest = pushed.layers[1].sha256_digest();
    assert!(
        client
            .blob_exists(&v1, &big_digest)
            .await
            .expect("HEAD blob"),
        "big layer missing in ns/app"
    );
    let missing = sha256(b"never pushed");
    assert!(
        !client.blob_exists(&v1, &missing).await.expect("HEAD blob"),
        "unknown blob reported present"
    );

    // Ranged read in the middle of the big layer.
    let descriptor = &image.manifest.as_ref().expect("pulled manifest").layers[1];
    let (offset, length) = (3 * MIB as u64 + 17, 70_000u64);
    match client
        .pull_blob_stream_partial(&v1, descriptor, offset, Some(length))
        .await
        .expect("ranged GET of the big layer")
    {
        BlobResponse::Partial(stream) => {
            assert_eq!(
                stream.content_length,
                Some(length),
                "Content-Length of a range"
            );
            let got: Vec<u8> = stream
                .try_fold(Vec::new(), |mut acc, b| async move {
                    acc.extend_from_slice(&b);
                    Ok(acc)
                })
                .await
                .expect("reading the ranged body");
            let start = offset as usize;
            assert!(
                got == pushed.layers[1].data[start..start + length as usize],
                "ranged bytes differ"
            );
        }
        BlobResponse::Full(_) => panic!("server ignored Range (200 instead of 206)"),
    }

    // A second tag on the same manifest, then tag listing with pagination.
    let v2 = server.tagged("ns/app", "v2");
    let manifest: OciImageManifest = image.manifest.clone().expect("manifest");
    client
        .push_manifest(&v2, &manifest.into())
        .await
        .expect("re-tagging as v2");
    let tags = client
        .list_tags(&v1, &AUTH, None, None)
        .await
        .expect("tags/list");
    assert_eq!(tags.name, "ns/app", "tags/list name");
    assert_eq!(tags.tags, ["v1", "v2"], "tags/list");
    let page = client
        .list_tags(&v1, &AUTH, Some(1), None)
        .await
        .expect("tags/list?n=1");
    assert_eq!(page.tags, ["v1"], "first page of n=1");
    let page = client
        .list_tags(&v1, &AUTH, Some(1), Some("v1"))
        .await
        .expect("tags/list?n=1&last=v1");
    assert_eq!(page.tags, ["v2"], "second page of n=1");

    // A repository with a deeper name, then the catalog.
    let deep = server.tagged("ns/other/deep", "1.0");
    let deep_pushed = push_image(
        &client,
        &deep,
        "amd64",
        vec![ImageLayer::oci_v1(generated_bytes(2, 10_000), None)],
    )
    .await;
    assert!(
        !client
            .blob_exists(&deep, &big_digest)
            .await
            .expect("HEAD blob"),
        "ns/other/deep serves a blob only ns/app holds (layer authorization)"
    );
    let deep_image = client
        .pull(&deep, &AUTH, vec![IMAGE_LAYER_MEDIA_TYPE])
        .await
        .expect("pull of ns/other/deep:1.0");
    assert_eq!(deep_image.digest, Some(deep_pushed.digest), "deep digest");

    let catalog = client
        .catalog(&v1, &AUTH, None, None)
        .await
        .expect("_catalog");
    assert_eq!(catalog.repositories, ["ns/app", "ns/other/deep"], "catalog");
    let page = client
        .catalog(&v1, &AUTH, Some(1), Some("ns/app"))
        .await
        .expect("_catalog?n=1&last=ns/app");
    assert_eq!(
        page.repositories,
        ["ns/other/deep"],
        "catalog page after ns/app"
    );
}

// ---------------------------------------------------------------------------
// 2 + 3. streamed chunked upload, cross-repository mount
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_and_cross_repository_mount() {
    let server = TestServer::start().await;
    let client = client();
    let src = server.tagged("ns/src", "unused");
    let dst = server.tagged("ns/dst", "copied");

    // Streamed upload: oci-client sends one PATCH per stream item (each
    // with a Content-Range continuing the last), then PUT ?digest=.
    let pieces: Vec<Bytes> = [256 * 1024, 1, 700 * 1024 + 3, 3 * 1024]
        .iter()
        .enumerate()
        .map(|(i, &n)| Bytes::from(generated_bytes(10 + i as u64, n)))
        .collect();
    let whole: Vec<u8> = pieces.concat();
    let expected = sha256(&whole);
    let stream = futures::stream::iter(pieces.into_iter().map(Ok));
    server.take_log();
    let pushed = client
        .push_blob_stream_chunked(&src, stream)
        .await
        .expect("push_blob_stream_chunked to ns/src");
    assert_eq!(patches(&server.take_log()), 4, "one PATCH per stream item");
    assert_eq!(pushed.blob_digest, expected, "digest of the chunked upload");
    assert_eq!(
        pushed.size,
        whole.len() as u64,
        "size of the chunked upload"
    );
    assert!(
        pushed
            .blob_url
            .ends_with(&format!("/v2/ns/src/blobs/{expected}")),
        "Location after commit should name the blob, got {}",
        pushed.blob_url
    );
    assert!(
        client.blob_exists(&src, &expected).await.expect("HEAD"),
        "chunked blob missing in ns/src"
    );
    assert!(
        read_blob(&client, &src, &expected).await == whole,
        "chunked blob bytes differ"
    );
    assert!(
        !client.blob_exists(&dst, &expected).await.expect("HEAD"),
        "blob visible in ns/dst before any mount"
    );

    // A config blob, pushed with push_blob (POST, PATCH, PUT).
    let config = image_config("amd64", "mounted");
    let config_digest = config.sha256_digest();
    client
        .push_blob(&src, config.data.clone(), &config_digest)
        .await
        .expect("push_blob of the config to ns/src");

    // Mount both into ns/dst.
    for digest in [&expected, &config_digest] {
        client
            .mount_blob(&dst, &src, digest)
            .await
            .unwrap_or_else(|e| panic!("mount of {digest} from ns/src into ns/dst: {e:?}"));
        assert!(
            client.blob_exists(&dst, digest).await.expect("HEAD"),
            "mounted blob {digest} missing in ns/dst"
        );
    }
    assert!(
        read_blob(&client, &dst, &expected).await == whole,
        "mounted blob bytes differ"
    );

    // A manifest in ns/dst built only from mounted blobs is accepted and pulls.
    let manifest = OciImageManifest {
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_owned()),
        config: OciDescriptor {
            media_type: IMAGE_CONFIG_MEDIA_TYPE.to_owned(),
            digest: config_digest.clone(),
            size: config.data.len() as i64,
            ..Default::default()
        },
        layers: vec![OciDescriptor {
            media_type: IMAGE_LAYER_MEDIA_TYPE.to_owned(),
            digest: expected.clone(),
            size: whole.len() as i64,
            ..Default::default()
        }],
        ..Default::default()
    };
    client
        .push_manifest(&dst, &manifest.into())
        .await
        .expect("manifest of mounted blobs in ns/dst");
    let image = client
        .pull(&dst, &AUTH, vec![IMAGE_LAYER_MEDIA_TYPE])
        .await
        .expect("pull of ns/dst:copied");
    assert!(
        image.layers[0].data == whole,
        "pulled mounted layer differs"
    );
    assert_eq!(image.config.data, config.data, "pulled mounted config");

    // Mounting a blob the source does not hold is refused: the registry
    // falls back to opening an upload session (202), which oci-client
    // reports as an error, and nothing becomes visible.
    let absent = sha256(b"not in ns/src");
    let result = client.mount_blob(&dst, &src, &absent).await;
    assert!(
        result.is_err(),
        "mount of a blob the source lacks should not succeed"
    );
    assert!(
        !client.blob_exists(&dst, &absent).await.expect("HEAD"),
        "failed mount made a blob visible"
    );
}

// ---------------------------------------------------------------------------
// 4. image index over two platform images
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_index_with_two_platforms() {
    let server = TestServer::start().await;
    let client = client();
    let repo = "ns/multi";

    let mut children = Vec::new();
    for (i, (arch, architecture)) in [
        ("amd64", Architecture::Amd64),
        ("arm64", Architecture::ARM64),
    ]
    .into_iter()
    .enumerate()
    {
        let reference = server.tagged(repo, &format!("linux-{arch}"));
        let layer = ImageLayer::oci_v1(generated_bytes(20 + i as u64, 50_000 + i), None);
        let pushed = push_image(&client, &reference, arch, vec![layer]).await;
        let (raw, _) = client
            .pull_manifest_raw(
                &server.by_digest(repo, &pushed.digest),
                &AUTH,
                &[OCI_IMAGE_MEDIA_TYPE],
            )
            .await
            .unwrap_or_else(|e| panic!("GET of the {arch} child by digest: {e:?}"));
        children.push((architecture, pushed, raw.len()));
    }

    let index = OciImageIndex {
        schema_version: 2,
        media_type: Some(OCI_IMAGE_INDEX_MEDIA_TYPE.to_owned()),
        manifests: children
            .iter()
            .map(|(architecture, pushed, size)| ImageIndexEntry {
                media_type: OCI_IMAGE_MEDIA_TYPE.to_owned(),
                digest: pushed.digest.clone(),
                size: *size as i64,
                platform: Some(Platform {
                    architecture: architecture.clone(),
                    os: Os::Linux,
                    os_version: None,
                    os_features: None,
                    variant: None,
                    features: None,
                }),
                annotations: None,
                artifact_type: None,
            })
            .collect(),
        artifact_type: None,
        annotations: None,
    };
    let latest = server.tagged(repo, "latest");
    let url = client
        .push_manifest_list(&latest, &AUTH, index.clone())
        .await
        .expect("push of the image index to ns/multi:latest");
    let index_digest = digest_of_manifest_url(&url);

    // Raw index: exact bytes, right digest, right media type negotiation.
    let (raw, digest) = client
        .pull_manifest_raw(&latest, &AUTH, &[OCI_IMAGE_INDEX_MEDIA_TYPE])
        .await
        .expect("GET of the index");
    assert_eq!(digest, index_digest, "index digest");
    assert_eq!(sha256(&raw), index_digest, "index bytes hash");

    let OciManifest::ImageIndex(got) = client
        .pull_manifest(&latest, &AUTH)
        .await
        .expect("pull_manifest of the index")
        .0
    else {
        panic!("ns/multi:latest did not come back as an image index");
    };
    assert_eq!(got.manifests.len(), 2, "index entries");
    for (entry, (architecture, pushed, size)) in got.manifests.iter().zip(&children) {
        assert_eq!(entry.digest, pushed.digest, "index entry digest");
        assert_eq!(
            entry.platform.as_ref().map(|p| &p.architecture),
            Some(architecture),
            "index entry platform"
        );
        // Every child resolves by digest to bytes of the declared size and digest.
        let (child, child_digest) = client
            .pull_manifest_raw(
                &server.by_digest(repo, &entry.digest),
                &AUTH,
                &[OCI_IMAGE_MEDIA_TYPE],
            )
            .await
            .unwrap_or_else(|e| panic!("child {} does not resolve: {e:?}", entry.digest));
        assert_eq!(child_digest, entry.digest, "child digest");
        assert_eq!(sha256(&child), entry.digest, "child bytes hash");
        assert_eq!(child.len(), *size, "child size");
    }

    // The client's platform resolution through the index, then a full pull.
    let (_, resolved) = client
        .pull_image_manifest(&latest, &AUTH)
        .await
        .expect("platform resolution through the index");
    assert_eq!(
        resolved, children[0].1.digest,
        "linux/amd64 should resolve to the amd64 child"
    );
    let image = client
        .pull(&latest, &AUTH, vec![IMAGE_LAYER_MEDIA_TYPE])
        .await
        .expect("pull through the index");
    assert!(
        image.layers[0].data == children[0].1.layers[0].data,
        "layer pulled through the index differs from the amd64 layer"
    );

    // An index naming a manifest the repository lacks is refused.
    let mut broken = index;
    broken.manifests[1].digest = sha256(b"no such manifest");
    let result = client
        .push_manifest_list(&server.tagged(repo, "broken"), &AUTH, broken)
        .await;
    assert!(
        result.is_err(),
        "index with an unknown child was accepted: {result:?}"
    );
    let tags = client
        .list_tags(&latest, &AUTH, None, None)
        .await
        .expect("tags/list");
    assert_eq!(
        tags.tags,
        ["latest", "linux-amd64", "linux-arm64"],
        "tags after the refused index"
    );
}

// ---------------------------------------------------------------------------
// 5. artifacts with a subject, referrers API
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_list_artifacts_by_subject() {
    let server = TestServer::start().await;
    let client = client();
    let repo = "ns/app";
    let v1 = server.tagged(repo, "v1");
    let subject = push_image(
        &client,
        &v1,
        "amd64",
        vec![ImageLayer::oci_v1(generated_bytes(30, 20_000), None)],
    )
    .await;
    let (subject_raw, _) = client
        .pull_manifest_raw(&v1, &AUTH, &[OCI_IMAGE_MEDIA_TYPE])
        .await
        .expect("GET of the subject");
    let subject_descriptor = OciDescriptor {
        media_type: OCI_IMAGE_MEDIA_TYPE.to_owned(),
        digest: subject.digest.clone(),
        size: subject_raw.len() as i64,
        ..Default::default()
    };

    // Nothing refers to it yet.
    let subject_ref = server.by_digest(repo, &subject.digest);
    let none = client
        .pull_referrers(&subject_ref, None)
        .await
        .expect("referrers before any artifact");
    assert!(
        none.manifests.is_empty(),
        "referrers before any artifact: {:?}",
        none.manifests
    );

    // The empty config and an SBOM blob.
    let empty_digest = sha256(b"{}");
    client
        .push_blob(&v1, &b"{}"[..], &empty_digest)
        .await
        .expect("push of the empty config blob");
    let sbom = br#"{"spdxVersion":"SPDX-2.3","name":"ns/app"}"#.to_vec();
    let sbom_digest = sha256(&sbom);
    client
        .push_blob(&v1, sbom.clone(), &sbom_digest)
        .await
        .expect("push of the SBOM blob");
    let empty_config = OciDescriptor {
        media_type: EMPTY_MEDIA_TYPE.to_owned(),
        digest: empty_digest.clone(),
        size: 2,
        ..Default::default()
    };

    // Artifact 1: built with oci-client's manifest type, pushed under a tag.
    let sbom_manifest = OciImageManifest {
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_owned()),
        artifact_type: Some(SBOM_TYPE.to_owned()),
        config: empty_config,
        layers: vec![OciDescriptor {
            media_type: "application/spdx+json".to_owned(),
            digest: sbom_digest.clone(),
            size: sbom.len() as i64,
            ..Default::default()
        }],
        subject: Some(subject_descriptor.clone()),
        ..Default::default()
    };
    let url = client
        .push_manifest(&server.tagged(repo, "sbom"), &sbom_manifest.into())
        .await
        .expect("push of the SBOM artifact");
    let sbom_artifact = digest_of_manifest_url(&url);

    // Artifact 2: hand-written bytes pushed by digest (no layers but the
    // empty blob), to check the exact bytes are what is stored.
    let signature = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_MEDIA_TYPE}","artifactType":"{SIGNATURE_TYPE}","config":{{"mediaType":"{EMPTY_MEDIA_TYPE}","digest":"{empty_digest}","size":2}},"layers":[{{"mediaType":"{EMPTY_MEDIA_TYPE}","digest":"{empty_digest}","size":2}}],"subject":{{"mediaType":"{OCI_IMAGE_MEDIA_TYPE}","digest":"{}","size":{}}},"annotations":{{"org.opencontainers.image.created":"2024-01-01T00:00:00Z"}}}}"#,
        subject_descriptor.digest, subject_descriptor.size,
    );
    let signature_digest = sha256(signature.as_bytes());
    let url = client
        .push_manifest_raw(
            &server.by_digest(repo, &signature_digest),
            signature.clone().into_bytes(),
            HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE),
        )
        .await
        .expect("push of the signature artifact by digest");
    assert_eq!(
        digest_of_manifest_url(&url),
        signature_digest,
        "Location of a push by digest"
    );
    let (stored, _) = client
        .pull_manifest_raw(
            &server.by_digest(repo, &signature_digest),
            &AUTH,
            &[OCI_IMAGE_MEDIA_TYPE],
        )
        .await
        .expect("GET of the signature artifact");
    assert_eq!(
        stored,
        signature.as_bytes(),
        "manifest not stored byte for byte"
    );

    // Both artifacts are listed as referrers, with their artifactType.
    let all = client
        .pull_referrers(&subject_ref, None)
        .await
        .expect("referrers of the v1 image");
    assert_eq!(
        all.media_type.as_deref(),
        Some(OCI_IMAGE_INDEX_MEDIA_TYPE),
        "referrers response mediaType"
    );
    let mut listed: Vec<(String, Option<String>, String)> = all
        .manifests
        .iter()
        .map(|m| {
            (
                m.digest.clone(),
                m.artifact_type.clone(),
                m.media_type.clone(),
            )
        })
        .collect();
    listed.sort();
    let mut expected = vec![
        (
            sbom_artifact.clone(),
            Some(SBOM_TYPE.to_owned()),
            OCI_IMAGE_MEDIA_TYPE.to_owned(),
        ),
        (
            signature_digest.clone(),
            Some(SIGNATURE_TYPE.to_owned()),
            OCI_IMAGE_MEDIA_TYPE.to_owned(),
        ),
    ];
    expected.sort();
    assert_eq!(
        listed, expected,
        "referrers (digest, artifactType, mediaType)"
    );
    let signature_entry = all
        .manifests
        .iter()
        .find(|m| m.digest == signature_digest)
        .expect("signature entry");
    assert_eq!(
        signature_entry.size,
        signature.len() as i64,
        "referrer descriptor size"
    );
    assert_eq!(
        signature_entry
            .annotations
            .as_ref()
            .and_then(|a| a.get("org.opencontainers.image.created"))
            .map(String::as_str),
        Some("2024-01-01T00:00:00Z"),
        "referrer descriptor should carry the manifest's annotations"
    );

    // Filtered by artifactType.
    let sboms = client
        .pull_referrers(&subject_ref, Some(SBOM_TYPE))
        .await
        .expect("referrers?artifactType=sbom");
    let digests: Vec<&str> = sboms.manifests.iter().map(|m| m.digest.as_str()).collect();
    assert_eq!(
        digests,
        [sbom_artifact.as_str()],
        "referrers filtered by artifactType"
    );
    let other = client
        .pull_referrers(&subject_ref, Some("application/x-unrelated"))
        .await
        .expect("referrers?artifactType=unrelated");
    assert!(
        other.manifests.is_empty(),
        "unrelated artifactType filter returned {:?}",
        other.manifests
    );

    // The artifacts themselves are ordinary manifests: pull the SBOM back.
    let sbom_ref = server.by_digest(repo, &sbom_artifact);
    let (pulled, _) = client
        .pull_manifest(&sbom_ref, &AUTH)
        .await
        .expect("pull of the SBOM artifact manifest");
    let OciManifest::Image(pulled) = pulled else {
        panic!("SBOM artifact did not come back as an image manifest");
    };
    assert_eq!(
        pulled.artifact_type.as_deref(),
        Some(SBOM_TYPE),
        "artifactType kept"
    );
    assert_eq!(
        pulled.subject.map(|s| s.digest),
        Some(subject.digest.clone()),
        "subject kept"
    );
    assert!(
        read_blob(&client, &sbom_ref, &sbom_digest).await == sbom,
        "SBOM blob bytes differ"
    );
}
