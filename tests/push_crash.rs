//! Every acknowledged push survives `kill -9`, and nothing half-pushed
//! shows: `registry-server`, with its default durability (`fsync`), is
//! killed with SIGKILL while clients push distinct images, restarted on the
//! same data directory, and then
//! - every image whose manifest `PUT` was answered pulls back whole: the
//!   manifest by tag, byte for byte, and each of its blobs;
//! - every blob or manifest of an unanswered push is either absent or
//!   whole.
//!
//! Each image has a layer and a config of its own, and the layers arrive in
//! the three ways the server stores differently: a short body in a session's
//! final `PUT` (kept in memory and written when it is published), a long
//! one-step `POST` (written as it arrives) and a chunked session (`PATCH`es,
//! then an empty `PUT`). Blobs in the data directory with metadata in
//! SQLite; and, when the test services are there, metadata in PostgreSQL
//! (`REGISTRY_TEST_DATABASE_URL`), and blobs in S3 with PostgreSQL
//! (`REGISTRY_TEST_S3_*` too), the replicated setup. A power loss cutting a
//! staged file short is covered in the storage tests
//! (`filesystem_uploads.rs`).
#![cfg(unix)]

#[path = "common/crash.rs"]
mod crash;
#[path = "common/examples.rs"]
mod examples;
#[path = "common/http_api.rs"]
mod http_api;
#[path = "common/s3_env.rs"]
mod s3_env;
#[path = "common/test_database.rs"]
mod test_database;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use examples::ServerProcess;
use http_api::{data, digest, Api};
use reqwest::{Method, StatusCode};
use serde_json::json;

const PUSHES: usize = 240;
const CLIENTS: usize = 8;
const REPO: &str = "team/app";
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";

/// How image `i`'s layer is pushed.
#[derive(Clone, Copy, Debug)]
enum Way {
    /// `POST` a session, `PUT` the whole (short) body with the digest.
    ShortPut,
    /// One `POST` with the digest and a body longer than a write batch.
    LongPost,
    /// `POST`, three `PATCH`es, an empty `PUT` with the digest.
    Chunked,
}

/// What image `i` consists of.
struct Image {
    way: Way,
    layer: Vec<u8>,
    config: Vec<u8>,
    manifest: Vec<u8>,
}

impl Image {
    fn new(i: usize) -> Self {
        let (way, len) = match i % 3 {
            0 => (Way::ShortPut, 3 * 1024),
            1 => (Way::LongPost, 600 * 1024),
            _ => (Way::Chunked, 3 * 100 * 1024),
        };
        let mut layer = format!("layer of image {i}\n").into_bytes();
        layer.extend(data(len, i as u8));
        let config = format!("{{\"image\":{i}}}").into_bytes();
        let manifest = serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST_TYPE,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": digest(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": digest(&layer), "size": layer.len()}],
        }))
        .unwrap();
        Image {
            way,
            layer,
            config,
            manifest,
        }
    }
}

/// Fails (instead of panicking) on any error: the server may die mid-push.
async fn push(api: &Api, i: usize, image: &Image) -> Result<(), String> {
    let ok = |r: reqwest::Result<reqwest::Response>, want: StatusCode| {
        let r = r.map_err(|e| e.to_string())?;
        if r.status() == want {
            Ok(r)
        } else {
            Err(format!("image {i}: {} instead of {want}", r.status()))
        }
    };
    let uploads = format!("/v2/{REPO}/blobs/uploads/");
    let start = || async {
        let r = ok(
            api.req(Method::POST, &uploads).send().await,
            StatusCode::ACCEPTED,
        )?;
        Ok::<_, String>(r.headers()["location"].to_str().unwrap().to_owned())
    };
    let finish = |location: String, body: Vec<u8>, digest: String| async move {
        let sep = if location.contains('?') { '&' } else { '?' };
        ok(
            api.req(Method::PUT, &format!("{location}{sep}digest={digest}"))
                .body(body)
                .send()
                .await,
            StatusCode::CREATED,
        )
        .map(drop)
    };
    match image.way {
        Way::ShortPut => {
            let location = start().await?;
            finish(location, image.layer.clone(), digest(&image.layer)).await?;
        }
        Way::LongPost => {
            let path = format!("{uploads}?digest={}", digest(&image.layer));
            ok(
                api.req(Method::POST, &path)
                    .body(image.layer.clone())
                    .send()
                    .await,
                StatusCode::CREATED,
            )?;
        }
        Way::Chunked => {
            let mut location = start().await?;
            let part = image.layer.len().div_ceil(3);
            for (n, chunk) in image.layer.chunks(part).enumerate() {
                let offset = n * part;
                location = api.try_patch(&location, offset, chunk).await?;
            }
            finish(location, Vec::new(), digest(&image.layer)).await?;
        }
    }
    let location = start().await?;
    finish(location, image.config.clone(), digest(&image.config)).await?;
    ok(
        api.req(Method::PUT, &format!("/v2/{REPO}/manifests/t{i}"))
            .header("content-type", MANIFEST_TYPE)
            .body(image.manifest.clone())
            .send()
            .await,
        StatusCode::CREATED,
    )
    .map(drop)
}

