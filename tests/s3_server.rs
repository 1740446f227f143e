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
#[path = "common/http_api.rs"]
mod http_api;
#[path = "common/s3_env.rs"]
mod s3_env;

use examples::ServerProcess;
use http_api::{data, digest, Api};
use reqwest::{Method, StatusCode};
use s3_env::{s3, server};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_pull_and_resume_across_a_restart() {
    let Some(s3) = s3("push_pull_and_resume_across_a_restart") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("server-{}", uuid_like());
    let (mut first, url) = ServerProcess::spawn(server(dir.path(), &s3, &s3.bucket, &prefix, &[]));
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
    let (_second_server, url) =
        ServerProcess::spawn(server(dir.path(), &s3, &s3.bucket, &prefix, &[]));
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
    let output = server(dir.path(), &s3, "no-such-bucket", "x", &[])
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
