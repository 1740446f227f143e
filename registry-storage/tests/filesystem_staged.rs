//! The filesystem backend's staged writes, seen on disk: a short final
//! append is kept in memory and written by the publish, an empty append
//! creates nothing, and a staged write with no byte on disk has no file,
//! whichever way it ends.

use std::path::{Path, PathBuf};

use registry_core::Digest;
use registry_storage::backend::{AppendMode, BlobBackend, StageTarget, StagedWrite};
use registry_storage::filesystem::{Durability, FsBackend, FsBlobStore};
use registry_storage::testing::{body_of, read_body, test_data};
use registry_storage::UploadId;

/// Entries of a directory (empty when it does not exist).
fn entries(dir: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries.map(|e| e.unwrap().path()).collect(),
        Err(_) => Vec::new(),
    }
}

/// A backend with fsync over a fresh directory (removed when dropped).
fn scratch() -> (tempfile::TempDir, FsBackend) {
    let dir = tempfile::tempdir().unwrap();
    let store = FsBlobStore::with_durability(dir.path(), Durability::Fsync).unwrap();
    let backend = FsBackend::clone(store.backend());
    (dir, backend)
}

async fn read(backend: &FsBackend, digest: &Digest) -> Vec<u8> {
    read_body(backend.get(digest, None).await.unwrap().stream)
        .await
        .unwrap()
}

/// A one-shot put of `len` bytes of test data, in chunks of `chunk`, up to
/// its final append: the data, its digest and the staged write.
async fn put_up_to_publish(
    backend: &FsBackend,
    len: usize,
    chunk: usize,
) -> (Vec<u8>, Digest, StagedWrite) {
    let data = test_data(len, len as u64);
    let digest = Digest::sha256_of(&data);
    let staged = backend.stage(StageTarget::Blob(&digest)).await.unwrap();
    let appended = backend
        .append(&staged, body_of(&data, chunk), AppendMode::Final)
        .await
        .unwrap();
    (data, digest, appended)
}

/// A fresh upload session's staged write.
async fn session(backend: &FsBackend) -> (UploadId, StagedWrite) {
    let id = UploadId::random();
    let staged = backend.stage(StageTarget::Session(&id)).await.unwrap();
    (id, staged)
}

/// A one-shot put whose body fits one write batch: nothing is written
/// until the publish, which writes, syncs and renames in one go.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_final_append_is_written_by_the_publish() {
    let (dir, backend) = scratch();
    let (data, digest, appended) = put_up_to_publish(&backend, 10_000, 3_000).await;
    assert_eq!(appended.written, 10_000);
    assert_eq!(appended.pending.as_ref(), &data[..]);
    assert!(entries(&dir.path().join("tmp")).is_empty(), "written early");
    let info = backend.publish(appended, &digest).await.unwrap();
    assert_eq!(info.size, 10_000);
    assert_eq!(read(&backend, &digest).await, data);
    assert!(entries(&dir.path().join("tmp")).is_empty());
}

/// A body longer than one write batch is written while it arrives, as
/// before: nothing of it stays pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_final_append_is_written_as_it_arrives() {
    let (dir, backend) = scratch();
    let (data, digest, appended) = put_up_to_publish(&backend, 600_000, 100_000).await;
    assert!(appended.pending.is_empty());
    assert_eq!(entries(&dir.path().join("tmp")).len(), 1);
    backend.publish(appended, &digest).await.unwrap();
    assert_eq!(read(&backend, &digest).await, data);
}

/// A session's resumable appends are in its file; its short last chunk
/// is written after them at publish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_tail_is_written_after_the_appended_bytes() {
    let (dir, backend) = scratch();
    let data = test_data(50_000, 3);
    let digest = Digest::sha256_of(&data);
    let (id, staged) = session(&backend).await;
    let first = backend
        .append(
            &staged,
            body_of(&data[..30_000], 7_000),
            AppendMode::Resumable,
        )
        .await
        .unwrap();
    assert!(first.pending.is_empty(), "a resumable append is stored");
    let file = dir.path().join("uploads").join(id.as_str());
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 30_000);
    let last = backend
        .append(&first, body_of(&data[30_000..], 7_000), AppendMode::Final)
        .await
        .unwrap();
    assert_eq!((last.written, last.pending.len()), (50_000, 20_000));
    // Nothing may follow a final append.
    let err = backend
        .append(&last, body_of(b"more", 4), AppendMode::Resumable)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("final append"), "{err}");
    backend.publish(last, &digest).await.unwrap();
    assert_eq!(read(&backend, &digest).await, data);
    assert!(entries(&dir.path().join("uploads")).is_empty());
}

/// An empty body creates no file, and a session that never held a byte
/// on disk is aborted without one; so is a short final append.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_writes_without_a_byte_on_disk_have_no_file() {
    let (dir, backend) = scratch();
    let (_, staged) = session(&backend).await;
    let empty = backend
        .append(&staged, body_of(b"", 1), AppendMode::Resumable)
        .await
        .unwrap();
    assert_eq!(empty, staged);
    assert!(entries(&dir.path().join("uploads")).is_empty());
    let short = backend
        .append(&empty, body_of(b"tail", 4), AppendMode::Final)
        .await
        .unwrap();
    backend.abort(short).await.unwrap();
    backend.abort(empty).await.unwrap();
    // A session that did get bytes on disk is removed by its abort.
    let stored = backend
        .append(&staged, body_of(b"stored", 6), AppendMode::Resumable)
        .await
        .unwrap();
    assert_eq!(entries(&dir.path().join("uploads")).len(), 1);
    backend.abort(stored).await.unwrap();
    assert!(entries(&dir.path().join("uploads")).is_empty());
}

/// A publish of pending bytes that fails removes the file it created: the
/// staged write still has nothing on disk, so its abort has nothing to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_publish_of_pending_bytes_leaves_no_file() {
    let (dir, backend) = scratch();
    let (_, digest, appended) = put_up_to_publish(&backend, 5_000, 5_000).await;
    // The blob's prefix directory is a file: the rename into it fails.
    let prefix = backend.blob_path(&digest).parent().unwrap().to_path_buf();
    std::fs::remove_dir(&prefix).unwrap();
    std::fs::write(&prefix, b"in the way").unwrap();
    backend
        .publish(appended.clone(), &digest)
        .await
        .unwrap_err();
    assert!(
        entries(&dir.path().join("tmp")).is_empty(),
        "temp file left"
    );
    backend.abort(appended).await.unwrap();
    std::fs::remove_file(&prefix).unwrap();
    assert!(backend.stat(&digest).await.unwrap().is_none());
}
