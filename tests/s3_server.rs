//! `registry-server --storage s3` against a real S3 server (Garage in CI):
//! a push with monolithic and chunked blobs, pulls by tag and digest with
//! ranges, a chunked upload that continues across a SIGKILL and restart
//! (its state is in the database, its bytes in the bucket), and the start
//! refused with a clear message when the bucket cannot be used.
//!
//! Needs the `REGISTRY_TEST_S3_*` variables of `bash .ci/services.sh
//! start`; without them each test says it was skipped and passes.
#![cfg(unix)]

#[path = "common/examples.rs"]
mod examples;

use std::time::Duration;

use examples::{ServerProcess, ADMIN_PASSWORD};
use reqwest::{Method, StatusCode};
use serde_json::json;

struct S3 {
    endpoint: String,
    region: String,
    bucket: String,
    key_id: String,
    secret: String,
}

fn s3(test: &str) -> Option<S3> {
    let var = |name: &str| std::env::var(format!("REGISTRY_TEST_S3_{name}")).ok();
    let Some(endpoint) = var("ENDPOINT") else {
        eprintln!("skipped {test}: REGISTRY_TEST_S3_ENDPOINT is not set (bash .ci/services.sh start sets it)");
        return None;
    };
    Some(S3 {
        endpoint,
        region: var("REGION").unwrap_or_else(|| "garage".into()),
        bucket: var("BUCKET").expect("REGISTRY_TEST_S3_BUCKET"),
        key_id: var("ACCESS_KEY_ID").expect("REGISTRY_TEST_S3_ACCESS_KEY_ID"),
        secret: var("SECRET_ACCESS_KEY").expect("REGISTRY_TEST_S3_SECRET_ACCESS_KEY"),
    })
}

/// The server over the bucket under `prefix`, its database in `dir`.
fn server(dir: &std::path::Path, s3: &S3, bucket: &str, prefix: &str) -> std::process::Command {
    let mut command = ServerProcess::command(
        dir,
        &[
            "--storage",
            "s3",
            "--s3-endpoint",
            &s3.endpoint,
            "--s3-region",
            &s3.region,
            "--s3-bucket",
            bucket,
            "--s3-prefix",
            prefix,
        ],
    );
    command
        .env("AWS_ACCESS_KEY_ID", &s3.key_id)
        .env("AWS_SECRET_ACCESS_KEY", &s3.secret);
    command
}

fn digest(data: &[u8]) -> String {
    registry::core::Digest::sha256_of(data).to_string()
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u64 * 2_654_435_761) >> 7) as u8 ^ seed)
        .collect()
}

struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    fn new(url: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            url: url.trim_end_matches('/').to_owned(),
        }
    }

    fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.url)
        };
        self.http
            .request(method, url)
            .basic_auth("admin", Some(ADMIN_PASSWORD))
    }

    /// POST a session: its `Location`.
    async fn start_upload(&self, repo: &str) -> String {
        let r = self
            .req(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        r.headers()["location"].to_str().unwrap().to_owned()
    }

    /// PATCH one chunk at `offset`: the next `Location`.
    async fn patch(&self, location: &str, offset: usize, chunk: &[u8]) -> String {
        let r = self
            .req(Method::PATCH, location)
            .header("content-type", "application/octet-stream")
            .header(
                "content-range",
                format!("{offset}-{}", offset + chunk.len() - 1),
            )
            .body(chunk.to_vec())
            .send()
            .await
            .unwrap();
        let status = r.status();
        let next = r.headers().get("location").cloned();
        assert_eq!(status, StatusCode::ACCEPTED, "{}", r.text().await.unwrap());
        next.unwrap().to_str().unwrap().to_owned()
    }

    async fn finish(&self, location: &str, blob: &[u8]) {
        let sep = if location.contains('?') { '&' } else { '?' };
        let r = self
            .req(
                Method::PUT,
                &format!("{location}{sep}digest={}", digest(blob)),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
    }

    async fn get(&self, path: &str, range: Option<&str>) -> (StatusCode, Vec<u8>) {
        let mut req = self.req(Method::GET, path);
        if let Some(range) = range {
            req = req.header("range", range);
        }
        let r = req.send().await.unwrap();
        (r.status(), r.bytes().await.unwrap().to_vec())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_pull_and_resume_across_a_restart() {
    let Some(s3) = s3("push_pull_and_resume_across_a_restart") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("server-{}", uuid_like());
    let (mut first, url) = ServerProcess::spawn(server(dir.path(), &s3, &s3.bucket, &prefix));
    let api = Api::new(&url);

    // A config pushed in one request, a 12 MiB layer in three PATCHes
    // (parts of 8 MiB and a tail kept in the bucket between requests).
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let r = api
        .req(
            Method::POST,
            &format!("/v2/team/app/blobs/uploads/?digest={}", digest(&config)),
        )
        .body(config.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let layer = data(12 << 20, 3);
    let mut location = api.start_upload("team/app").await;
    for (i, chunk) in layer.chunks(4 << 20).enumerate() {
        location = api.patch(&location, i * (4 << 20), chunk).await;
    }
    api.finish(&location, &layer).await;
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest(&layer), "size": layer.len()}],
    }))
    .unwrap();
    let r = api
        .req(Method::PUT, "/v2/team/app/manifests/v1")
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(manifest.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::CREATED,
        "{}",
        r.text().await.unwrap()
    );

    let (status, body) = api.get("/v2/team/app/manifests/v1", None).await;
    assert_eq!((status, body), (StatusCode::OK, manifest));
    let blob_path = format!("/v2/team/app/blobs/{}", digest(&layer));
    let (status, body) = api.get(&blob_path, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == layer, "pulled layer differs");
    let (status, body) = api.get(&blob_path, Some("bytes=8388600-8388615")).await;
    assert_eq!(status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(body, layer[8_388_600..8_388_616]);

    // A chunked upload acknowledged in part, then SIGKILL: the restarted
    // server (same database, same bucket) continues it.
    let second = data(6 << 20, 9);
    let location = api.start_upload("team/app").await;
    let location = api.patch(&location, 0, &second[..3 << 20]).await;
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    drop(first);
    let (_second_server, url) = ServerProcess::spawn(server(dir.path(), &s3, &s3.bucket, &prefix));
    let api = Api::new(&url);
    let path = location
        .split_once("/v2/")
        .map(|(_, p)| format!("/v2/{p}"))
        .unwrap();
    let r = api.req(Method::GET, &path).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        r.headers()["range"],
        format!("0-{}", (3 << 20) - 1).as_str()
    );
    let path = api.patch(&path, 3 << 20, &second[3 << 20..]).await;
    api.finish(&path, &second).await;
    let (status, body) = api
        .get(&format!("/v2/team/app/blobs/{}", digest(&second)), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == second, "resumed blob differs");
}

#[tokio::test]
async fn a_bucket_that_cannot_be_used_stops_the_start() {
    let Some(s3) = s3("a_bucket_that_cannot_be_used_stops_the_start") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let output = server(dir.path(), &s3, "no-such-bucket", "x")
        .output()
        .expect("running registry-server");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot use S3 bucket no-such-bucket"),
        "stderr: {stderr}"
    );
}

fn uuid_like() -> String {
    registry::storage::UploadId::random().to_string()
}
