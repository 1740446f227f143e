//! Filesystem upload sessions under abuse and crashes: ids that do not
//! exist, a push killed mid-`PATCH`, temp files of killed pushes, and
//! idle expiry.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use registry_core::{Digest, RepositoryName};
use registry_storage::filesystem::{Durability, FsBlobStore, FsUploadStore};
use registry_storage::memory::MemoryMetadataStore;
use registry_storage::testing::{body_of, test_data};
use registry_storage::upload::expire_idle;
use registry_storage::{collect_garbage, BlobStore, ByteStream, GcOptions, UploadId, UploadStore};

fn repo() -> RepositoryName {
    "team/app".parse().unwrap()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

fn stores(root: &Path) -> (FsBlobStore, FsUploadStore) {
    let blobs = FsBlobStore::with_durability(root, Durability::None).unwrap();
    let uploads = FsUploadStore::new(root, blobs.clone()).unwrap();
    (blobs, uploads)
}

/// Makes `path` look last written `age` ago.
fn age(path: &Path, age: Duration) {
    let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

/// `chunk`, then nothing ever again.
fn stalling_body(chunk: Bytes) -> ByteStream {
    futures::stream::once(async move { Ok(chunk) })
        .chain(futures::stream::pending())
        .boxed()
}

/// Asking about ids that never existed keeps no memory per id (it kept a
/// lock and hash-cache entry for each, for ever); ended sessions leave none
/// either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_upload_ids_leave_no_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (_blobs, uploads) = stores(dir.path());
    for _ in 0..200 {
        let id = UploadId::random();
        assert!(uploads.status(&id).await.is_err());
    }
    assert_eq!(uploads.cached_sessions(), 0, "an entry per unknown id");
    for _ in 0..20 {
        let id = UploadId::random();
        assert!(uploads.append(&id, 0, body_of(b"x", 1)).await.is_err());
        assert!(uploads.commit(&id, &Digest::sha256_of(b"")).await.is_err());
        assert!(uploads.cancel(&id).await.is_err());
    }
    assert_eq!(uploads.cached_sessions(), 0);

    let session = uploads.create(&repo()).await.unwrap();
    uploads
        .append(&session.id, 0, body_of(b"abc", 1))
        .await
        .unwrap();
    assert_eq!(uploads.cached_sessions(), 1);
    uploads.cancel(&session.id).await.unwrap();
    assert_eq!(uploads.cached_sessions(), 0);
}

/// Per-owner counts survive a restart (rebuilt from the session state).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_counts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (_blobs, uploads) = stores(dir.path());
    for _ in 0..3 {
        uploads.create_for(&repo(), Some("alice")).await.unwrap();
    }
    drop(uploads);
    let (_blobs, uploads) = stores(dir.path());
    assert_eq!(uploads.open_sessions("alice").await.unwrap(), 3);
    let report = expire_idle(&uploads, Duration::ZERO).await.unwrap();
    assert_eq!(report.expired, 3);
    assert_eq!(uploads.open_sessions("alice").await.unwrap(), 0);
}

/// Idle expiry looks at the last byte received, not at the start time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_expiry_looks_at_the_last_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (_blobs, uploads) = stores(dir.path());
    let idle = uploads.create(&repo()).await.unwrap();
    let busy = uploads.create(&repo()).await.unwrap();
    let hour = Duration::from_secs(3600);
    for id in [&idle.id, &busy.id] {
        let session = dir.path().join("uploads").join(id.as_str());
        age(&session.join("data"), 2 * hour);
        // Started long ago too (idle time never counts from before the start).
        let state = std::fs::read_to_string(session.join("state.json")).unwrap();
        let mut state: serde_json::Value = serde_json::from_str(&state).unwrap();
        state["started"] = "2020-01-01T00:00:00Z".into();
        std::fs::write(session.join("state.json"), state.to_string()).unwrap();
    }
    uploads
        .append(&busy.id, 0, body_of(b"fresh", 2))
        .await
        .unwrap();
    let report = expire_idle(&uploads, hour).await.unwrap();
    assert_eq!(report.expired, 1);
    assert!(uploads.status(&idle.id).await.is_err());
    assert_eq!(uploads.status(&busy.id).await.unwrap().offset, 5);
}

/// Temp files of a killed push are removed by prune (and by the periodic
/// sweep, which calls the same `remove_stale_files`) without a restart;
/// a put in progress keeps its temp file however old it looks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_removes_stale_temp_files_but_not_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (blobs, uploads) = stores(dir.path());
    let tmp = dir.path().join("tmp");
    // What a killed process left.
    let dead = tmp.join("0123456789abcdef0123456789abcdef");
    std::fs::write(&dead, b"half a layer").unwrap();
    age(&dead, Duration::from_secs(2 * 3600));

    // A put in progress, its body stalled; its temp file aged too.
    let data = test_data(300_000, 3);
    let digest = Digest::sha256_of(&data);
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let body = futures::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) },
    )
    .boxed();
    let put = {
        let blobs = blobs.clone();
        let digest = digest.clone();
        tokio::spawn(async move { blobs.put(&digest, body).await })
    };
    tx.send(Bytes::copy_from_slice(&data[..200_000]))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let live = loop {
        if let Some(live) = entries(&tmp).into_iter().find(|p| p != &dead) {
            break live;
        }
        assert!(Instant::now() < deadline, "the put made no temp file");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    age(&live, Duration::from_secs(2 * 3600));

    let metadata = MemoryMetadataStore::default();
    let report = collect_garbage(&blobs, &uploads, &metadata, GcOptions::default())
        .await
        .unwrap();
    assert_eq!(report.stale_files_removed, 1);
    assert_eq!(entries(&tmp), vec![live.clone()], "only the dead file goes");

    tx.send(Bytes::copy_from_slice(&data[200_000..]))
        .await
        .unwrap();
    drop(tx);
    put.await.unwrap().unwrap();
    assert!(blobs.stat(&digest).await.unwrap().is_some());
    assert!(entries(&tmp).is_empty());
}

