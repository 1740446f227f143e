//! The web UI (`examples/web-ui/`) as served by the `registry-server`
//! example binary.
//!
//! - `ui_is_served_with_its_headers_and_can_be_turned_off` (always runs):
//!   the app shell on every `/ui/*` path, the assets with their types,
//!   security and cache headers, `304` on a current `ETag`, the redirects,
//!   and `--no-ui` / `REGISTRY_NO_UI` / TOML `ui = false`.
//! - `browser_walkthrough`: real content pushed over HTTP, then headless
//!   Chromium driven through chromedriver (fantoccini): the anonymous
//!   landing page, login, clicking through a namespace, an ImageStream, a
//!   tag's history and an image's layers, an index's platforms and
//!   referrers, logout. Screenshots of every page at 390 px and desktop
//!   width go to `target/ci-artifacts/web-ui/`, and no page may scroll
//!   sideways at 390 px. It needs `chromium` and `chromedriver`: it runs
//!   when `REGISTRY_TEST_BROWSER=1` (set by `.ci/run`; then a missing
//!   browser fails it) and otherwise says that it skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

#[path = "common/examples.rs"]
mod examples;
use examples::{ServerProcess, ADMIN_PASSWORD};

const ALICE_PASSWORD: &str = "alice-pass-1";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
const SIGNATURE_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
const SBOM_TYPE: &str = "application/spdx+json";

// ---------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------

fn plain_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("{} has no {name} header", response.url()))
}

#[tokio::test(flavor = "multi_thread")]
async fn ui_is_served_with_its_headers_and_can_be_turned_off() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_server, base) = ServerProcess::start(dir.path(), &[]);
    let http = plain_client();

    for path in [
        "/ui/",
        "/ui/namespaces/team",
        "/ui/namespaces/team/imagestreams/tools/build",
        "/ui/namespaces/team/imagestreamtags/app:v1",
        "/ui/images/sha256:0123",
    ] {
        let response = http.get(format!("{base}{path}")).send().await.expect(path);
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&response, "content-type"),
            "text/html; charset=utf-8"
        );
        let csp = header(&response, "content-security-policy");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert_eq!(header(&response, "cache-control"), "no-cache");
        let body = response.text().await.expect("shell");
        assert!(body.contains(r#"<script type="module" src="/ui/assets/app.js">"#));
    }

    for (asset, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("views.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let url = format!("{base}/ui/assets/{asset}");
        let response = http.get(&url).send().await.expect(asset);
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        assert_eq!(header(&response, "content-type"), content_type);
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        let etag = header(&response, "etag").to_owned();
        let again = http
            .get(&url)
            .header("If-None-Match", &etag)
            .send()
            .await
            .expect(asset);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{asset}");
        assert!(again.bytes().await.expect("304 body").is_empty());
    }
    let missing = http
        .get(format!("{base}/ui/assets/nothing.js"))
        .send()
        .await
        .expect("missing asset");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    for path in ["/", "/ui"] {
        let response = http.get(format!("{base}{path}")).send().await.expect(path);
        assert!(response.status().is_redirection(), "{path}");
        assert_eq!(header(&response, "location"), "/ui/", "{path}");
    }
    // The registry's own routes are unchanged beside the UI.
    let v2 = http.get(format!("{base}/v2/")).send().await.expect("/v2/");
    assert_eq!(v2.status(), StatusCode::UNAUTHORIZED);

    // Off by flag, by environment variable, by config file.
    let config = dir.path().join("registry.toml");
    std::fs::write(&config, "ui = false\n").expect("config file");
    let config = config.to_str().expect("utf-8 path").to_owned();
    let off = tempfile::tempdir().expect("temp dir");
    let mut by_env = ServerProcess::command(off.path(), &[]);
    by_env.env("REGISTRY_NO_UI", "true");
    for (what, command) in [
        ("--no-ui", ServerProcess::command(off.path(), &["--no-ui"])),
        ("REGISTRY_NO_UI", by_env),
        (
            "ui = false",
            ServerProcess::command(off.path(), &["--config", &config]),
        ),
    ] {
        let (mut server, base) = ServerProcess::spawn(command);
        for path in ["/ui/", "/ui/assets/app.js", "/"] {
            let response = http.get(format!("{base}{path}")).send().await.expect(path);
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{what}: {path}");
        }
        let v2 = http.get(format!("{base}/v2/")).send().await.expect("/v2/");
        assert_eq!(v2.status(), StatusCode::UNAUTHORIZED, "{what}");
        // One data directory, one server at a time.
        assert!(server.terminate().success(), "{what}: clean shutdown");
    }
}

// ---------------------------------------------------------------------------
// Content pushed over the HTTP API
// ---------------------------------------------------------------------------

/// A digest string of `bytes`.
fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex_string(&Sha256::digest(bytes)))
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `len` bytes that do not compress, the same on every run.
fn noise(seed: u8, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut block = Sha256::digest([seed]).to_vec();
    while out.len() < len {
        block = Sha256::digest(&block).to_vec();
        out.extend_from_slice(&block);
    }
    out.truncate(len);
    out
}

