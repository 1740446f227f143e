//! Content the walkthrough shows, pushed over the HTTP API as the admin:
//! namespaces, images, a multi-platform index and its referrers.

use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::examples::ADMIN_PASSWORD;
use crate::{plain_client, ALICE_PASSWORD};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const OCI_EMPTY: &str = "application/vnd.oci.empty.v1+json";
pub(crate) const SIGNATURE_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";
const SBOM_TYPE: &str = "application/spdx+json";

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
pub(crate) struct Seeded {
    /// `public/web-app:v1.0.0`, an image (amd64).
    pub(crate) first: String,
    /// The multi-platform index `public/web-app:latest` ends on.
    pub(crate) index: String,
}

/// Two namespaces, `public` (anonymous may view) and `private` (alice may
/// view); in `public/web-app` two images, a multi-platform index, the tag
/// `latest` moved twice, and a signature and an SBOM of the index.
pub(crate) async fn seed(base: &str) -> Seeded {
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
