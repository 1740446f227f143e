//! Image metadata: of an image manifest and of an index.

use axum::http::{Method, StatusCode};
use registry_core::{media_type, Digest};
use serde_json::{json, Value};

use crate::common::Client;
use crate::support::{get_as, push_platform_image, put_manifest, API};

#[tokio::test]
async fn image_metadata_of_a_manifest() {
    let c = Client::new();
    let (bytes, digest) = push_platform_image(&c, "team/app", "arm64").await;
    put_manifest(&c, None, "team/app", "v1", media_type::OCI_MANIFEST, &bytes).await;
    put_manifest(
        &c,
        None,
        "team/app",
        "stable",
        media_type::OCI_MANIFEST,
        &bytes,
    )
    .await;
    // The same image in a second repository, untagged.
    for blob in common_blobs(&bytes) {
        let r = c
            .bare(
                Method::POST,
                &format!("/v2/team/mirror/blobs/uploads/?mount={blob}&from=team/app"),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    put_manifest(
        &c,
        None,
        "team/mirror",
        &digest.to_string(),
        media_type::OCI_MANIFEST,
        &bytes,
    )
    .await;

    let r = get_as(&c, None, &format!("{API}/images/{digest}")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let i = r.json();
    assert_eq!(i["kind"], "Image");
    assert_eq!(i["metadata"]["name"], digest.to_string());
    assert_eq!(i["digest"], digest.to_string());
    assert_eq!(i["mediaType"], media_type::OCI_MANIFEST);
    assert_eq!(i["size"], bytes.len());
    let repos = i["repositories"].as_array().unwrap();
    assert_eq!(repos.len(), 2);
    assert_eq!(repos[0]["name"], "team/app");
    assert_eq!(repos[0]["tags"], json!(["stable", "v1"]));
    assert_eq!(repos[1]["name"], "team/mirror");
    assert_eq!(repos[1]["tags"], json!([]));
    assert_eq!(i["config"]["mediaType"], media_type::OCI_CONFIG);
    assert_eq!(i["layers"].as_array().unwrap().len(), 1);
    assert_eq!(i["layers"][0]["mediaType"], media_type::OCI_LAYER_GZIP);
    assert_eq!(i["layers"][0]["size"], "layer for arm64".len());
    assert_eq!(i["manifests"], json!([]));
    let config = &i["imageConfig"];
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["variant"], "v8");
    assert_eq!(config["created"], "2024-05-01T10:00:00Z");
    assert_eq!(config["author"], "builder@example");
    assert_eq!(config["labels"]["org.opencontainers.image.title"], "app");
    assert_eq!(config["history"][0]["created_by"], "COPY app /app");
    assert_eq!(config["history"][1]["empty_layer"], true);

    let unknown = Digest::sha256_of(b"nothing");
    let r = get_as(&c, None, &format!("{API}/images/{unknown}")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
    );
    let r = get_as(&c, None, &format!("{API}/images/sha256:nothex")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
}

/// Config and layer digests of an image manifest.
fn common_blobs(manifest: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(manifest).unwrap();
    let mut blobs = vec![v["config"]["digest"].as_str().unwrap().to_owned()];
    blobs.extend(
        v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_owned()),
    );
    blobs
}

#[tokio::test]
async fn image_metadata_of_an_index() {
    let c = Client::new();
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let (bytes, digest) = push_platform_image(&c, "team/multi", arch).await;
        put_manifest(
            &c,
            None,
            "team/multi",
            &digest.to_string(),
            media_type::OCI_MANIFEST,
            &bytes,
        )
        .await;
        let mut platform = json!({"os": "linux", "architecture": arch});
        if arch == "arm64" {
            platform["variant"] = json!("v8");
        }
        children.push(json!({
            "mediaType": media_type::OCI_MANIFEST, "digest": digest, "size": bytes.len(),
            "platform": platform,
        }));
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": children,
        "annotations": {"org.example.release": "1.0"},
    }))
    .unwrap();
    let digest = put_manifest(&c, None, "team/multi", "1.0", media_type::OCI_INDEX, &index).await;

    let r = get_as(&c, None, &format!("{API}/images/{digest}")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let i = r.json();
    assert_eq!(i["mediaType"], media_type::OCI_INDEX);
    assert_eq!(i["config"], Value::Null);
    assert_eq!(i["imageConfig"], Value::Null);
    assert_eq!(i["layers"], json!([]));
    assert_eq!(i["annotations"]["org.example.release"], "1.0");
    assert_eq!(i["repositories"][0]["tags"], json!(["1.0"]));
    let manifests = i["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2);
    assert_eq!(manifests[0]["platform"]["architecture"], "amd64");
    assert_eq!(
        manifests[1]["platform"],
        json!({"os": "linux", "architecture": "arm64", "variant": "v8"})
    );
    assert_eq!(manifests[1]["digest"], children[1]["digest"]);
}
