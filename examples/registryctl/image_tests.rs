//! The Image API commands against the real registry router (in memory,
//! plain HTTP on 127.0.0.1, access control off), and their rendering.

use clap::Parser;
use registry::api::{router, Registry};
use registry::core::Digest;
use serde_json::{json, Value};

use super::*;
use crate::cli::Cli;
use crate::{run, Env};

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Starts a registry; its `http://127.0.0.1:PORT`.
async fn start() -> String {
    // reqwest is built without a bundled crypto provider (see client.rs).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = router(&Registry::in_memory());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

async fn put(http: &reqwest::Client, url: String, content_type: &str, body: Vec<u8>) {
    let r = http
        .put(url)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
}

/// Pushes a config, a layer and a manifest tagged `tag`; the manifest's
/// digest and size.
async fn push_image(base: &str, repo: &str, tag: &str, arch: &str) -> (Digest, usize) {
    let http = reqwest::Client::new();
    let config = json!({"os": "linux", "architecture": arch, "author": "ci",
        "config": {"Labels": {"team": "core"}}, "history": [{"created_by": "RUN make"}]})
    .to_string();
    let layer = format!("layer {arch}");
    let mut descriptors = Vec::new();
    for blob in [config.as_bytes(), layer.as_bytes()] {
        let d = Digest::sha256_of(blob);
        let r = http
            .post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}"))
            .body(blob.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        descriptors.push((d, blob.len()));
    }
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": descriptors[0].0, "size": descriptors[0].1},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": descriptors[1].0, "size": descriptors[1].1}],
    }))
    .unwrap();
    let digest = Digest::sha256_of(&manifest);
    let size = manifest.len();
    put(
        &http,
        format!("{base}/v2/{repo}/manifests/{tag}"),
        OCI_MANIFEST,
        manifest,
    )
    .await;
    (digest, size)
}

/// Runs registryctl against `base` without stored credentials; (result,
/// stdout).
async fn exec(base: &str, args: &[&str]) -> (Result<(), String>, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    let mut all = vec![
        "registryctl",
        "--server",
        base,
        "--insecure",
        "--config",
        config.to_str().unwrap(),
    ];
    all.extend_from_slice(args);
    let cli = Cli::try_parse_from(all).expect("valid command line");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut input: &[u8] = b"";
    let mut io = Io {
        stdin: &mut input,
        out: &mut out,
        err: &mut err,
        env: Env::default(),
    };
    let result = run(cli, &mut io).await.map_err(|e| e.to_string());
    (result, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn commands_against_the_registry() {
    let base = start().await;
    let (v1, _) = push_image(&base, "team/app", "v1", "amd64").await;
    let (v2, _) = push_image(&base, "team/app", "v2", "arm64").await;
    push_image(&base, "team/tools/build", "latest", "amd64").await;
    // v1 moves to v2's image.
    let http = reqwest::Client::new();
    let bytes = http
        .get(format!("{base}/v2/team/app/manifests/v2"))
        .header("accept", OCI_MANIFEST)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    put(
        &http,
        format!("{base}/v2/team/app/manifests/v1"),
        OCI_MANIFEST,
        bytes.to_vec(),
    )
    .await;

    let (r, out) = exec(&base, &["imagestreams", "list", "team"]).await;
    r.unwrap();
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("NAME"), "{out}");
    assert!(
        lines[1].starts_with("app ") && lines[1].contains("v1,v2"),
        "{out}"
    );
    assert!(lines[2].starts_with("tools/build "), "{out}");

    let (r, out) = exec(&base, &["imagestreams", "show", "team", "tools/build"]).await;
    r.unwrap();
    assert!(
        out.contains("Name:") && out.contains("tools/build"),
        "{out}"
    );
    assert!(out.contains("latest"), "{out}");

    let (r, out) = exec(&base, &["tag", "history", "team", "app:v1"]).await;
    r.unwrap();
    assert!(out.contains(&format!("Image:      {v2}")), "{out}");
    let history: Vec<&str> = out.lines().skip_while(|l| !l.starts_with("WHEN")).collect();
    assert_eq!(history.len(), 3, "{out}");
    assert!(history[1].contains(&v2.to_string()) && history[1].ends_with("system:anonymous"));
    assert!(history[2].contains(&v1.to_string()), "{out}");

    let (r, out) = exec(&base, &["--json", "tag", "history", "team", "app:v1"]).await;
    r.unwrap();
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["history"].as_array().unwrap().len(), 2);

    let (r, out) = exec(&base, &["image", "show", &v2.to_string()]).await;
    r.unwrap();
    assert!(out.contains("team/app (v1, v2)"), "{out}");
    assert!(
        out.contains("linux/arm64") && out.contains("team=core"),
        "{out}"
    );
    assert!(out.contains("LAYER") && out.contains("RUN make"), "{out}");

    let (r, out) = exec(&base, &["repositories"]).await;
    r.unwrap();
    assert!(
        out.contains("team/app") && out.contains("team/tools/build"),
        "{out}"
    );

    let unknown = Digest::sha256_of(b"none").to_string();
    let (r, _) = exec(&base, &["image", "show", &unknown]).await;
    assert!(r.unwrap_err().contains("MANIFEST_UNKNOWN"));
    let (r, _) = exec(&base, &["imagestreams", "show", "team", "nope"]).await;
    assert!(r.unwrap_err().contains("NAME_UNKNOWN"));
}