/// A blob of the restarted server: `None` when absent, else its bytes
/// (which the caller compares).
async fn blob_after(api: &Api, bytes: &[u8]) -> Option<Vec<u8>> {
    let (status, body) = api
        .get(&format!("/v2/{REPO}/blobs/{}", digest(bytes)), None)
        .await;
    match status {
        StatusCode::OK => Some(body),
        StatusCode::NOT_FOUND => None,
        other => panic!("GET blob {}: {other}", digest(bytes)),
    }
}

async fn manifest_after(api: &Api, i: usize) -> Option<Vec<u8>> {
    let r = api
        .req(Method::GET, &format!("/v2/{REPO}/manifests/t{i}"))
        .header("accept", MANIFEST_TYPE)
        .send()
        .await
        .unwrap();
    match r.status() {
        StatusCode::OK => Some(r.bytes().await.unwrap().to_vec()),
        StatusCode::NOT_FOUND => None,
        other => panic!("GET manifest t{i}: {other}"),
    }
}

/// The server on `dir` with `--durability fsync` and `extra` arguments.
fn fsync_server(dir: &Path, extra: &[&str]) -> Command {
    let mut args = vec!["--durability", "fsync"];
    args.extend_from_slice(extra);
    ServerProcess::command(dir, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_pushes_survive_sigkill_sqlite() {
    crash_and_check(|dir| fsync_server(dir, &[])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_pushes_survive_sigkill_postgres() {
    let Some((url, _server, _name)) = test_database::test_database("push_crash postgres").await
    else {
        return;
    };
    crash_and_check(|dir| fsync_server(dir, &["--database-url", &url])).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_pushes_survive_sigkill_s3_postgres() {
    let Some(s3) = s3_env::s3("push_crash s3") else {
        return;
    };
    let Some((url, _server, _name)) = test_database::test_database("push_crash s3").await else {
        return;
    };
    let prefix = format!("push-crash-{}", registry::storage::UploadId::random());
    crash_and_check(|dir| s3_env::server(dir, &s3, &s3.bucket, &prefix, &["--database-url", &url]))
        .await;
}

/// Pushes to the server `command` starts on a directory, kills it,
/// restarts it on the same directory and checks what is left.
async fn crash_and_check(command: impl Fn(&Path) -> Command) {
    let started = std::time::Instant::now();
    let stage = |what: &str| eprintln!("{:>6.1}s {what}", started.elapsed().as_secs_f64());
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = ServerProcess::spawn(command(dir.path()));
    let api = Arc::new(Api::new(&url));
    api.json(
        Method::POST,
        "/apis/admin/v1/namespaces",
        Some(json!({"name": "team"})),
    )
    .await;
    let images: Arc<Vec<Image>> = Arc::new((0..PUSHES).map(Image::new).collect());
    stage("pushing");

    let (pusher, pushed) = (api.clone(), images.clone());
    let acknowledged = crash::kill_mid_burst(&mut server, PUSHES, CLIENTS, PUSHES / 4, move |i| {
        let (api, images) = (pusher.clone(), pushed.clone());
        async move { push(&api, i, &images[i]).await.is_ok() }
    })
    .await;
    stage("killed the server");
    drop(server);

    let (_server, url) = ServerProcess::spawn(command(dir.path()));
    stage("restarted");
    let api = Api::new(&url);
    let (mut whole, mut absent) = (0, 0);
    for (i, image) in images.iter().enumerate() {
        let blobs = [("layer", &image.layer), ("config", &image.config)];
        let mut present = Vec::new();
        for (what, bytes) in blobs {
            match blob_after(&api, bytes).await {
                Some(body) => {
                    assert!(
                        body == *bytes,
                        "image {i} ({:?}): its {what} is not whole",
                        image.way
                    );
                    present.push(what);
                }
                None => assert!(
                    !acknowledged.contains(&i),
                    "acknowledged image {i} ({:?}) lost its {what}",
                    image.way
                ),
            }
        }
        match manifest_after(&api, i).await {
            Some(body) => {
                assert!(
                    body == image.manifest,
                    "image {i}: its manifest is not whole"
                );
                assert_eq!(
                    present.len(),
                    2,
                    "image {i}'s manifest is there, a blob is not"
                );
                whole += 1;
            }
            None => {
                assert!(!acknowledged.contains(&i), "acknowledged image {i} is gone");
                absent += 1;
            }
        }
    }
    stage(&format!(
        "{} acknowledged, {whole} whole after the restart, {absent} absent",
        acknowledged.len()
    ));

    // The restarted server takes pushes again, into the same repository.
    let again = Image::new(PUSHES);
    push(&api, PUSHES, &again)
        .await
        .expect("a push after the restart");
    assert_eq!(
        manifest_after(&api, PUSHES).await.as_deref(),
        Some(&again.manifest[..])
    );
}