/// Set in the child process of `killed_patch_reports_only_acknowledged_bytes`.
const KILL_PATCH_ROOT: &str = "REGISTRY_STORAGE_KILL_PATCH_ROOT";

/// Bytes acknowledged before the killed append.
const ACKED: usize = 1000;

/// Does nothing in a normal run. In the child process it appends
/// `ACKED` bytes (acknowledged), then starts an append that writes 512 KiB
/// and stalls until the process is killed.
#[test]
fn kill_patch_child() {
    let Ok(root) = std::env::var(KILL_PATCH_ROOT) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (_blobs, uploads) = stores(Path::new(&root));
        let session = uploads.create(&repo()).await.unwrap();
        let data = test_data(ACKED, 1);
        uploads
            .append(&session.id, 0, body_of(&data, 100))
            .await
            .unwrap();
        let unacked = Bytes::from(vec![9u8; 512 * 1024]);
        let result = uploads
            .append(&session.id, ACKED as u64, stalling_body(unacked))
            .await;
        panic!("a stalled append ended: {result:?}");
    });
}

/// After kill -9 in the middle of an append, the session reports (and
/// holds) only the bytes that were acknowledged: it used to report the
/// length of its data file, unacknowledged bytes included.
#[test]
fn killed_patch_reports_only_acknowledged_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let uploads_dir = dir.path().join("uploads");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "kill_patch_child",
            "--exact",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(KILL_PATCH_ROOT, dir.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let data_file = loop {
        let written = entries(&uploads_dir)
            .into_iter()
            .map(|d| d.join("data"))
            .find(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > ACKED as u64));
        if let Some(path) = written {
            break path;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the writer exited early: {status}");
        }
        assert!(Instant::now() < deadline, "the writer wrote nothing");
        std::thread::sleep(Duration::from_millis(10));
    };
    child.kill().unwrap(); // SIGKILL: no destructor runs.
    child.wait().unwrap();
    let id: UploadId = data_file
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (blobs, uploads) = stores(dir.path());
        let status = uploads.status(&id).await.unwrap();
        assert_eq!(status.offset, ACKED as u64, "unacknowledged bytes reported");
        assert_eq!(std::fs::metadata(&data_file).unwrap().len(), ACKED as u64);
        // The client continues where it was acknowledged, and the blob is right.
        let mut data = test_data(ACKED, 1);
        let rest = test_data(5000, 2);
        uploads
            .append(&id, ACKED as u64, body_of(&rest, 700))
            .await
            .unwrap();
        data.extend_from_slice(&rest);
        let digest = Digest::sha256_of(&data);
        uploads.commit(&id, &digest).await.unwrap();
        assert_eq!(
            blobs.stat(&digest).await.unwrap().unwrap().size,
            data.len() as u64
        );
    });
}

/// Stalled uploads hold no blocking thread: with a pool of 4 threads and
/// 32 puts and appends whose bodies stall after their first bytes, a pull,
/// a new put and an upload status still answer (each stalled upload used to
/// hold a thread waiting for the network, so everything else hung).
#[test]
fn stalled_uploads_hold_no_thread() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (blobs, uploads) = stores(dir.path());
        let kept = Digest::sha256_of(b"kept");
        blobs.put(&kept, body_of(b"kept", 2)).await.unwrap();
        let first = Bytes::from(vec![1u8; 300 * 1024]);
        let mut stalled = Vec::new();
        let everything = async {
            for i in 0..16u32 {
                let blobs = blobs.clone();
                let body = stalling_body(first.clone());
                let digest = Digest::sha256_of(&i.to_be_bytes());
                stalled.push(tokio::spawn(async move {
                    blobs.put(&digest, body).await.map(drop)
                }));
                let uploads = uploads.clone();
                let session = uploads.create(&repo()).await.unwrap();
                let body = stalling_body(first.clone());
                stalled.push(tokio::spawn(async move {
                    uploads.append(&session.id, 0, body).await.map(drop)
                }));
            }
            // Let every stalled upload write its first bytes and start waiting.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let body = blobs.get(&kept, None).await.unwrap();
            let read: Vec<Bytes> = body.stream.map(|c| c.unwrap()).collect().await;
            assert_eq!(read.concat(), b"kept");
            let fresh = Digest::sha256_of(b"fresh");
            blobs.put(&fresh, body_of(b"fresh", 2)).await.unwrap();
            let session = uploads.create(&repo()).await.unwrap();
            uploads
                .append(&session.id, 0, body_of(b"abc", 1))
                .await
                .unwrap();
            assert_eq!(uploads.status(&session.id).await.unwrap().offset, 3);
        };
        let answered = tokio::time::timeout(Duration::from_secs(20), everything).await;
        for task in stalled {
            task.abort();
        }
        answered.expect("pulls and pushes hung behind stalled uploads");
    });
}
