//! Filesystem upload sessions (state in the data directory's SQLite
//! database) under abuse and crashes: ids that do not exist, a push killed
//! mid-`PATCH`, temp files of killed pushes, and idle expiry.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures::StreamExt;
use registry_core::{Digest, RepositoryName};
use registry_storage::filesystem::{Durability, FsBlobStore, FsUploadStore};
use registry_storage::memory::MemoryMetadataStore;
use registry_storage::sqlite::SqliteMetadataStore;
use registry_storage::testing::{body_of, test_data};
use registry_storage::upload::expire_idle;
use registry_storage::{
    collect_garbage, BlobStore, ByteStream, GcOptions, SessionOwner, UploadId, UploadStore,
};

fn repo() -> RepositoryName {
    "team/app".parse().unwrap()
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// The stores `Stores::data_dir` builds, without the metadata cache.
async fn stores(root: &Path) -> (FsBlobStore, FsUploadStore) {
    let blobs = FsBlobStore::with_durability(root, Durability::None).unwrap();
    let sessions = SqliteMetadataStore::open(root.join("registry.db"))
        .await
        .unwrap();
    let uploads = FsUploadStore::for_blobs(&blobs, std::sync::Arc::new(sessions));
    (blobs, uploads)
}

/// Makes `path` look last written `age` ago.
fn age(path: &Path, age: Duration) {
    // Read-only, so that directories can be aged too (the owner may set
    // times through any descriptor).
    let file = std::fs::File::open(path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

/// `chunk`, then nothing ever again.
fn stalling_body(chunk: Bytes) -> ByteStream {
    futures::stream::once(async move { Ok(chunk) })
        .chain(futures::stream::pending())
        .boxed()
}

/// Asking about ids that never existed keeps no memory per id; a session
/// holds a lock entry only while a request on it is in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_upload_ids_leave_no_entry() {
    let dir = tempfile::tempdir().unwrap();
    let (_blobs, uploads) = stores(dir.path()).await;
    for _ in 0..200 {
        let id = UploadId::random();
        assert!(uploads.status(&id).await.is_err());
        assert!(uploads.append(&id, 0, body_of(b"x", 1)).await.is_err());
        assert!(uploads.commit(&id, &Digest::sha256_of(b"")).await.is_err());
        assert!(uploads.cancel(&id).await.is_err());
    }
    assert_eq!(uploads.sessions_in_flight(), 0, "an entry per unknown id");

    let session = uploads.create(&repo()).await.unwrap();
    let stalled = {
        let uploads = uploads.clone();
        let id = session.id.clone();
        tokio::spawn(async move {
            uploads
                .append(&id, 0, stalling_body(Bytes::from_static(b"abc")))
                .await
        })
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while uploads.sessions_in_flight() == 0 {
        assert!(Instant::now() < deadline, "the append never started");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stalled.abort();
    assert!(stalled.await.unwrap_err().is_cancelled());
    assert_eq!(
        uploads.sessions_in_flight(),
        0,
        "the dropped append's entry"
    );
    uploads
        .append(&session.id, 0, body_of(b"abc", 1))
        .await
        .unwrap();
    uploads.cancel(&session.id).await.unwrap();
    assert_eq!(uploads.sessions_in_flight(), 0);
}

/// Two appends at one offset of one session in one process take turns: the
/// second is refused, and the bytes committed are the first one's (both
/// used to write into the session's file at once, so the stored bytes
/// could differ from the hashed ones).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_appends_cannot_mix_their_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (blobs, uploads) = stores(dir.path()).await;
    let session = uploads.create(&repo()).await.unwrap();
    let a = test_data(2 << 20, 7);
    let b = test_data(2 << 20, 8);
    let (ra, rb) = tokio::join!(
        uploads.append(&session.id, 0, body_of(&a, 4096)),
        uploads.append(&session.id, 0, body_of(&b, 4096)),
    );
    let won = match (ra, rb) {
        (Ok(_), Err(registry_storage::StorageError::InvalidOffset { .. })) => a,
        (Err(registry_storage::StorageError::InvalidOffset { .. }), Ok(_)) => b,
        other => panic!("one append must win, the other be refused: {other:?}"),
    };
    let digest = Digest::sha256_of(&won);
    uploads.commit(&session.id, &digest).await.unwrap();
    let body = blobs.get(&digest, None).await.unwrap();
    let read: Vec<Bytes> = body.stream.map(|c| c.unwrap()).collect().await;
    assert!(
        read.concat() == won,
        "the published bytes are not the hashed ones"
    );
}

/// Per-owner counts survive a restart (rebuilt from the session state).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_counts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (_blobs, uploads) = stores(dir.path()).await;
    for _ in 0..3 {
        uploads
            .create_for(&repo(), Some(SessionOwner::new("alice")), None)
            .await
            .unwrap();
    }
    drop(uploads);
    let (_blobs, uploads) = stores(dir.path()).await;
    assert_eq!(uploads.open_sessions("alice").await.unwrap(), 3);
    let report = expire_idle(&uploads, Duration::ZERO).await.unwrap();
    assert_eq!(report.expired, 3);
    assert_eq!(uploads.open_sessions("alice").await.unwrap(), 0);
}

/// Idle expiry looks at the last byte received, not at the start time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_expiry_looks_at_the_last_byte() {
    let dir = tempfile::tempdir().unwrap();
    let (_blobs, uploads) = stores(dir.path()).await;
    let idle = uploads.create(&repo()).await.unwrap();
    let busy = uploads.create(&repo()).await.unwrap();
    let idle_for = Duration::from_millis(1500);
    tokio::time::sleep(idle_for).await;
    uploads
        .append(&busy.id, 0, body_of(b"fresh", 2))
        .await
        .unwrap();
    let report = expire_idle(&uploads, idle_for).await.unwrap();
    assert_eq!(report.expired, 1);
    assert!(uploads.status(&idle.id).await.is_err());
    assert_eq!(uploads.status(&busy.id).await.unwrap().offset, 5);
}

/// Temp files of a killed push, session files no session owns and session
/// directories of older versions are removed by prune (and by the periodic
/// sweep, which calls the same `remove_stale_files`) without a restart; a
/// put in progress keeps its temp file however old it looks, and an open
/// session its file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_removes_stale_temp_files_but_not_live_ones() {
    let dir = tempfile::tempdir().unwrap();
    let (blobs, uploads) = stores(dir.path()).await;
    let tmp = dir.path().join("tmp");
    // What a killed process left.
    let dead = tmp.join("0123456789abcdef0123456789abcdef");
    std::fs::write(&dead, b"half a layer").unwrap();
    age(&dead, Duration::from_secs(2 * 3600));
    let uploads_dir = dir.path().join("uploads");
    let orphan = uploads_dir.join(UploadId::random().as_str());
    std::fs::write(&orphan, b"a session whose end was cut short").unwrap();
    age(&orphan, Duration::from_secs(2 * 3600));
    let old_format = uploads_dir.join(UploadId::random().as_str());
    std::fs::create_dir(&old_format).unwrap();
    std::fs::write(old_format.join("state.json"), b"{}").unwrap();
    age(&old_format, Duration::from_secs(2 * 3600));
    let open = uploads.create(&repo()).await.unwrap();
    uploads
        .append(&open.id, 0, body_of(b"kept", 1))
        .await
        .unwrap();
    let open_file = uploads_dir.join(open.id.as_str());
    age(&open_file, Duration::from_secs(2 * 3600));

    // A put in progress, its body stalled after its first write (a file is
    // made by the first write, once a 256 KiB batch is gathered or the
    // body ends); its temp file aged too.
    let data = test_data(600_000, 3);
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
    tx.send(Bytes::copy_from_slice(&data[..300_000]))
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
    assert_eq!(report.stale_files_removed, 3);
    assert_eq!(entries(&tmp), vec![live.clone()], "only the dead file goes");
    assert_eq!(
        entries(&uploads_dir),
        vec![open_file],
        "the open session's file stays"
    );
    assert_eq!(uploads.status(&open.id).await.unwrap().offset, 4);

    tx.send(Bytes::copy_from_slice(&data[300_000..]))
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
        let (_blobs, uploads) = stores(Path::new(&root)).await;
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
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (blobs, uploads) = stores(dir.path()).await;
        let status = uploads.status(&id).await.unwrap();
        assert_eq!(status.offset, ACKED as u64, "unacknowledged bytes reported");
        // The client continues where it was acknowledged, and the blob is right.
        let mut data = test_data(ACKED, 1);
        let rest = test_data(5000, 2);
        uploads
            .append(&id, ACKED as u64, body_of(&rest, 700))
            .await
            .unwrap();
        data.extend_from_slice(&rest);
        // The unacknowledged bytes were cut off before the append wrote.
        assert_eq!(
            std::fs::metadata(&data_file).unwrap().len(),
            data.len() as u64
        );
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
        let (blobs, uploads) = stores(dir.path()).await;
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

/// Appends are not synced (a process crash keeps them in the page cache);
/// a machine that loses power may come back with a session file shorter
/// than what was acknowledged. Such a file is never published under the
/// digest its hash states promise: the commit fails, nothing is stored,
/// and a later append says the session's bytes are lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_lost_with_the_page_cache_are_never_published() {
    let dir = tempfile::tempdir().unwrap();
    let (blobs, uploads) = stores(dir.path()).await;
    let data = test_data(300_000, 5);
    let digest = Digest::sha256_of(&data);
    for cut in [100_000u64, 0] {
        let session = uploads.create(&repo()).await.unwrap();
        uploads
            .append(&session.id, 0, body_of(&data, 65_536))
            .await
            .unwrap();
        // What a power loss before the page cache was written back leaves.
        let file = dir.path().join("uploads").join(session.id.as_str());
        std::fs::OpenOptions::new()
            .write(true)
            .open(&file)
            .unwrap()
            .set_len(cut)
            .unwrap();
        let err = uploads
            .append(&session.id, 300_000, body_of(b"more", 4))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("lost"), "{err}");
        let err = uploads.commit(&session.id, &digest).await.unwrap_err();
        assert!(err.to_string().contains("lost"), "{err}");
        assert!(
            blobs.stat(&digest).await.unwrap().is_none(),
            "published short"
        );
        assert!(
            uploads.status(&session.id).await.is_err(),
            "the session ended"
        );
    }
    assert!(entries(&dir.path().join("uploads")).is_empty());
}
