//! The in-process server, the oci-client set-up and the helpers the tests share.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use bytes::Bytes;
use oci_client::client::{linux_amd64_resolver, ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use registry::api::{router, Registry};
use registry::storage::filesystem::Durability;
use sha2::{Digest as _, Sha256};

pub(crate) const MIB: usize = 1024 * 1024;
/// oci-client pushes in chunks of at most 4 MiB: this size takes two `PATCH`es
/// and leaves an odd-sized tail.
pub(crate) const BIG_LAYER_SIZE: usize = 5 * MIB + 4321;
pub(crate) const EMPTY_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
pub(crate) const SBOM_TYPE: &str = "application/vnd.example.sbom.v1+json";
pub(crate) const SIGNATURE_TYPE: &str = "application/vnd.example.signature.v1";

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

/// One request the server answered: method, path, status.
type Logged = (Method, String, StatusCode);

/// The registry served on `127.0.0.1:<ephemeral>` over a temp data dir, with
/// a log of the requests it answered (to check what the client really sent:
/// oci-client's `push_blob` silently falls back to a monolithic upload when
/// chunked uploads misbehave).
pub(crate) struct TestServer {
    pub(crate) host: String,
    pub(crate) log: Arc<Mutex<Vec<Logged>>>,
    pub(crate) task: tokio::task::JoinHandle<()>,
    // Removed after `drop` has asked the server task to stop (the abort is
    // asynchronous; on Unix files still open survive their unlinking).
    pub(crate) _dir: tempfile::TempDir,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub(crate) async fn start() -> Self {
        let dir = tempfile::tempdir().expect("creating the temp data dir");
        let stores = registry::storage::Stores::data_dir(dir.path(), Durability::None)
            .await
            .expect("Stores::data_dir over a fresh temp dir");
        let registry = Registry::new(stores);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding an ephemeral loopback port");
        let addr = listener.local_addr().expect("listener address");
        let log: Arc<Mutex<Vec<Logged>>> = Arc::default();
        let recorder = log.clone();
        let app = router(&registry).layer(axum::middleware::from_fn(
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
    pub(crate) fn take_log(&self) -> Vec<Logged> {
        std::mem::take(&mut *self.log.lock().expect("request log"))
    }

    pub(crate) fn tagged(&self, repo: &str, tag: &str) -> Reference {
        Reference::with_tag(self.host.clone(), repo.to_owned(), tag.to_owned())
    }

    pub(crate) fn by_digest(&self, repo: &str, digest: &str) -> Reference {
        Reference::with_digest(self.host.clone(), repo.to_owned(), digest.to_owned())
    }
}

/// A plain-HTTP anonymous client that resolves indexes to linux/amd64 (not
/// to the host's platform, so the test is the same everywhere).
pub(crate) fn client() -> Client {
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

pub(crate) const AUTH: RegistryAuth = RegistryAuth::Anonymous;

pub(crate) fn sha256(data: &[u8]) -> String {
    let hash = Sha256::digest(data);
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

/// Deterministic pseudo-random bytes (xorshift64*), incompressible enough to
/// look like a real layer.
pub(crate) fn generated_bytes(seed: u64, len: usize) -> Vec<u8> {
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
pub(crate) fn digest_of_manifest_url(url: &str) -> String {
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
pub(crate) fn patches(log: &[Logged]) -> usize {
    let failed: Vec<&Logged> = log.iter().filter(|(_, _, s)| !s.is_success()).collect();
    assert!(failed.is_empty(), "requests failed: {failed:?}");
    log.iter().filter(|(m, _, _)| *m == Method::PATCH).count()
}

pub(crate) async fn read_blob(client: &Client, reference: &Reference, digest: &str) -> Vec<u8> {
    let mut out = Vec::new();
    client
        .pull_blob(reference, digest, &mut out)
        .await
        .unwrap_or_else(|e| panic!("pulling blob {digest} from {reference}: {e:?}"));
    out
}

pub(crate) fn image_config(arch: &str, label: &str) -> Config {
    let json = format!(
        r#"{{"architecture":"{arch}","os":"linux","config":{{"Labels":{{"test":"{label}"}}}},"rootfs":{{"type":"layers","diff_ids":[]}}}}"#
    );
    Config::oci_v1(json.into_bytes(), None)
}

/// What a push produced.
pub(crate) struct Pushed {
    pub(crate) digest: String,
    pub(crate) layers: Vec<ImageLayer>,
    pub(crate) config: Bytes,
}

pub(crate) async fn push_image(
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
