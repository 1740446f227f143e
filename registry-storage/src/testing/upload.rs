//! Conformance tests for [`UploadStore`] backends over their [`BlobStore`].

use registry_core::{Algorithm, Digest, RepositoryName};

use super::blob::{
    assert_no_blobs, body_of, failing_body, list_digests, read_body, test_data, AfterEach,
};
use crate::blob::BlobStore;
use crate::error::StorageError;
use crate::upload::{expire_idle, SessionOwner, UploadId, UploadStatus, UploadStore};

fn repo() -> RepositoryName {
    "conformance/uploads"
        .parse()
        .expect("valid repository name")
}

/// Panics unless the store has no open session.
pub async fn assert_no_uploads(uploads: &dyn UploadStore) {
    let left = uploads.list().await.expect("list uploads");
    assert!(left.is_empty(), "upload sessions left behind: {left:?}");
}

/// Panics unless every call on `id` is `UploadUnknown`.
pub async fn assert_upload_unknown(uploads: &dyn UploadStore, id: &UploadId) {
    let is_unknown = |r: Result<(), StorageError>, what: &str| match r {
        Err(StorageError::UploadUnknown { .. }) => {}
        other => panic!("{what} on an ended session: expected UploadUnknown, got {other:?}"),
    };
    is_unknown(uploads.status(id).await.map(drop), "status");
    is_unknown(
        uploads.append(id, 0, body_of(b"x", 1)).await.map(drop),
        "append",
    );
    is_unknown(
        uploads.commit(id, &Digest::sha256_of(b"")).await.map(drop),
        "commit",
    );
    is_unknown(uploads.cancel(id).await, "cancel");
}

/// A session announcing `algorithm` as the one its commit will use (what
/// a client's `?digest-algorithm=` says).
async fn create_announcing(uploads: &dyn UploadStore, algorithm: Algorithm) -> UploadStatus {
    let repo = repo();
    let session = uploads.create_for(&repo, None, Some(algorithm)).await;
    session.unwrap()
}

async fn assert_clean(uploads: &dyn UploadStore, blobs: &dyn BlobStore) {
    assert_no_uploads(uploads).await;
    assert_no_blobs(blobs).await;
}

/// A blob uploaded in many chunks of uneven sizes, with status checks
/// between them, commits to the right content.
pub async fn upload_chunked(uploads: &dyn UploadStore, blobs: &dyn BlobStore) {
    let data = test_data(1_500_000, 10);
    let digest = Digest::sha256_of(&data);
    let session = uploads.create(&repo()).await.unwrap();
    assert_eq!(session.offset, 0);
    assert_eq!(session.repository, repo());

    let mut offset = 0usize;
    let mut size = 1usize;
    while offset < data.len() {
        let end = (offset + size).min(data.len());
        let status = uploads
            .append(
                &session.id,
                offset as u64,
                body_of(&data[offset..end], 4096),
            )
            .await
            .unwrap();
        assert_eq!(status.offset, end as u64);
        offset = end;
        size = size * 3 + 1;
    }
    let status = uploads.status(&session.id).await.unwrap();
    assert_eq!(status.offset, data.len() as u64);
    assert_eq!(status.started, session.started);
    // Appending nothing is allowed and changes nothing.
    uploads
        .append(&session.id, data.len() as u64, body_of(b"", 1))
        .await
        .unwrap();

    let info = uploads.commit(&session.id, &digest).await.unwrap();
    assert_eq!(
        (info.digest.clone(), info.size),
        (digest.clone(), data.len() as u64)
    );
    let body = blobs.get(&digest, None).await.unwrap();
    assert_eq!(read_body(body.stream).await.unwrap(), data);
    assert_upload_unknown(uploads, &session.id).await;
    blobs.delete(&digest).await.unwrap();
    assert_clean(uploads, blobs).await;
}