/// The registry as the admin pushes to it.
struct Admin {
    http: reqwest::Client,
    base: String,
}

impl Admin {
    fn auth(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        request.basic_auth("admin", Some(ADMIN_PASSWORD))
    }

    async fn post_admin(&self, path: &str, body: Value) {
        let response = self
            .auth(self.http.post(format!("{}/apis/admin/v1{path}", self.base)))
            .json(&body)
            .send()
            .await
            .expect(path);
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "POST {path}: {}",
            response.text().await.unwrap_or_default()
        );
    }

    /// A monolithic blob upload; the blob's descriptor.
    async fn blob(&self, repo: &str, media_type: &str, bytes: Vec<u8>) -> Value {
        let digest = sha256(&bytes);
        let size = bytes.len();
        let response = self
            .auth(self.http.post(format!(
                "{}/v2/{repo}/blobs/uploads/?digest={digest}",
                self.base
            )))
            .header("Content-Type", "application/octet-stream")
            .body(bytes)
            .send()
            .await
            .expect("blob upload");
        assert_eq!(response.status(), StatusCode::CREATED, "blob to {repo}");
        json!({"mediaType": media_type, "digest": digest, "size": size})
    }

    /// Puts `manifest` under `reference`; its descriptor.
    async fn manifest(&self, repo: &str, reference: &str, manifest: &Value) -> Value {
        let bytes = serde_json::to_vec(manifest).expect("manifest JSON");
        let digest = sha256(&bytes);
        let media_type = manifest["mediaType"]
            .as_str()
            .expect("mediaType")
            .to_owned();
        let reference = if reference.is_empty() {
            digest.as_str()
        } else {
            reference
        };
        let size = bytes.len();
        let response = self
            .auth(
                self.http
                    .put(format!("{}/v2/{repo}/manifests/{reference}", self.base)),
            )
            .header("Content-Type", &media_type)
            .body(bytes)
            .send()
            .await
            .expect("manifest put");
        assert_eq!(
            response.status(),
            StatusCode::CREATED,
            "manifest {repo}:{reference}: {}",
            response.text().await.unwrap_or_default()
        );
        json!({"mediaType": media_type, "digest": digest, "size": size})
    }

    /// An image: a config with labels and build history, and two layers.
    async fn image(&self, repo: &str, arch: &str, version: &str, seed: u8) -> Value {
        let base_layer = self
            .blob(repo, OCI_LAYER, noise(seed, 2_811_478 + usize::from(seed)))
            .await;
        let app_layer = self
            .blob(
                repo,
                OCI_LAYER,
                noise(seed + 1, 187_392 + usize::from(seed)),
            )
            .await;
        let config = json!({
            "architecture": arch,
            "os": "linux",
            "created": "2026-11-30T09:15:00Z",
            "author": "Build Bot <builds@example.com>",
            "config": {
                "Env": ["PATH=/usr/local/bin:/usr/bin:/bin"],
                "Cmd": ["/app/server", "--port", "8080"],
                "Labels": {
                    "org.opencontainers.image.title": repo.rsplit('/').next().unwrap_or(repo),
                    "org.opencontainers.image.version": version,
                    "org.opencontainers.image.source": "https://git.example.com/shop/web-app",
                    "org.opencontainers.image.revision": "4f9c2e1b7a0d3c5e8f6a1b2c3d4e5f6a7b8c9d0e",
                    "org.opencontainers.image.licenses": "Apache-2.0",
                }
            },
            "rootfs": {"type": "layers", "diff_ids": [base_layer["digest"], app_layer["digest"]]},
            "history": [
                {"created": "2026-11-20T08:00:00Z", "created_by": "/bin/sh -c #(nop) ADD file:9a3f0c5e1b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b8d0f2a4c6e8b0d2f4a in / "},
                {"created": "2026-11-20T08:00:01Z", "created_by": "/bin/sh -c #(nop)  CMD [\"/bin/sh\"]", "empty_layer": true},
                {"created": "2026-11-30T09:14:40Z", "created_by": "COPY ./dist/server /app/server # buildkit", "comment": "buildkit.dockerfile.v0"},
                {"created": "2026-11-30T09:15:00Z", "created_by": "CMD [\"/app/server\" \"--port\" \"8080\"]", "comment": "buildkit.dockerfile.v0", "empty_layer": true},
            ],
        });
        let config = self
            .blob(
                repo,
                OCI_CONFIG,
                serde_json::to_vec(&config).expect("config"),
            )
            .await;
        json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": [base_layer, app_layer],
            "annotations": {"org.opencontainers.image.created": "2026-11-30T09:15:00Z"},
        })
    }

    /// An artifact referring to `subject` (a signature, an SBOM).
    async fn referrer(&self, repo: &str, artifact_type: &str, payload: &Value, subject: &Value) {
        let empty = self.blob(repo, OCI_EMPTY, b"{}".to_vec()).await;
        let layer_type = if artifact_type == SBOM_TYPE {
            SBOM_TYPE
        } else {
            "application/vnd.dev.cosign.simplesigning.v1+json"
        };
        let layer = self
            .blob(
                repo,
                layer_type,
                serde_json::to_vec(payload).expect("payload"),
            )
            .await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": empty,
            "layers": [layer],
            "subject": subject,
            "annotations": {"org.opencontainers.image.created": "2026-11-30T09:20:00Z"},
        });
        self.manifest(repo, "", &manifest).await;
    }
}

