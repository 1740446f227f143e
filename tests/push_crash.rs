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
#[path = "common/mount.rs"]
mod mount;
#[path = "common/s3_env.rs"]
mod s3_env;
#[path = "common/test_database.rs"]
mod test_database;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;

use examples::ServerProcess;
use http_api::{data, digest, Api};
use mount::Mount;
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
    match image.way {
        Way::ShortPut => {
            let location = api.try_start_upload(REPO).await?;
            api.try_finish(&location, image.layer.clone(), &digest(&image.layer))
                .await?;
        }
        Way::LongPost => {
            let path = format!("/v2/{REPO}/blobs/uploads/?digest={}", digest(&image.layer));
            ok(
                api.req(Method::POST, &path)
                    .body(image.layer.clone())
                    .send()
                    .await,
                StatusCode::CREATED,
            )?;
        }
        Way::Chunked => {
            let mut location = api.try_start_upload(REPO).await?;
            let part = image.layer.len().div_ceil(3);
            for (n, chunk) in image.layer.chunks(part).enumerate() {
                let offset = n * part;
                location = api.try_patch(&location, offset, chunk).await?;
            }
            api.try_finish(&location, Vec::new(), &digest(&image.layer))
                .await?;
        }
    }
    let location = api.try_start_upload(REPO).await?;
    api.try_finish(&location, image.config.clone(), &digest(&image.config))
        .await?;
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
    let started = Instant::now();
    let stage = |what: &str| eprintln!("{:>6.1}s {what}", started.elapsed().as_secs_f64());
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = ServerProcess::spawn(command(dir.path()));
    let api = Arc::new(Api::new(&url));
    create_namespace(&api).await;
    stage("pushing");
    let burst = crash::kill_mid_burst(
        &mut server,
        PUSHES,
        CLIENTS,
        |acks, _| acks >= PUSHES / 4,
        pusher(&api),
        || {},
    )
    .await;
    stage("killed the server");
    drop(server);

    let (_server, url) = ServerProcess::spawn(command(dir.path()));
    stage("restarted");
    let api = Api::new(&url);
    let acknowledged: HashSet<usize> = burst.acknowledged.keys().copied().collect();
    check_after(&api, PUSHES, &acknowledged).await;
    stage(&format!("{} acknowledged, all whole", acknowledged.len()));

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