/// A chunk at the wrong offset is `InvalidOffset { expected, got }` and
/// the session is unchanged.
pub async fn upload_wrong_offset(uploads: &dyn UploadStore, blobs: &dyn BlobStore) {
    let data = test_data(20_000, 11);
    let session = uploads.create(&repo()).await.unwrap();
    uploads
        .append(&session.id, 0, body_of(&data[..10_000], 3000))
        .await
        .unwrap();
    for got in [0, 5_000, 10_001, 1 << 40] {
        match uploads
            .append(&session.id, got, body_of(&data[10_000..], 3000))
            .await
        {
            Err(StorageError::InvalidOffset { expected, got: g }) => {
                assert_eq!((expected, g), (10_000, got));
            }
            other => panic!("expected InvalidOffset, got {other:?}"),
        }
        assert_eq!(uploads.status(&session.id).await.unwrap().offset, 10_000);
    }
    uploads
        .append(&session.id, 10_000, body_of(&data[10_000..], 3000))
        .await
        .unwrap();
    commit_and_check(uploads, blobs, &session.id, &data).await;
}

/// Commits `data` as uploaded by `id`, reads it back, deletes it and
/// checks that nothing is left behind.
async fn commit_and_check(
    uploads: &dyn UploadStore,
    blobs: &dyn BlobStore,
    id: &UploadId,
    data: &[u8],
) {
    let digest = Digest::sha256_of(data);
    uploads.commit(id, &digest).await.unwrap();
    let body = blobs.get(&digest, None).await.unwrap();
    assert_eq!(read_body(body.stream).await.unwrap(), data);
    blobs.delete(&digest).await.unwrap();
    assert_clean(uploads, blobs).await;
}

/// A body that fails part-way is an error and leaves the session as it was
/// before the call; the upload can go on and commits the right bytes.
pub async fn upload_failing_stream(uploads: &dyn UploadStore, blobs: &dyn BlobStore) {
    let data = test_data(2_000_000, 12);
    let session = uploads.create(&repo()).await.unwrap();
    uploads
        .append(&session.id, 0, body_of(&data[..1000], 100))
        .await
        .unwrap();
    // A large partial chunk, so that backends that batch writes did write.
    let garbage = test_data(1_200_000, 99);
    let err = uploads
        .append(&session.id, 1000, failing_body(&garbage))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::Incoming { .. }),
        "expected the body's error, got {err:?}"
    );
    assert_eq!(uploads.status(&session.id).await.unwrap().offset, 1000);
    uploads
        .append(&session.id, 1000, body_of(&data[1000..], 65536))
        .await
        .unwrap();
    commit_and_check(uploads, blobs, &session.id, &data).await;
}

/// A commit with the wrong digest is `DigestMismatch`, ends the session
/// and publishes nothing.
pub async fn upload_commit_mismatch(uploads: &dyn UploadStore, blobs: &dyn BlobStore) {
    let data = test_data(30_000, 13);
    for wrong in [
        Digest::sha256_of(b"not this"),
        Digest::of(Algorithm::Sha512, b"not this"),
    ] {
        let session = create_announcing(uploads, wrong.algorithm()).await;
        uploads
            .append(&session.id, 0, body_of(&data, 7000))
            .await
            .unwrap();
        match uploads.commit(&session.id, &wrong).await {
            Err(StorageError::DigestMismatch { expected, actual }) => {
                assert_eq!(expected, wrong);
                assert_eq!(actual, Digest::of(wrong.algorithm(), &data));
            }
            other => panic!("expected DigestMismatch, got {other:?}"),
        }
        assert_upload_unknown(uploads, &session.id).await;
        assert_eq!(blobs.stat(&wrong).await.unwrap(), None);
        assert_clean(uploads, blobs).await;
    }
}