/// What [`seed`] pushed.
struct Seeded {
    /// `public/web-app:v1.0.0`, an image (amd64).
    first: String,
    /// The multi-platform index `public/web-app:latest` ends on.
    index: String,
}

/// Two namespaces, `public` (anonymous may view) and `private` (alice may
/// view); in `public/web-app` two images, a multi-platform index, the tag
/// `latest` moved twice, and a signature and an SBOM of the index.
async fn seed(base: &str) -> Seeded {
    let admin = Admin {
        http: plain_client(),
        base: base.to_owned(),
    };
    admin
        .post_admin("/namespaces", json!({"name": "public"}))
        .await;
    admin
        .post_admin("/namespaces", json!({"name": "private"}))
        .await;
    admin
        .post_admin(
            "/namespaces/public/rolebindings",
            json!({"role": "registry-viewer", "subject": "group:system:anonymous"}),
        )
        .await;
    admin
        .post_admin(
            "/users",
            json!({"name": "alice", "password": ALICE_PASSWORD}),
        )
        .await;
    admin
        .post_admin(
            "/namespaces/private/rolebindings",
            json!({"role": "registry-viewer", "subject": "user:alice"}),
        )
        .await;

    let repo = "public/web-app";
    let v1_manifest = admin.image(repo, "amd64", "1.0.0", 1).await;
    let v1 = admin.manifest(repo, "v1.0.0", &v1_manifest).await;
    admin.manifest(repo, "latest", &v1_manifest).await;
    let amd64 = admin.image(repo, "amd64", "1.1.0", 3).await;
    let amd64_desc = admin.manifest(repo, "v1.1.0", &amd64).await;
    admin.manifest(repo, "latest", &amd64).await;
    let arm64 = admin.image(repo, "arm64", "1.1.0", 5).await;
    let arm64_desc = admin.manifest(repo, "", &arm64).await;
    let mut arm64_child = arm64_desc.clone();
    arm64_child["platform"] = json!({"architecture": "arm64", "os": "linux", "variant": "v8"});
    let mut amd64_child = amd64_desc.clone();
    amd64_child["platform"] = json!({"architecture": "amd64", "os": "linux"});
    let index = json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [amd64_child, arm64_child],
        "annotations": {"org.opencontainers.image.version": "1.1.0"},
    });
    let index = admin.manifest(repo, "latest", &index).await;
    admin
        .referrer(
            repo,
            SIGNATURE_TYPE,
            &json!({"critical": {"identity": {"docker-reference": "127.0.0.1/public/web-app"},
                "image": {"docker-manifest-digest": index["digest"]},
                "type": "cosign container image signature"}}),
            &index,
        )
        .await;
    admin
        .referrer(
            repo,
            SBOM_TYPE,
            &json!({"spdxVersion": "SPDX-2.3", "name": "web-app", "packages": []}),
            &index,
        )
        .await;
    admin
        .manifest(
            "public/tools/builder",
            "2026.11",
            &admin
                .image("public/tools/builder", "amd64", "2026.11", 7)
                .await,
        )
        .await;

    let secret = admin
        .image("private/billing-api", "amd64", "3.2.0", 9)
        .await;
    admin.manifest("private/billing-api", "v3", &secret).await;

    Seeded {
        first: v1["digest"].as_str().expect("digest").to_owned(),
        index: index["digest"].as_str().expect("digest").to_owned(),
    }
}

