//! The conformance suite against the filesystem backends, plus what only a
//! disk can show: restarts, crashes and left-over files.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::StreamExt;
use registry_core::{Digest, RepositoryName};
use registry_storage::filesystem::{Durability, FsBlobStore, FsUploadStore};
use registry_storage::sqlite::SqliteMetadataStore;
use registry_storage::testing::{self, body_of, read_body, test_data};
use registry_storage::{BlobStore, ByteStream, UploadStore};

/// Names of the entries of a directory (empty when it does not exist).
fn entries(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// Panics if a temp file or an upload session is left under `root`.
fn assert_no_leftovers(root: &Path, after: &str) {
    let tmp = entries(&root.join("tmp"));
    assert!(tmp.is_empty(), "after {after}: temp files left: {tmp:?}");
    let uploads = entries(&root.join("uploads"));
    assert!(
        uploads.is_empty(),
        "after {after}: upload dirs left: {uploads:?}"
    );
}

/// Upload sessions over `blobs`, their state in `root/registry.db` (as
/// `Stores::data_dir` has them).
async fn uploads_of(blobs: &FsBlobStore, root: &Path) -> FsUploadStore {
    let sessions = SqliteMetadataStore::open(root.join("registry.db"))
        .await
        .unwrap();
    FsUploadStore::for_blobs(blobs, std::sync::Arc::new(sessions))
}

/// An endless body of 64 KiB chunks, one every few milliseconds.
fn endless_body() -> ByteStream {
    let chunk = Bytes::from(vec![7u8; 64 * 1024]);
    futures::stream::repeat(chunk)
        .then(|chunk| async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            Ok(chunk)
        })
        .boxed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_blob_suite_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = FsBlobStore::open(dir.path()).unwrap();
    assert_eq!(blobs.durability(), Durability::Fsync);
    testing::run_blob_suite(&blobs, &|test| assert_no_leftovers(dir.path(), test)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_blob_suite_no_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = FsBlobStore::with_durability(dir.path(), Durability::None).unwrap();
    testing::run_blob_suite(&blobs, &|test| assert_no_leftovers(dir.path(), test)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_upload_suite() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = FsBlobStore::open(dir.path()).unwrap();
    let uploads = uploads_of(&blobs, dir.path()).await;
    testing::run_upload_suite(&uploads, &blobs, &|test| {
        assert_no_leftovers(dir.path(), test)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_upload_suite_sessions_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = FsBlobStore::with_durability(dir.path(), Durability::None).unwrap();
    let sessions = registry_storage::memory::MemoryUploadSessions::default();
    let uploads = FsUploadStore::for_blobs(&blobs, std::sync::Arc::new(sessions));
    testing::run_upload_suite(&uploads, &blobs, &|test| {
        assert_no_leftovers(dir.path(), test)
    })
    .await;
}

#[tokio::test]
async fn fs_blob_layout() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = FsBlobStore::with_durability(dir.path(), Durability::None).unwrap();
    let digest = Digest::sha256_of(b"layout");
    blobs.put(&digest, body_of(b"layout", 2)).await.unwrap();
    let hex = digest.hex();
    let path = dir.path().join("blobs/sha256").join(&hex[..2]).join(hex);
    assert_eq!(blobs.blob_path(&digest), path);
    assert_eq!(std::fs::read(&path).unwrap(), b"layout");
    // Foreign files in the tree are not blobs.
    std::fs::write(path.with_file_name("README"), b"x").unwrap();
    assert_eq!(testing::list_digests(&blobs).await, vec![digest.clone()]);
    std::fs::remove_file(path.with_file_name("README")).unwrap();
    blobs.delete(&digest).await.unwrap();
    testing::assert_no_blobs(&blobs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_uploads_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let repo: RepositoryName = "ns/restart".parse().unwrap();
    let data = test_data(3_000_000, 42);
    let id = {
        let blobs = FsBlobStore::open(dir.path()).unwrap();
        let uploads = uploads_of(&blobs, dir.path()).await;
        let session = uploads.create(&repo).await.unwrap();
        uploads
            .append(&session.id, 0, body_of(&data[..1_000_000], 100_000))
            .await
            .unwrap();
        session.id
    };
    // A new process: nothing in memory, only the directory.
    let blobs = FsBlobStore::open(dir.path()).unwrap();
    let uploads = uploads_of(&blobs, dir.path()).await;
    let listed = uploads.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((&listed[0].id, listed[0].offset), (&id, 1_000_000));
    assert_eq!(listed[0].repository, repo);
    let status = uploads
        .append(&id, 1_000_000, body_of(&data[1_000_000..2_000_000], 77_777))
        .await
        .unwrap();
    assert_eq!(status.offset, 2_000_000);

    // And once more, committing from a third instance.
    let uploads = uploads_of(&blobs, dir.path()).await;
    uploads
        .append(&id, 2_000_000, body_of(&data[2_000_000..], 1 << 20))
        .await
        .unwrap();
    let digest = Digest::sha256_of(&data);
    let info = uploads.commit(&id, &digest).await.unwrap();
    assert_eq!(info.size, data.len() as u64);
    let body = blobs.get(&digest, None).await.unwrap();
    assert_eq!(read_body(body.stream).await.unwrap(), data);
    blobs.delete(&digest).await.unwrap();
    testing::assert_no_blobs(&blobs).await;
    testing::assert_no_uploads(&uploads).await;
    assert_no_leftovers(dir.path(), "restart");
}

/// Waits until `cond` holds, for at most 30 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_dropped_put_removes_its_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = FsBlobStore::with_durability(dir.path(), Durability::None).unwrap();
    let digest = Digest::sha256_of(b"never finished");
    let tmp = dir.path().join("tmp");
    let put = blobs.put(&digest, endless_body());
    let written = || {
        entries(&tmp)
            .iter()
            .any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 0))
    };
    tokio::select! {
        result = put => panic!("an endless put ended: {result:?}"),
        () = eventually("temp file", written) => {}
    }
    // The put future was dropped at the end of select!.
    eventually("temp file removal", || entries(&tmp).is_empty()).await;
    testing::assert_no_blobs(&blobs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fs_dropped_append_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let blobs = FsBlobStore::with_durability(dir.path(), Durability::None).unwrap();
    let uploads = uploads_of(&blobs, dir.path()).await;
    let session = uploads
        .create(&"ns/dropped".parse().unwrap())
        .await
        .unwrap();
    uploads
        .append(&session.id, 0, body_of(b"kept", 4))
        .await
        .unwrap();
    let data = dir.path().join("uploads").join(session.id.as_str());
    let append = uploads.append(&session.id, 4, endless_body());
    tokio::select! {
        result = append => panic!("an endless append ended: {result:?}"),
        () = eventually("data written", || std::fs::metadata(&data).is_ok_and(|m| m.len() > 4)) => {}
    }
    // Dropped: the next call waits for the rollback and sees the old state.
    assert_eq!(uploads.status(&session.id).await.unwrap().offset, 4);
    uploads
        .append(&session.id, 4, body_of(b" this", 5))
        .await
        .unwrap();
    let digest = Digest::sha256_of(b"kept this");
    uploads.commit(&session.id, &digest).await.unwrap();
    blobs.delete(&digest).await.unwrap();
    assert_no_leftovers(dir.path(), "dropped append");
}

#[test]
fn fs_stale_temp_files_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    FsBlobStore::open(dir.path()).unwrap();
    let stale = dir.path().join("tmp/left-over");
    std::fs::write(&stale, b"half a blob").unwrap();
    // Young temp files may belong to another process's put: kept.
    FsBlobStore::open(dir.path()).unwrap();
    assert!(stale.exists());
    FsBlobStore::builder(dir.path())
        .stale_temp_age(Duration::ZERO)
        .open()
        .unwrap();
    assert!(!stale.exists());
}

/// Set in the child process of `fs_killed_put_leaves_no_blob`: the root to
/// write into.
const KILL_WRITER_ROOT: &str = "REGISTRY_STORAGE_KILL_WRITER_ROOT";

/// Does nothing in a normal run. In the child process started by
/// `fs_killed_put_leaves_no_blob` it puts an endless body until killed.
#[test]
fn kill_writer_child() {
    let Ok(root) = std::env::var(KILL_WRITER_ROOT) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let result = runtime.block_on(async {
        let blobs = FsBlobStore::open(root).unwrap();
        blobs
            .put(&Digest::sha256_of(b"never finished"), endless_body())
            .await
    });
    panic!("an endless put ended: {result:?}");
}

#[test]
fn fs_killed_put_leaves_no_blob() {
    let dir = tempfile::tempdir().unwrap();
    let tmp = dir.path().join("tmp");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "kill_writer_child",
            "--exact",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(KILL_WRITER_ROOT, dir.path())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let written = entries(&tmp)
            .iter()
            .any(|p| std::fs::metadata(p).is_ok_and(|m| m.len() > 1 << 20));
        if written {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("writer exited early: {status}");
        }
        assert!(Instant::now() < deadline, "writer wrote nothing");
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap(); // SIGKILL: no destructor runs.
    child.wait().unwrap();
    assert_eq!(
        entries(&tmp).len(),
        1,
        "the killed put's temp file is there"
    );

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // What a restarted process sees: no blob, half-written or whole.
        let blobs = FsBlobStore::open(dir.path()).unwrap();
        assert_eq!(
            blobs
                .stat(&Digest::sha256_of(b"never finished"))
                .await
                .unwrap(),
            None
        );
        testing::assert_no_blobs(&blobs).await;

        // Once stale, the temp file is swept at start, and the store works.
        let blobs = FsBlobStore::builder(dir.path())
            .stale_temp_age(Duration::ZERO)
            .open()
            .unwrap();
        assert!(entries(&tmp).is_empty());
        let digest = Digest::sha256_of(b"after the crash");
        blobs
            .put(&digest, body_of(b"after the crash", 4))
            .await
            .unwrap();
        blobs.delete(&digest).await.unwrap();
        testing::assert_no_blobs(&blobs).await;
        assert_no_leftovers(dir.path(), "kill");
    });
}