/// The machine loses power in the middle of a burst. The data directory is
/// on an ext4 file system without a journal (as on the benchmark machine)
/// in an image file mounted through a loop device; the disk after the power
/// loss is a copy of that image taken while the server is stopped
/// (SIGSTOP): it holds what was synced and whatever the kernel happened to
/// write back, and not what was only in the page cache. The copy is
/// repaired with `e2fsck`, as a boot after a power loss does, mounted and
/// served. An image acknowledged at least two seconds before the cut must
/// be there whole (its blobs were synced before their `PUT`s were answered,
/// and the metadata's log is synced every half second); anything else must
/// be absent or whole. Needs root for the mounts, so it runs only with
/// `REGISTRY_TEST_POWER_LOSS=1` (`.ci/run` sets it).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pushes_acknowledged_before_a_power_loss_survive_it() {
    if std::env::var_os("REGISTRY_TEST_POWER_LOSS").is_none_or(|v| v != "1") {
        eprintln!(
            "skipped pushes_acknowledged_before_a_power_loss_survive_it: \
             REGISTRY_TEST_POWER_LOSS is not 1 (it needs root for loop mounts; .ci/run sets it)"
        );
        return;
    }
    const POWER_LOSS_PUSHES: usize = 600;
    const CUT_AT_THE_LATEST: Duration = Duration::from_secs(8);
    // Four times the interval of the metadata log's syncs.
    const SETTLED: Duration = Duration::from_secs(2);
    let started = Instant::now();
    let stage = |what: &str| eprintln!("{:>6.1}s {what}", started.elapsed().as_secs_f64());
    let work = tempfile::tempdir().unwrap();
    let disk = work.path().join("disk.img");
    std::fs::File::create(&disk)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    run(Command::new("mkfs.ext4")
        .args(["-q", "-F", "-O", "^has_journal"])
        .arg(&disk));
    let mounted = loop_mount(&disk, &work.path().join("disk"));
    let (mut server, url) = ServerProcess::spawn(fsync_server(mounted.dir(), &[]));
    let api = Arc::new(Api::new(&url));
    create_namespace(&api).await;
    stage("pushing");
    let after = work.path().join("after-power-loss.img");
    let copy = || {
        run(Command::new("cp")
            .arg("--sparse=always")
            .arg(&disk)
            .arg(&after))
    };
    let burst = crash::kill_mid_burst(
        &mut server,
        POWER_LOSS_PUSHES,
        CLIENTS,
        |acks, elapsed| acks >= POWER_LOSS_PUSHES * 2 / 3 || elapsed >= CUT_AT_THE_LATEST,
        pusher(&api),
        copy,
    )
    .await;
    stage("power lost");
    drop(server);
    drop(mounted);

    let fsck = Command::new("e2fsck")
        .args(["-f", "-y"])
        .arg(&after)
        .output()
        .expect("running e2fsck");
    assert!(
        matches!(fsck.status.code(), Some(0 | 1)),
        "e2fsck left errors ({}):\n{}",
        fsck.status,
        String::from_utf8_lossy(&fsck.stdout)
    );
    let mounted = loop_mount(&after, &work.path().join("after"));
    let (_server, url) = ServerProcess::spawn(fsync_server(mounted.dir(), &[]));
    stage("restarted on the disk as the power loss left it");
    let settled: HashSet<usize> = burst
        .acknowledged
        .iter()
        .filter(|(_, at)| **at + SETTLED <= burst.cut)
        .map(|(i, _)| *i)
        .collect();
    assert!(
        !settled.is_empty(),
        "no push was acknowledged {SETTLED:?} before the cut"
    );
    check_after(&Api::new(&url), POWER_LOSS_PUSHES, &settled).await;
    stage(&format!(
        "{} acknowledged, {} of them {SETTLED:?} before the cut, all whole",
        burst.acknowledged.len(),
        settled.len()
    ));
}

async fn create_namespace(api: &Api) {
    api.json(
        Method::POST,
        "/apis/admin/v1/namespaces",
        Some(json!({"name": "team"})),
    )
    .await;
}

/// Pushes image `i` (made on the spot) through `api`: whether it was
/// acknowledged.
fn pusher(api: &Arc<Api>) -> impl Fn(usize) -> BoxFuture<'static, bool> + Send + Sync + 'static {
    let api = api.clone();
    move |i| {
        let api = api.clone();
        Box::pin(async move { push(&api, i, &Image::new(i)).await.is_ok() })
    }
}

/// Checks images `0..pushes` on a restarted server: those in `must_survive`
/// are there whole; every other blob and manifest is absent or whole, and a
/// manifest that is there has both its blobs.
async fn check_after(api: &Api, pushes: usize, must_survive: &HashSet<usize>) {
    for i in 0..pushes {
        let image = Image::new(i);
        let must = must_survive.contains(&i);
        let mut present = 0;
        for (what, bytes) in [("layer", &image.layer), ("config", &image.config)] {
            match blob_after(api, bytes).await {
                Some(body) => {
                    assert!(
                        body == *bytes,
                        "image {i} ({:?}): its {what} is not whole",
                        image.way
                    );
                    present += 1;
                }
                None => assert!(!must, "image {i} ({:?}) lost its {what}", image.way),
            }
        }
        match manifest_after(api, i).await {
            Some(body) => {
                assert!(
                    body == image.manifest,
                    "image {i}: its manifest is not whole"
                );
                assert_eq!(present, 2, "image {i}'s manifest is there, a blob is not");
            }
            None => assert!(!must, "acknowledged image {i} is gone"),
        }
    }
}

/// Runs `command`, which must succeed.
fn run(command: &mut Command) {
    let output = command.output().expect("starting a command");
    assert!(
        output.status.success(),
        "{command:?}: {}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The file system in `image` mounted on `dir` through a loop device.
fn loop_mount(image: &Path, dir: &Path) -> Mount {
    std::fs::create_dir_all(dir).unwrap();
    Mount::new(
        &[OsStr::new("-o"), OsStr::new("loop"), image.as_os_str()],
        dir,
    )
    .unwrap()
}