#[tokio::test]
async fn an_index_lists_its_platforms() {
    let base = start().await;
    let (amd, amd_size) = push_image(&base, "team/multi", "amd", "amd64").await;
    let (arm, arm_size) = push_image(&base, "team/multi", "arm", "arm64").await;
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": amd, "size": amd_size,
             "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": OCI_MANIFEST, "digest": arm, "size": arm_size,
             "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        ],
    }))
    .unwrap();
    let digest = Digest::sha256_of(&index);
    put(
        &reqwest::Client::new(),
        format!("{base}/v2/team/multi/manifests/1.0"),
        OCI_INDEX,
        index,
    )
    .await;
    let (r, out) = exec(&base, &["image", "show", &digest.to_string()]).await;
    r.unwrap();
    assert!(
        out.contains("MANIFEST") && out.contains("linux/arm64/v8"),
        "{out}"
    );
    assert!(out.contains(&amd.to_string()), "{out}");
    assert!(!out.contains("LAYER"), "{out}");
}

#[test]
fn stream_list_table() {
    let item = |tag: &str, created: &str| {
        let image = Digest::sha256_of(tag.as_bytes());
        json!({"tag": tag, "items": [{"image": image, "created": created,
            "dockerImageReference": format!("reg:5000/team/app@{image}")}]})
    };
    let items = vec![serde_json::from_value(json!({
        "kind": "ImageStream", "apiVersion": "image/v1",
        "metadata": {"name": "app", "creationTimestamp": null},
        "status": {"repository": "team/app", "dockerImageRepository": "reg:5000/team/app",
            "tagsContinue": null, "tags": [
            item("a", "2024-01-01T00:00:00Z"),
            item("b", "2024-03-01T00:00:00Z"),
            item("c", "2024-02-01T00:00:00Z"),
            item("d", "2024-02-01T00:00:00Z"),
            item("e", "2024-02-01T00:00:00Z"),
        ]},
    }))
    .unwrap()];
    assert_eq!(
        render_stream_list(&items),
        "NAME   IMAGE REPOSITORY    TAGS             UPDATED\n\
         app    reg:5000/team/app   a,b,c,+ 2 more   2024-03-01T00:00:00Z"
    );
}

#[test]
fn deleted_tags_show_as_deleted() {
    let image = Digest::sha256_of(b"1");
    let t = serde_json::from_value(json!({
        "kind": "ImageStreamTag", "apiVersion": "image/v1",
        "metadata": {"name": "app:v1", "namespace": "team", "creationTimestamp": "T1"},
        "repository": "team/app", "tag": "v1", "image": null, "dockerImageReference": null,
        "updated": "T2", "historyContinue": null,
        "history": [
            {"image": null, "created": "T2", "actor": "alice"},
            {"image": image, "created": "T1", "actor": "ci"},
        ],
    }))
    .unwrap();
    assert_eq!(
        render_tag(&t),
        format!(
            "Tag:        app:v1\n\
             Repository: team/app\n\
             Image:      (deleted)\n\
             Updated:    T2\n\
             \n\
             WHEN   IMAGE{pad}ACTOR\n\
             T2     (deleted){gap}alice\n\
             T1     {image}   ci",
            pad = " ".repeat(image.to_string().len() - 2),
            gap = " ".repeat(image.to_string().len() - 6),
        )
    );
}
