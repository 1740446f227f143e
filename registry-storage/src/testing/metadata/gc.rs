//! Garbage collection's per-blob records: the deletion protocol that makes
//! online sweeps safe (see [`crate::gc`]).

use std::time::{Duration, SystemTime};

use super::*;
use crate::metadata::{BlobRecord, BlobState};

fn is_deleted<T>(r: Result<T, StorageError>) -> bool {
    matches!(r, Err(StorageError::BlobDeleted { .. }))
}

/// Marks and finishes a deletion of an unreferenced blob (clean-up).
async fn sweep(store: &dyn MetadataStore, d: &Digest) {
    let g = store.blob_record(d).await.unwrap().generation;
    assert!(store.begin_blob_delete(d, g).await.unwrap(), "sweep {d}");
    store.finish_blob_delete(d).await.unwrap();
}

/// Asserts that no test blob is left `Deleting`.
async fn assert_no_deleting(store: &dyn MetadataStore, digests: &[&Digest]) {
    let far = SystemTime::now() + Duration::from_secs(86_400);
    let stale = store.stale_blob_deletes(far).await.unwrap();
    for d in digests {
        assert!(!stale.contains(d), "{d} left deleting");
    }
}

/// Records: links and manifest commits move the generation; a mark needs
/// the generation it read and no reference; a marked blob refuses links,
/// tickets and manifests; a deleted one refuses old tickets and manifests
/// until linked with a fresh ticket.
pub async fn metadata_blob_deletion_protocol(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let r = repo("conformance-gc/app");
    let d = blob("gc-protocol");

    assert_eq!(store.blob_record(&d).await.unwrap(), BlobRecord::UNKNOWN);
    let old_ticket = store.blob_ticket(&d).await.unwrap();
    assert_eq!(old_ticket.digest(), &d);
    store.link_blob(&r, &d).await.unwrap();
    let linked = store.blob_record(&d).await.unwrap();
    assert_eq!(linked.state, BlobState::Live);
    assert!(linked.generation > 0 && linked.touched.is_some());
    store.link_blob_with(&r, &old_ticket).await.unwrap();
    let relinked = store.blob_record(&d).await.unwrap();
    assert!(relinked.generation > linked.generation, "links move it");

    // A mark with a generation read before a link is refused.
    assert!(!store
        .begin_blob_delete(&d, linked.generation)
        .await
        .unwrap());
    assert_eq!(store.blob_record(&d).await.unwrap().state, BlobState::Live);
    assert!(store.blob_linked(&r, &d).await.unwrap());

    // The mark: links go, everything that would take the blob is refused.
    assert!(store
        .begin_blob_delete(&d, relinked.generation)
        .await
        .unwrap());
    let marked = store.blob_record(&d).await.unwrap();
    assert_eq!(marked.state, BlobState::Deleting);
    assert!(marked.epoch > relinked.epoch);
    assert!(
        !store.blob_linked(&r, &d).await.unwrap(),
        "the mark unlinks"
    );
    assert!(!store
        .begin_blob_delete(&d, marked.generation)
        .await
        .unwrap());
    assert!(matches!(
        store.blob_ticket(&d).await,
        Err(StorageError::BlobDeleted { .. })
    ));
    assert!(is_deleted(store.link_blob(&r, &d).await));
    assert!(is_deleted(store.link_blob_with(&r, &old_ticket).await));
    let mut m = manifest(&r, "gc-protocol-manifest");
    m.blobs.push(d.clone());
    assert!(is_deleted(store.put_manifest(m.clone()).await));
    assert!(store
        .get_manifest(&r, &by_digest(&m.digest))
        .await
        .unwrap()
        .is_none());
    assert!(!store.blob_linked(&r, &d).await.unwrap());
    let now = SystemTime::now();
    let stale = store
        .stale_blob_deletes(now + Duration::from_secs(1))
        .await
        .unwrap();
    assert!(stale.contains(&d), "a mark is listed once old enough");
    let stale = store
        .stale_blob_deletes(now - Duration::from_secs(3600))
        .await
        .unwrap();
    assert!(!stale.contains(&d), "a fresh mark is not abandoned");

    // Deleted: old tickets and manifests stay refused.
    store.finish_blob_delete(&d).await.unwrap();
    assert_eq!(
        store.blob_record(&d).await.unwrap().state,
        BlobState::Deleted
    );
    assert!(is_deleted(store.link_blob_with(&r, &old_ticket).await));
    assert!(is_deleted(store.put_manifest(m.clone()).await));

    // Stored again: a fresh ticket links it, then manifests may use it, and
    // a referenced blob cannot be marked.
    let fresh = store.blob_ticket(&d).await.unwrap();
    store.link_blob_with(&r, &fresh).await.unwrap();
    assert_eq!(store.blob_record(&d).await.unwrap().state, BlobState::Live);
    store.put_manifest(m.clone()).await.unwrap();
    let g = store.blob_record(&d).await.unwrap().generation;
    assert!(!store.begin_blob_delete(&d, g).await.unwrap());

    store.delete_repository(&r).await.unwrap();
    for b in &m.blobs {
        sweep(store, b).await;
    }
    let all: Vec<&Digest> = m.blobs.iter().collect();
    assert_no_deleting(store, &all).await;
    before.assert_unchanged(store).await;
}

/// Manifest commits and marks of the same blobs, concurrently: for every
/// blob, never both.
pub async fn metadata_blob_deletion_races(store: Arc<dyn MetadataStore>) {
    const N: usize = 24;
    let before = Snapshot::take(store.as_ref()).await;
    let r = repo("conformance-gc-race/app");
    let digests: Vec<Digest> = (0..N).map(|i| blob(&format!("gc-race-{i}"))).collect();
    let mut generations = Vec::new();
    for d in &digests {
        store.link_blob(&r, d).await.unwrap();
        generations.push(store.blob_record(d).await.unwrap().generation);
    }
    let mut tasks = Vec::new();
    for (i, (d, g)) in digests.iter().zip(generations).enumerate() {
        let (store, d, r) = (store.clone(), d.clone(), r.clone());
        tasks.push(tokio::spawn(async move {
            let mut m = manifest(&r, &format!("gc-race-manifest-{i}"));
            m.blobs = vec![d.clone()];
            m.config = None;
            let (committed, marked) = tokio::join!(
                store.put_manifest(m.clone()),
                store.begin_blob_delete(&d, g)
            );
            let marked = marked.unwrap();
            assert!(
                committed.is_ok() != marked,
                "{d}: commit {committed:?}, mark {marked}"
            );
            if marked {
                store.finish_blob_delete(&d).await.unwrap();
            }
            (m.digest, committed.is_ok())
        }));
    }
    for t in tasks {
        let (digest, committed) = t.await.unwrap();
        let stored = store.get_manifest(&r, &by_digest(&digest)).await.unwrap();
        assert_eq!(stored.is_some(), committed);
    }
    store.delete_repository(&r).await.unwrap();
    for d in &digests {
        if store.blob_record(d).await.unwrap().state == BlobState::Live {
            sweep(store.as_ref(), d).await;
        }
    }
    let all: Vec<&Digest> = digests.iter().collect();
    assert_no_deleting(store.as_ref(), &all).await;
    before.assert_unchanged(store.as_ref()).await;
}
