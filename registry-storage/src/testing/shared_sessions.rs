//! Conformance tests for upload stores that share their sessions between
//! processes ([`BackendUploadStore`](crate::backend::BackendUploadStore)
//! instances over one backend and one session store, as replicas are).

use registry_core::{Algorithm, Digest, RepositoryName};

use super::blob::{body_of, read_body, test_data};
use crate::blob::BlobStore;
use crate::error::StorageError;
use crate::upload::{SessionOwner, UploadStore};

fn repo() -> RepositoryName {
    "conformance/shared".parse().expect("valid repository name")
}

/// A session created on `first` takes chunks from both stores in turn
/// (chunk sizes that do not divide multipart part sizes, across several
/// parts) and is committed through `second` under a SHA-512 digest, with
/// status agreeing on both sides after each chunk. `len` should cross a
/// few multipart parts of the backend.
pub async fn upload_continues_on_another_store(
    first: &dyn UploadStore,
    second: &dyn UploadStore,
    blobs: &dyn BlobStore,
    len: usize,
) {
    let data = test_data(len, 77);
    let digest = Digest::of(Algorithm::Sha512, &data);
    // Announced: the SHA-512 state travels with the session.
    let session = first
        .create_for(
            &repo(),
            Some(SessionOwner::new("alice")),
            Some(Algorithm::Sha512),
        )
        .await
        .unwrap();
    assert_eq!(second.open_sessions("alice").await.unwrap(), 1);
    let chunk = len / 7 + 13;
    let mut offset = 0;
    for (i, piece) in data.chunks(chunk).enumerate() {
        let (writer, other) = if i % 2 == 0 {
            (first, second)
        } else {
            (second, first)
        };
        let status = writer
            .append(&session.id, offset as u64, body_of(piece, 64 * 1024))
            .await
            .unwrap();
        offset += piece.len();
        assert_eq!(status.offset, offset as u64);
        assert_eq!(
            other.status(&session.id).await.unwrap().offset,
            offset as u64
        );
    }
    // A chunk at a stale offset is refused on either side.
    let stale = second.append(&session.id, 0, body_of(b"late", 4)).await;
    assert!(
        matches!(stale, Err(StorageError::InvalidOffset { expected, got: 0 }) if expected == len as u64),
        "stale chunk: {stale:?}"
    );
    let info = second.commit(&session.id, &digest).await.unwrap();
    assert_eq!(info.size, len as u64);
    let read = read_body(blobs.get(&digest, None).await.unwrap().stream)
        .await
        .unwrap();
    assert!(read == data, "published bytes differ");
    assert!(first.status(&session.id).await.is_err());
    assert_eq!(first.open_sessions("alice").await.unwrap(), 0);
    blobs.delete(&digest).await.unwrap();
}

/// Two commits of one session through two stores: one publishes, the
/// other finds the session gone; nothing is published twice or lost.
pub async fn upload_commit_races(
    first: &dyn UploadStore,
    second: &dyn UploadStore,
    blobs: &dyn BlobStore,
) {
    let data = test_data(100_000, 78);
    let digest = Digest::sha256_of(&data);
    let session = first.create(&repo()).await.unwrap();
    first
        .append(&session.id, 0, body_of(&data, 10_000))
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        first.commit(&session.id, &digest),
        second.commit(&session.id, &digest)
    );
    let ok = [a.is_ok(), b.is_ok()].iter().filter(|ok| **ok).count();
    assert_eq!(ok, 1, "exactly one commit wins: {a:?} {b:?}");
    let loser = if a.is_ok() { b } else { a };
    assert!(
        matches!(loser, Err(StorageError::UploadUnknown { .. })),
        "{loser:?}"
    );
    assert_eq!(blobs.stat(&digest).await.unwrap().unwrap().size, 100_000);
    blobs.delete(&digest).await.unwrap();
}

/// A `PUT` with a whole blob through `first` into a session that another
/// store moved meanwhile (the client's view, offset 0, is stale): refused
/// with the session's real offset, nothing is published, and the session
/// goes on where it was, through either store.
pub async fn whole_put_into_a_moved_session(
    first: &dyn UploadStore,
    second: &dyn UploadStore,
    blobs: &dyn BlobStore,
) {
    let data = test_data(50_000, 79);
    let digest = Digest::sha256_of(&data);
    let session = first.create(&repo()).await.unwrap();
    second
        .append(&session.id, 0, body_of(&data[..20_000], 8_000))
        .await
        .unwrap();
    let whole = Digest::sha256_of(b"a whole other blob");
    let refused = first
        .commit_last_chunk(&session.id, 0, body_of(b"a whole other blob", 8), &whole)
        .await;
    assert!(
        matches!(
            refused,
            Err(StorageError::InvalidOffset {
                expected: 20_000,
                got: 0
            })
        ),
        "{refused:?}"
    );
    assert_eq!(blobs.stat(&whole).await.unwrap(), None, "nothing published");
    assert_eq!(first.status(&session.id).await.unwrap().offset, 20_000);
    let info = first
        .commit_last_chunk(
            &session.id,
            20_000,
            body_of(&data[20_000..], 8_000),
            &digest,
        )
        .await
        .unwrap();
    assert_eq!(info.size, 50_000);
    let refused = second
        .commit_last_chunk(&session.id, 0, body_of(b"late", 4), &whole)
        .await;
    assert!(
        matches!(refused, Err(StorageError::UploadUnknown { .. })),
        "{refused:?}"
    );
    blobs.delete(&digest).await.unwrap();
}
