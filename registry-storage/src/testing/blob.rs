//! Conformance tests for [`BlobStore`] backends, and helpers to write more.

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use registry_core::{Algorithm, Digest};

use crate::blob::{BlobStore, ByteRange, ByteStream};
use crate::error::{Result, StorageError};

/// Called after each test of a suite with the test's name: backends check
/// their own left-overs there (temp files, session directories) and panic
/// if they find any. `&|_| {}` checks nothing more.
pub type AfterEach<'a> = &'a (dyn Fn(&'static str) + Sync);

/// `len` deterministic pseudo-random bytes; different `seed`s give
/// different contents.
pub fn test_data(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// `data` as a body of `chunk`-sized pieces.
pub fn body_of(data: &[u8], chunk: usize) -> ByteStream {
    let chunks: Vec<Result<Bytes>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(chunks).boxed()
}

/// A body that yields `data` and then fails, like a client that went away.
pub fn failing_body(data: &[u8]) -> ByteStream {
    let items: Vec<Result<Bytes>> = vec![
        Ok(Bytes::copy_from_slice(data)),
        Err(StorageError::Incoming {
            source: "client went away".into(),
        }),
    ];
    stream::iter(items).boxed()
}

/// Collects a body into memory (tests only: bodies are small there).
pub async fn read_body(body: ByteStream) -> Result<Vec<u8>> {
    body.try_fold(Vec::new(), |mut all, chunk| async move {
        all.extend_from_slice(&chunk);
        Ok(all)
    })
    .await
}

/// Every digest in the store, sorted.
pub async fn list_digests(store: &dyn BlobStore) -> Vec<Digest> {
    let mut digests: Vec<Digest> = store
        .list()
        .map_ok(|info| info.digest)
        .try_collect()
        .await
        .expect("list blobs");
    digests.sort();
    digests
}

/// Panics unless the store holds no blob.
pub async fn assert_no_blobs(store: &dyn BlobStore) {
    let left = list_digests(store).await;
    assert!(left.is_empty(), "blobs left behind: {left:?}");
}

async fn get_all(store: &dyn BlobStore, digest: &Digest) -> Vec<u8> {
    let body = store.get(digest, None).await.expect("get blob");
    read_body(body.stream).await.expect("read blob")
}

/// put, stat, get, list and delete of one blob; a second delete is `NotFound`.
pub async fn blob_put_get_stat_delete(store: &dyn BlobStore) {
    let data = test_data(300_000, 1);
    let digest = Digest::sha256_of(&data);
    assert_eq!(store.stat(&digest).await.unwrap(), None);

    let info = store.put(&digest, body_of(&data, 7_000)).await.unwrap();
    assert_eq!(info.digest, digest);
    assert_eq!(info.size, data.len() as u64);

    let stat = store.stat(&digest).await.unwrap().expect("blob exists");
    assert_eq!(stat.size, data.len() as u64);
    let body = store.get(&digest, None).await.unwrap();
    assert_eq!(body.total_size, data.len() as u64);
    assert_eq!(body.range, (0, data.len() as u64));
    assert_eq!(read_body(body.stream).await.unwrap(), data);
    assert_eq!(list_digests(store).await, vec![digest.clone()]);

    store.delete(&digest).await.unwrap();
    assert_eq!(store.stat(&digest).await.unwrap(), None);
    assert!(store.delete(&digest).await.unwrap_err().is_not_found());
    assert_no_blobs(store).await;
}

/// get, stat and delete of a digest never stored.
pub async fn blob_missing(store: &dyn BlobStore) {
    let digest = Digest::sha256_of(b"never stored");
    assert_eq!(store.stat(&digest).await.unwrap(), None);
    assert!(store.get(&digest, None).await.unwrap_err().is_not_found());
    let range = ByteRange {
        start: 0,
        end: Some(1),
    };
    assert!(store
        .get(&digest, Some(range))
        .await
        .unwrap_err()
        .is_not_found());
    assert!(store.delete(&digest).await.unwrap_err().is_not_found());
    assert_no_blobs(store).await;
}

/// A body whose digest differs from the promised one is refused and leaves
/// nothing, under either digest.
pub async fn blob_digest_mismatch_leaves_nothing(store: &dyn BlobStore) {
    let data = test_data(100_000, 2);
    let wrong = Digest::sha256_of(b"something else");
    let err = store.put(&wrong, body_of(&data, 10_000)).await.unwrap_err();
    match err {
        StorageError::DigestMismatch { expected, actual } => {
            assert_eq!(expected, wrong);
            assert_eq!(actual, Digest::sha256_of(&data));
        }
        other => panic!("expected DigestMismatch, got {other:?}"),
    }
    assert_eq!(store.stat(&wrong).await.unwrap(), None);
    assert_eq!(store.stat(&Digest::sha256_of(&data)).await.unwrap(), None);
    assert_no_blobs(store).await;
}

/// A body that fails part-way is an error and leaves nothing.
pub async fn blob_failing_stream_leaves_nothing(store: &dyn BlobStore) {
    let data = test_data(50_000, 3);
    let digest = Digest::sha256_of(&data);
    let err = store
        .put(&digest, failing_body(&data[..20_000]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StorageError::Incoming { .. }),
        "expected the body's error, got {err:?}"
    );
    assert_eq!(store.stat(&digest).await.unwrap(), None);
    assert_no_blobs(store).await;
}

/// Ranges: whole, middle, open-ended, last byte; out of bounds, empty and
/// starting past the end are `RangeNotSatisfiable`.
pub async fn blob_ranges(store: &dyn BlobStore) {
    let data = test_data(3 * 1024 * 1024 + 17, 4);
    let digest = Digest::sha256_of(&data);
    store.put(&digest, body_of(&data, 1 << 20)).await.unwrap();
    let size = data.len() as u64;

    for (start, end) in [
        (0, Some(size)),
        (10, Some(20)),
        (1_000_000, None),
        (size - 1, None),
        (5, Some(2 * 1024 * 1024 + 3)),
    ] {
        let body = store
            .get(&digest, Some(ByteRange { start, end }))
            .await
            .unwrap();
        let end = end.unwrap_or(size);
        assert_eq!(body.total_size, size);
        assert_eq!(body.range, (start, end));
        assert_eq!(body.len(), end - start);
        assert_eq!(
            read_body(body.stream).await.unwrap(),
            &data[start as usize..end as usize]
        );
    }
    for (start, end) in [
        (size, None),
        (size + 10, None),
        (0, Some(size + 1)),
        (10, Some(10)),
        (20, Some(10)),
    ] {
        let err = store
            .get(&digest, Some(ByteRange { start, end }))
            .await
            .unwrap_err();
        assert!(
            matches!(err, StorageError::RangeNotSatisfiable { size: s, .. } if s == size),
            "range {start}..{end:?}: expected RangeNotSatisfiable, got {err:?}"
        );
    }
    store.delete(&digest).await.unwrap();
    assert_no_blobs(store).await;
}

/// Putting a stored digest again succeeds (and still checks the body);
/// the blob stays as it was.
pub async fn blob_put_existing(store: &dyn BlobStore) {
    let data = test_data(10_000, 5);
    let digest = Digest::sha256_of(&data);
    store.put(&digest, body_of(&data, 999)).await.unwrap();
    let again = store.put(&digest, body_of(&data, 4096)).await.unwrap();
    assert_eq!(again.size, data.len() as u64);
    let err = store.put(&digest, body_of(b"other", 5)).await.unwrap_err();
    assert!(matches!(err, StorageError::DigestMismatch { .. }));
    assert_eq!(get_all(store, &digest).await, data);
    assert_eq!(list_digests(store).await, vec![digest.clone()]);
    store.delete(&digest).await.unwrap();
    assert_no_blobs(store).await;
}

/// Concurrent puts of one digest all succeed and leave one whole copy.
pub async fn blob_concurrent_puts_of_one_digest(store: &dyn BlobStore) {
    let data = test_data(2 * 1024 * 1024 + 5, 6);
    let digest = Digest::sha256_of(&data);
    let puts = (0..8).map(|i| store.put(&digest, body_of(&data, 10_000 + i * 30_000)));
    for result in futures::future::join_all(puts).await {
        assert_eq!(result.unwrap().size, data.len() as u64);
    }
    assert_eq!(list_digests(store).await, vec![digest.clone()]);
    assert_eq!(get_all(store, &digest).await, data);
    store.delete(&digest).await.unwrap();
    assert_no_blobs(store).await;
}

/// SHA-512 digests are stored and found under their own algorithm.
pub async fn blob_sha512(store: &dyn BlobStore) {
    let data = test_data(70_000, 7);
    let digest = Digest::of(Algorithm::Sha512, &data);
    let info = store.put(&digest, body_of(&data, 8192)).await.unwrap();
    assert_eq!(info.digest, digest);
    assert_eq!(get_all(store, &digest).await, data);
    // The same bytes under SHA-256 are another blob.
    let sha256 = Digest::sha256_of(&data);
    assert_eq!(store.stat(&sha256).await.unwrap(), None);
    let wrong = Digest::of(Algorithm::Sha512, b"other");
    assert!(matches!(
        store.put(&wrong, body_of(&data, 8192)).await,
        Err(StorageError::DigestMismatch { .. })
    ));
    assert_eq!(list_digests(store).await, vec![digest.clone()]);
    store.delete(&digest).await.unwrap();
    assert_no_blobs(store).await;
}

/// The empty blob: no chunks at all, or one empty chunk.
pub async fn blob_empty(store: &dyn BlobStore) {
    let digest = Digest::sha256_of(b"");
    let info = store.put(&digest, stream::empty().boxed()).await.unwrap();
    assert_eq!(info.size, 0);
    store.put(&digest, body_of(b"", 1)).await.unwrap();
    let body = store.get(&digest, None).await.unwrap();
    assert_eq!((body.total_size, body.range), (0, (0, 0)));
    assert!(body.is_empty());
    assert!(read_body(body.stream).await.unwrap().is_empty());
    let range = ByteRange {
        start: 0,
        end: None,
    };
    assert!(matches!(
        store.get(&digest, Some(range)).await,
        Err(StorageError::RangeNotSatisfiable { .. })
    ));
    store.delete(&digest).await.unwrap();
    assert_no_blobs(store).await;
}

/// `list` reports every blob with its size.
pub async fn blob_list(store: &dyn BlobStore) {
    let mut expected = Vec::new();
    for seed in 0..20 {
        let data = test_data(seed as usize * 100, 100 + seed);
        let digest = Digest::sha256_of(&data);
        store.put(&digest, body_of(&data, 64)).await.unwrap();
        expected.push((digest, data.len() as u64));
    }
    let sha512 = Digest::of(Algorithm::Sha512, b"x");
    store.put(&sha512, body_of(b"x", 1)).await.unwrap();
    expected.push((sha512, 1));
    expected.sort();

    let mut listed: Vec<(Digest, u64)> = store
        .list()
        .map_ok(|info| (info.digest, info.size))
        .try_collect()
        .await
        .unwrap();
    listed.sort();
    assert_eq!(listed, expected);
    for (digest, _) in &expected {
        store.delete(digest).await.unwrap();
    }
    assert_no_blobs(store).await;
}

/// Runs every blob test in turn, calling `after_each` after each one.
/// The store must be empty at the start.
pub async fn run_blob_suite(store: &dyn BlobStore, after_each: AfterEach<'_>) {
    assert_no_blobs(store).await;
    blob_put_get_stat_delete(store).await;
    after_each("blob_put_get_stat_delete");
    blob_missing(store).await;
    after_each("blob_missing");
    blob_digest_mismatch_leaves_nothing(store).await;
    after_each("blob_digest_mismatch_leaves_nothing");
    blob_failing_stream_leaves_nothing(store).await;
    after_each("blob_failing_stream_leaves_nothing");
    blob_ranges(store).await;
    after_each("blob_ranges");
    blob_put_existing(store).await;
    after_each("blob_put_existing");
    blob_concurrent_puts_of_one_digest(store).await;
    after_each("blob_concurrent_puts_of_one_digest");
    blob_sha512(store).await;
    after_each("blob_sha512");
    blob_empty(store).await;
    after_each("blob_empty");
    blob_list(store).await;
    after_each("blob_list");
}