// ---------------------------------------------------------------------------
// The browser
// ---------------------------------------------------------------------------

/// chromedriver, stopped on drop.
struct Driver {
    child: Child,
    url: String,
    /// Chromium's profile and chromedriver's log.
    dir: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Starts chromedriver and a headless Chromium session.
async fn browser() -> (Driver, Client) {
    let chromedriver = find_program(&["chromedriver"]).expect(
        "REGISTRY_TEST_BROWSER=1 but chromedriver is not on PATH (Debian: chromium-driver)",
    );
    let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"])
        .expect("REGISTRY_TEST_BROWSER=1 but chromium is not on PATH (Debian: chromium)");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        listener.local_addr().expect("port").port()
    };
    let dir = tempfile::tempdir().expect("profile dir");
    let log = dir.path().join("chromedriver.log");
    let child = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        dir,
    };
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                "--window-size=1280,900",
                format!("--user-data-dir={}", driver.dir.path().join("profile").display()),
            ],
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&driver.url)
            .await
        {
            Ok(client) => break client,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!(
                "no WebDriver session from {chromedriver:?}: {e}\nits log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        }
    };
    (driver, client)
}

/// Polls `check` until it returns `Some`, for at most 20 s (a login
/// hashes a password: slow in a debug build on a loaded machine).
async fn eventually<T, F, Fut>(what: &str, client: &Client, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        if Instant::now() > deadline {
            let text = main_text(client).await;
            panic!("timed out waiting for {what}; the page shows:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn main_text(client: &Client) -> String {
    match client.find(Locator::Css("body")).await {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(e) => format!("(no body: {e})"),
    }
}

/// Waits until the page's text contains `needle`; the text.
async fn wait_for_text(client: &Client, needle: &str) -> String {
    eventually(&format!("{needle:?}"), client, || async {
        let text = main_text(client).await;
        text.contains(needle).then_some(text)
    })
    .await
}

/// The first link whose text is `text`, once there is one.
async fn link(client: &Client, text: &str) -> Element {
    eventually(&format!("a link {text:?}"), client, || async {
        client.find(Locator::LinkText(text)).await.ok()
    })
    .await
}

/// Starts recording Content-Security-Policy violations of this page load
/// (the UI renders every page of the session in it).
async fn watch_csp(client: &Client) {
    script(
        client,
        "window.cspViolations = []; document.addEventListener('securitypolicyviolation', \
         e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));",
    )
    .await;
}

async fn assert_no_csp_violations(client: &Client, when: &str) {
    let seen = script(client, "return window.cspViolations;").await;
    assert_eq!(seen, json!([]), "CSP violations {when}");
}

async fn script(client: &Client, source: &str) -> Value {
    client
        .execute(source, Vec::new())
        .await
        .unwrap_or_else(|e| panic!("script {source:?}: {e}"))
}

/// Sets the viewport (not the window) to `width` × `height` CSS pixels.
async fn viewport(client: &Client, width: u32, height: u32) {
    client
        .set_window_size(width, height)
        .await
        .expect("set_window_size");
    let inner = script(client, "return [window.innerWidth, window.innerHeight];").await;
    let (iw, ih) = (
        inner[0].as_u64().unwrap_or(0) as u32,
        inner[1].as_u64().unwrap_or(0) as u32,
    );
    if iw != width || ih != height {
        let w = width + width.saturating_sub(iw);
        let h = height + height.saturating_sub(ih);
        client.set_window_size(w, h).await.expect("set_window_size");
        let inner = script(client, "return window.innerWidth;").await;
        assert_eq!(
            inner.as_u64(),
            Some(u64::from(width)),
            "cannot make the viewport {width} px wide"
        );
    }
}

fn artifact_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-artifacts/web-ui");
    std::fs::create_dir_all(&dir).expect("creating target/ci-artifacts/web-ui");
    dir
}

/// Screenshots of the whole page at 390 px and at 1280 px; at 390 px the
/// page must not be wider than the viewport.
async fn screenshots(client: &Client, name: &str) {
    for (label, width) in [("mobile", 390_u32), ("desktop", 1280)] {
        viewport(client, width, 844).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let widths = script(
            client,
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];",
        )
        .await;
        let (scroll, client_width) = (
            widths[0].as_u64().unwrap_or(u64::MAX),
            widths[1].as_u64().unwrap_or(0),
        );
        assert!(
            scroll <= client_width,
            "{name} at {width} px scrolls sideways: scrollWidth {scroll} > clientWidth {client_width}"
        );
        if width == 390 {
            let wide = script(
                client,
                "return Array.from(document.querySelectorAll('main *'))\
                 .filter(e => !e.closest('.visually-hidden, .offscreen, table.data thead'))\
                 .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)\
                 .slice(0, 5).map(e => e.tagName + '.' + e.className + ': ' + e.textContent.slice(0, 40));",
            )
            .await;
            assert_eq!(
                wide,
                json!([]),
                "{name}: elements past the right edge at 390 px"
            );
        }
        let height = script(client, "return document.documentElement.scrollHeight;")
            .await
            .as_u64()
            .unwrap_or(844)
            .clamp(600, 6000) as u32;
        viewport(client, width, height).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let png = client.screenshot().await.expect("screenshot");
        let path = artifact_dir().join(format!("{name}-{label}.png"));
        std::fs::write(&path, png).expect("writing screenshot");
        println!("screenshot: {}", path.display());
    }
    viewport(client, 1280, 900).await;
}