/// A last chunk committed in one step (what a `PUT` with a body does): the
/// blob is published whole, sha512 too; a wrong offset changes nothing and
/// the session continues; a mismatch ends the session, publishing nothing.
pub async fn upload_last_chunk(uploads: &dyn UploadStore, blobs: &dyn BlobStore) {
    let data = test_data(70_000, 21);
    for algorithm in [Algorithm::Sha256, Algorithm::Sha512] {
        let digest = Digest::of(algorithm, &data);
        let session = create_announcing(uploads, algorithm).await;
        uploads
            .append(&session.id, 0, body_of(&data[..30_000], 7000))
            .await
            .unwrap();
        match uploads
            .commit_last_chunk(&session.id, 1, body_of(&data[30_000..], 4096), &digest)
            .await
        {
            Err(StorageError::InvalidOffset { expected, got }) => {
                assert_eq!((expected, got), (30_000, 1));
            }
            other => panic!("expected InvalidOffset, got {other:?}"),
        }
        assert_eq!(uploads.status(&session.id).await.unwrap().offset, 30_000);
        let info = uploads
            .commit_last_chunk(&session.id, 30_000, body_of(&data[30_000..], 4096), &digest)
            .await
            .unwrap();
        assert_eq!(info.size, data.len() as u64);
        assert_upload_unknown(uploads, &session.id).await;
        let body = blobs.get(&digest, None).await.unwrap();
        assert_eq!(read_body(body.stream).await.unwrap(), data);
        blobs.delete(&digest).await.unwrap();
        assert_clean(uploads, blobs).await;
    }
    // The whole blob in one `PUT` (`POST` + `PUT`): a body that fails
    // leaves the session usable; then it publishes, twice (the second time
    // onto the existing blob).
    let digest = Digest::sha256_of(&data);
    for _ in 0..2 {
        let session = uploads.create(&repo()).await.unwrap();
        assert!(uploads
            .commit_last_chunk(&session.id, 0, failing_body(&data[..20_000]), &digest)
            .await
            .is_err());
        assert_eq!(uploads.status(&session.id).await.unwrap().offset, 0);
        let info = uploads
            .commit_last_chunk(&session.id, 0, body_of(&data, 9000), &digest)
            .await
            .unwrap();
        assert_eq!(info.size, data.len() as u64);
        assert_upload_unknown(uploads, &session.id).await;
        let body = blobs.get(&digest, None).await.unwrap();
        assert_eq!(read_body(body.stream).await.unwrap(), data);
    }
    blobs.delete(&digest).await.unwrap();
    assert_clean(uploads, blobs).await;

    let wrong = Digest::sha256_of(b"not this");
    let session = uploads.create(&repo()).await.unwrap();
    match uploads
        .commit_last_chunk(&session.id, 0, body_of(&data, 9000), &wrong)
        .await
    {
        Err(StorageError::DigestMismatch { actual, .. }) => {
            assert_eq!(actual, Digest::sha256_of(&data));
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert_upload_unknown(uploads, &session.id).await;
    assert_eq!(blobs.stat(&wrong).await.unwrap(), None);
    assert_clean(uploads, blobs).await;
}

/// Cancel discards the bytes; the session is then unknown.
pub async fn upload_cancel(uploads: &dyn UploadStore, blobs: &dyn BlobStore) {
    let data = test_data(10_000, 14);
    let session = uploads.create(&repo()).await.unwrap();
    uploads
        .append(&session.id, 0, body_of(&data, 1000))
        .await
        .unwrap();
    uploads.cancel(&session.id).await.unwrap();
    assert_upload_unknown(uploads, &session.id).await;
    assert_eq!(blobs.stat(&Digest::sha256_of(&data)).await.unwrap(), None);
    assert_clean(uploads, blobs).await;
}

/// Ids never issued are `UploadUnknown` everywhere.
pub async fn upload_unknown(uploads: &dyn UploadStore, blobs: &dyn BlobStore) {
    assert_upload_unknown(uploads, &UploadId::random()).await;
    assert_clean(uploads, blobs).await;
}

/// SHA-512 commits, the empty blob, and committing a digest that is
/// already stored.
pub async fn upload_digests(uploads: &dyn UploadStore, blobs: &dyn BlobStore) {
    let data = test_data(500_000, 15);
    let sha512 = Digest::of(Algorithm::Sha512, &data);
    let session = create_announcing(uploads, Algorithm::Sha512).await;
    uploads
        .append(&session.id, 0, body_of(&data[..100_000], 30_000))
        .await
        .unwrap();
    uploads
        .append(&session.id, 100_000, body_of(&data[100_000..], 30_000))
        .await
        .unwrap();
    let info = uploads.commit(&session.id, &sha512).await.unwrap();
    assert_eq!(info.size, data.len() as u64);
    let body = blobs.get(&sha512, None).await.unwrap();
    assert_eq!(read_body(body.stream).await.unwrap(), data);

    let empty = Digest::sha256_of(b"");
    let session = uploads.create(&repo()).await.unwrap();
    assert_eq!(uploads.commit(&session.id, &empty).await.unwrap().size, 0);

    // The blob exists already: the commit succeeds and keeps one copy.
    let session = create_announcing(uploads, Algorithm::Sha512).await;
    uploads
        .append(&session.id, 0, body_of(&data, 100_000))
        .await
        .unwrap();
    uploads.commit(&session.id, &sha512).await.unwrap();
    let mut expected = vec![sha512.clone(), empty.clone()];
    expected.sort();
    assert_eq!(list_digests(blobs).await, expected);

    blobs.delete(&sha512).await.unwrap();
    blobs.delete(&empty).await.unwrap();
    assert_clean(uploads, blobs).await;
}

/// A SHA-512 commit on a session that did not announce SHA-512 (which
/// hashed only SHA-256 as the bytes arrived): the bytes are published under
/// their SHA-256 digest, read back and published under the SHA-512 one; a
/// wrong SHA-512 digest publishes nothing under it. The SHA-256 copy stays
/// (unreferenced, for prune to sweep).
pub async fn upload_sha512_unannounced(uploads: &dyn UploadStore, blobs: &dyn BlobStore) {
    let data = test_data(300_000, 22);
    let (sha256, sha512) = (
        Digest::sha256_of(&data),
        Digest::of(Algorithm::Sha512, &data),
    );
    let session = uploads.create(&repo()).await.unwrap();
    uploads
        .append(&session.id, 0, body_of(&data[..100_000], 30_000))
        .await
        .unwrap();
    let info = uploads
        .commit_last_chunk(
            &session.id,
            100_000,
            body_of(&data[100_000..], 30_000),
            &sha512,
        )
        .await
        .unwrap();
    assert_eq!(
        (info.digest, info.size),
        (sha512.clone(), data.len() as u64)
    );
    assert_upload_unknown(uploads, &session.id).await;
    let body = blobs.get(&sha512, None).await.unwrap();
    assert_eq!(read_body(body.stream).await.unwrap(), data);
    let mut expected = vec![sha256.clone(), sha512.clone()];
    expected.sort();
    assert_eq!(list_digests(blobs).await, expected);
    blobs.delete(&sha512).await.unwrap();

    let wrong = Digest::of(Algorithm::Sha512, b"not this");
    let session = uploads.create(&repo()).await.unwrap();
    uploads
        .append(&session.id, 0, body_of(&data, 30_000))
        .await
        .unwrap();
    match uploads.commit(&session.id, &wrong).await {
        Err(StorageError::DigestMismatch { expected, actual }) => {
            assert_eq!((expected, actual), (wrong.clone(), sha512.clone()));
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert_upload_unknown(uploads, &session.id).await;
    assert_eq!(blobs.stat(&wrong).await.unwrap(), None);
    assert_eq!(list_digests(blobs).await, vec![sha256.clone()]);
    blobs.delete(&sha256).await.unwrap();
    assert_clean(uploads, blobs).await;
}

/// `list` shows the open sessions with their offsets.
pub async fn upload_list(uploads: &dyn UploadStore, blobs: &dyn BlobStore) {
    let mut ids = Vec::new();
    for n in 0..3u64 {
        let session = uploads.create(&repo()).await.unwrap();
        uploads
            .append(&session.id, 0, body_of(&test_data(n as usize * 10, n), 3))
            .await
            .unwrap();
        ids.push((session.id, n * 10));
    }
    let mut listed: Vec<_> = uploads
        .list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| {
            assert_eq!(s.repository, repo());
            (s.id, s.offset)
        })
        .collect();
    listed.sort();
    ids.sort();
    assert_eq!(listed, ids);
    for (id, _) in &ids {
        uploads.cancel(id).await.unwrap();
    }
    assert_clean(uploads, blobs).await;
}

/// Sessions record their owner; `open_sessions` counts them per owner and
/// stops counting a session once it is committed or cancelled; an owner at
/// their cap starts no session, other owners and sessions without an
/// owner are not held back by it.
pub async fn upload_owners(uploads: &dyn UploadStore, blobs: &dyn BlobStore) {
    let mut alice = Vec::new();
    for _ in 0..3 {
        let session = uploads
            .create_for(&repo(), Some(SessionOwner::new("alice")), None)
            .await
            .unwrap();
        assert_eq!(session.owner.as_deref(), Some("alice"));
        alice.push(session.id);
    }
    let bob = uploads
        .create_for(&repo(), Some(SessionOwner::new("bob")), None)
        .await
        .unwrap();
    let nobody = uploads.create(&repo()).await.unwrap();
    assert_eq!(nobody.owner, None);
    let capped = uploads
        .create_for(&repo(), Some(SessionOwner::new("alice").at_most(3)), None)
        .await;
    assert!(
        matches!(&capped, Err(StorageError::SessionCapReached { owner, open: 3, max: 3 })
            if owner == "alice"),
        "{capped:?}"
    );
    let below = uploads
        .create_for(&repo(), Some(SessionOwner::new("bob").at_most(2)), None)
        .await
        .unwrap();
    uploads.cancel(&below.id).await.unwrap();
    assert_eq!(uploads.open_sessions("alice").await.unwrap(), 3);
    assert_eq!(uploads.open_sessions("bob").await.unwrap(), 1);
    assert_eq!(uploads.open_sessions("carol").await.unwrap(), 0);
    let status = uploads.status(&alice[0]).await.unwrap();
    assert_eq!(status.owner.as_deref(), Some("alice"));
    assert!(status.updated >= status.started);

    uploads.cancel(&alice[0]).await.unwrap();
    let data = test_data(100, 7);
    uploads
        .append(&alice[1], 0, body_of(&data, 30))
        .await
        .unwrap();
    let digest = Digest::sha256_of(&data);
    uploads.commit(&alice[1], &digest).await.unwrap();
    assert_eq!(uploads.open_sessions("alice").await.unwrap(), 1);
    // A mismatched commit ends the session too.
    let wrong = Digest::sha256_of(b"other");
    assert!(uploads.commit(&alice[2], &wrong).await.is_err());
    assert_eq!(uploads.open_sessions("alice").await.unwrap(), 0);
    for id in [&bob.id, &nobody.id] {
        uploads.cancel(id).await.unwrap();
    }
    assert_eq!(uploads.open_sessions("bob").await.unwrap(), 0);
    blobs.delete(&digest).await.unwrap();
    assert_clean(uploads, blobs).await;
}

/// `expire_idle` cancels the sessions idle for at least the bound, and
/// only those.
pub async fn upload_expire_idle(uploads: &dyn UploadStore, blobs: &dyn BlobStore) {
    let first = uploads
        .create_for(&repo(), Some(SessionOwner::new("idle")), None)
        .await
        .unwrap();
    let second = uploads
        .create_for(&repo(), Some(SessionOwner::new("idle")), None)
        .await
        .unwrap();
    let hour = std::time::Duration::from_secs(3600);
    let report = expire_idle(uploads, hour).await.unwrap();
    assert_eq!(report.expired, 0, "fresh sessions are not idle");
    assert_eq!(uploads.list().await.unwrap().len(), 2);
    let report = expire_idle(uploads, std::time::Duration::ZERO)
        .await
        .unwrap();
    assert_eq!(report.expired, 2);
    assert_upload_unknown(uploads, &first.id).await;
    assert_upload_unknown(uploads, &second.id).await;
    assert_eq!(uploads.open_sessions("idle").await.unwrap(), 0);
    assert_clean(uploads, blobs).await;
}

/// Runs every upload test in turn, calling `after_each` after each one.
/// `blobs` is the store `uploads` commits into; both must be empty.
pub async fn run_upload_suite(
    uploads: &dyn UploadStore,
    blobs: &dyn BlobStore,
    after_each: AfterEach<'_>,
) {
    assert_clean(uploads, blobs).await;
    upload_chunked(uploads, blobs).await;
    after_each("upload_chunked");
    upload_wrong_offset(uploads, blobs).await;
    after_each("upload_wrong_offset");
    upload_failing_stream(uploads, blobs).await;
    after_each("upload_failing_stream");
    upload_commit_mismatch(uploads, blobs).await;
    after_each("upload_commit_mismatch");
    upload_last_chunk(uploads, blobs).await;
    after_each("upload_last_chunk");
    upload_cancel(uploads, blobs).await;
    after_each("upload_cancel");
    upload_unknown(uploads, blobs).await;
    after_each("upload_unknown");
    upload_digests(uploads, blobs).await;
    after_each("upload_digests");
    upload_sha512_unannounced(uploads, blobs).await;
    after_each("upload_sha512_unannounced");
    upload_list(uploads, blobs).await;
    after_each("upload_list");
    upload_owners(uploads, blobs).await;
    after_each("upload_owners");
    upload_expire_idle(uploads, blobs).await;
    after_each("upload_expire_idle");
}