fn browser_wanted() -> bool {
    std::env::var("REGISTRY_TEST_BROWSER").is_ok_and(|v| v == "1")
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_walkthrough() {
    if !browser_wanted() {
        eprintln!(
            "browser_walkthrough skipped: set REGISTRY_TEST_BROWSER=1 (needs chromium and chromium-driver)"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, base) = ServerProcess::start(dir.path(), &[]);
    let seeded = seed(&base).await;
    let (_driver, client) = browser().await;
    let result = walkthrough(&client, &base, &seeded).await;
    let _ = client.close().await;
    if let Err(panic) = result {
        eprintln!("registry-server printed:\n{}", server.printed());
        std::panic::resume_unwind(panic);
    }
}

/// The steps, with panics caught so the browser session is closed.
async fn walkthrough(
    client: &Client,
    base: &str,
    seeded: &Seeded,
) -> Result<(), Box<dyn std::any::Any + Send>> {
    use futures::FutureExt as _;
    std::panic::AssertUnwindSafe(steps(client, base, seeded))
        .catch_unwind()
        .await
}

async fn steps(client: &Client, base: &str, seeded: &Seeded) {
    let http = plain_client();

    // Anonymous: the public namespace only.
    client
        .goto(&format!("{base}/ui/"))
        .await
        .expect("goto /ui/");
    let text = wait_for_text(client, "web-app").await;
    assert!(text.contains("public"), "{text}");
    assert!(text.contains("tools/builder"), "{text}");
    assert!(!text.contains("private"), "anonymous sees private: {text}");
    assert!(
        !text.contains("billing-api"),
        "anonymous sees private: {text}"
    );
    assert!(text.contains("Anonymous"), "{text}");
    screenshots(client, "1-repositories-anonymous").await;
    // Keyboard: the first Tab reaches the skip link.
    client
        .find(Locator::Css("body"))
        .await
        .expect("body")
        .send_keys("\u{E004}")
        .await
        .expect("Tab");
    let focused = script(client, "return document.activeElement.className;").await;
    assert_eq!(focused, json!("skip-link"));
    // The filter hides what does not match.
    let filter = client
        .find(Locator::Id("repo-filter"))
        .await
        .expect("filter");
    filter.send_keys("tools").await.expect("typing a filter");
    let shown = script(
        client,
        "return Array.from(document.querySelectorAll('.repo a'))\
         .filter(a => a.offsetParent !== null).map(a => a.textContent);",
    )
    .await;
    assert_eq!(shown, json!(["public/tools/builder"]));

    // A private page asks an anonymous visitor to sign in.
    client
        .goto(&format!("{base}/ui/namespaces/private"))
        .await
        .expect("goto private");
    wait_for_text(client, "Sign in to see this page").await;

    // Login: alice sees the private namespace too.
    client
        .goto(&format!("{base}/ui/"))
        .await
        .expect("goto /ui/");
    wait_for_text(client, "web-app").await;
    client
        .find(Locator::XPath(
            "//header//button[normalize-space()='Sign in']",
        ))
        .await
        .expect("Sign in button")
        .click()
        .await
        .expect("click Sign in");
    let user = eventually("the login form", client, || async {
        client.find(Locator::Id("login-user")).await.ok()
    })
    .await;
    user.send_keys("alice").await.expect("typing user");
    let password = client
        .find(Locator::Id("login-password"))
        .await
        .expect("password field");
    password
        .send_keys("wrong-password")
        .await
        .expect("typing password");
    client
        .find(Locator::Css("form.login button[type=submit]"))
        .await
        .expect("submit")
        .click()
        .await
        .expect("submit");
    wait_for_text(client, "Wrong user name or password").await;
    screenshots(client, "0-login").await;
    password.clear().await.expect("clearing password");
    password
        .send_keys(&format!("{ALICE_PASSWORD}\n"))
        .await
        .expect("typing password");
    let text = wait_for_text(client, "billing-api").await;
    assert!(text.contains("web-app"), "{text}");
    assert!(text.contains("alice"), "{text}");
    let stored = script(
        client,
        "return [localStorage.length, JSON.parse(sessionStorage.getItem('registry-ui.session'))];",
    )
    .await;
    assert_eq!(stored[0], json!(0), "nothing in localStorage");
    let session = &stored[1];
    let token = session["token"]
        .as_str()
        .expect("a token in sessionStorage");
    assert!(session["expires"].is_string(), "{session}");
    assert!(
        !session.to_string().contains(ALICE_PASSWORD),
        "the password is not stored"
    );
    screenshots(client, "2-repositories-alice").await;
    watch_csp(client).await;

    // Namespace → ImageStream → tag history → image, by clicking.
    link(client, "public")
        .await
        .click()
        .await
        .expect("click public");
    let text = wait_for_text(client, "ImageStreams").await;
    assert!(
        text.contains("web-app") && text.contains("tools/builder"),
        "{text}"
    );
    // What the namespace stores, from the Image API's namespace document
    // (labels are upper-cased by the style sheet, which innerText follows).
    let lower = text.to_lowercase();
    assert!(
        lower.contains("usage") && lower.contains("stored") && lower.contains("quota"),
        "{text}"
    );
    screenshots(client, "3-namespace").await;

    link(client, "web-app")
        .await
        .click()
        .await
        .expect("click web-app");
    let text = wait_for_text(client, "v1.1.0").await;
    assert!(text.contains("latest") && text.contains("v1.0.0"), "{text}");
    assert!(
        text.contains(&format!(
            "podman pull {}",
            base.trim_start_matches("http://")
        )),
        "{text}"
    );
    screenshots(client, "4-imagestream").await;
    client
        .find(Locator::Css("button.copy__button"))
        .await
        .expect("the pull command's Copy button")
        .click()
        .await
        .expect("click Copy");
    let toast = eventually("the copy confirmation", client, || async {
        let text = client
            .find(Locator::Id("toast"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (!text.is_empty()).then_some(text)
    })
    .await;
    assert!(
        toast.starts_with("Copied") || toast.starts_with("Selected"),
        "{toast}"
    );

    link(client, "latest")
        .await
        .click()
        .await
        .expect("click latest");
    let text = wait_for_text(client, "Every move of the tag").await;
    let rows = client
        .find_all(Locator::Css("table.history tbody tr"))
        .await
        .expect("history rows");
    assert_eq!(rows.len(), 3, "latest moved twice: {text}");
    for row in &rows {
        let row = row.text().await.expect("row text");
        assert!(row.contains("admin"), "the actor: {row}");
    }
    assert!(text.contains("Created") && text.contains("Moved"), "{text}");
    screenshots(client, "5-tag-history").await;

    // The oldest move points at v1.0.0: its layers.
    let first = &seeded.first;
    client
        .find(Locator::Css(&format!(
            "table.history tbody tr:last-child a[title='{first}']"
        )))
        .await
        .expect("the first image's link")
        .click()
        .await
        .expect("click the first image");
    let text = wait_for_text(client, "Layers").await;
    let layers = client
        .find_all(Locator::Css("table.layers tbody tr"))
        .await
        .expect("layer rows");
    assert_eq!(layers.len(), 2, "{text}");
    assert!(
        text.contains("2.68 MiB"),
        "human-readable layer size: {text}"
    );
    assert!(
        text.contains("183 KiB"),
        "human-readable layer size: {text}"
    );
    assert!(
        text.contains("org.opencontainers.image.version") && text.contains("1.0.0"),
        "labels: {text}"
    );
    assert!(
        text.contains("COPY ./dist/server /app/server"),
        "build history: {text}"
    );
    assert!(text.contains("linux/amd64"), "{text}");
    assert!(
        text.contains(&format!("public/web-app@{first}")),
        "pull by digest: {text}"
    );
    screenshots(client, "6-image").await;

    assert_no_csp_violations(client, "while clicking through").await;

    // The index `latest` ends on: platforms and referrers. Reached by a
    // deep link, as a bookmark or a reload would.
    client
        .goto(&format!("{base}/ui/images/{}", seeded.index))
        .await
        .expect("goto index");
    let text = wait_for_text(client, "Platforms").await;
    assert!(
        text.contains("linux/amd64") && text.contains("linux/arm64/v8"),
        "{text}"
    );
    let text = wait_for_text(client, "Signature").await;
    assert!(text.contains("SBOM"), "{text}");
    assert!(text.contains(SIGNATURE_TYPE), "{text}");
    assert!(
        text.contains("alice"),
        "still signed in after a reload: {text}"
    );
    screenshots(client, "7-image-index").await;
    watch_csp(client).await;
    // A child of the index, by clicking its platform.
    link(client, "linux/arm64/v8")
        .await
        .click()
        .await
        .expect("click arm64");
    wait_for_text(client, "Build history").await;
    assert_no_csp_violations(client, "on the image pages").await;

    // Logout deletes the token on the server.
    let bearer = |token: &str| {
        http.get(format!("{base}/apis/image/v1/repositories"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        bearer(token).await.expect("with the token").status(),
        StatusCode::OK
    );
    client
        .find(Locator::XPath(
            "//header//button[normalize-space()='Sign out']",
        ))
        .await
        .expect("Sign out")
        .click()
        .await
        .expect("click Sign out");
    eventually("the token to be gone", client, || async {
        (bearer(token).await.expect("after logout").status() == StatusCode::UNAUTHORIZED)
            .then_some(())
    })
    .await;
    let stored = script(client, "return sessionStorage.length;").await;
    assert_eq!(stored, json!(0));
    client
        .goto(&format!("{base}/ui/"))
        .await
        .expect("goto /ui/");
    let text = wait_for_text(client, "web-app").await;
    assert!(!text.contains("billing-api"), "{text}");

    // Anonymous visitors get a public image's referrers too (from /v2/).
    client
        .goto(&format!("{base}/ui/images/{}", seeded.index))
        .await
        .expect("goto index");
    let text = wait_for_text(client, "SBOM").await;
    assert!(
        text.contains("Signature") && text.contains("Anonymous"),
        "{text}"
    );
}
