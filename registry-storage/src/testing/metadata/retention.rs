//! What retention reads and its conditional delete.

use std::time::{Duration, SystemTime};

use super::*;
use crate::metadata::ManifestNode;

/// An index over `children` (no blobs of its own).
fn index_of(repository: &RepositoryName, seed: &str, children: &[&NewManifest]) -> NewManifest {
    let mut m = manifest(repository, seed);
    m.media_type = media_type::OCI_INDEX.to_owned();
    m.config = None;
    m.blobs = Vec::new();
    m.children = children.iter().map(|c| c.digest.clone()).collect();
    m
}

fn referrer_of(repository: &RepositoryName, seed: &str, subject: &NewManifest) -> NewManifest {
    let mut m = manifest(repository, seed);
    m.subject = Some(subject.digest.clone());
    m
}

async fn all_nodes(store: &dyn MetadataStore, r: &RepositoryName) -> Vec<ManifestNode> {
    store.manifest_nodes(r, None, usize::MAX).await.unwrap()
}

/// `manifest_nodes` lists a repository's manifests by digest with their
/// subject, children and blobs, page by page; a push of the same digest
/// again moves `pushed`, never `created`.
pub async fn metadata_manifest_nodes(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let r = repo("conformance-nodes/app");
    assert!(all_nodes(store, &r).await.is_empty(), "missing repository");
    let a = manifest(&r, "nodes-a");
    let b = manifest(&r, "nodes-b");
    let sig = referrer_of(&r, "nodes-sig", &a);
    let idx = index_of(&r, "nodes-index", &[&a, &b]);
    for m in [&a, &b, &sig, &idx] {
        store.put_manifest(m.clone()).await.unwrap();
    }
    let nodes = all_nodes(store, &r).await;
    let mut digests: Vec<Digest> = [&a, &b, &sig, &idx]
        .iter()
        .map(|m| m.digest.clone())
        .collect();
    digests.sort();
    assert_eq!(
        nodes.iter().map(|n| n.digest.clone()).collect::<Vec<_>>(),
        digests,
        "sorted by digest"
    );
    let node = |m: &NewManifest| nodes.iter().find(|n| n.digest == m.digest).unwrap().clone();
    let mut children = node(&idx).children;
    children.sort();
    let mut expected = vec![a.digest.clone(), b.digest.clone()];
    expected.sort();
    assert_eq!(children, expected);
    assert!(node(&idx).blobs.is_empty());
    assert_eq!(node(&sig).subject, Some(a.digest.clone()));
    let mut blobs = node(&a).blobs;
    blobs.sort();
    let mut expected = a.blobs.clone();
    expected.sort();
    assert_eq!(blobs, expected);
    assert_eq!(node(&a).created, node(&a).pushed);
    let absent = manifest(&r, "nodes-absent").digest;
    assert_eq!(
        store
            .manifests_present(&r, &[idx.digest.clone(), absent, a.digest.clone()])
            .await
            .unwrap(),
        [true, false, true]
    );

    // Pages: after a digest, at most `limit`.
    let first = store.manifest_nodes(&r, None, 3).await.unwrap();
    assert_eq!(first.len(), 3);
    let rest = store
        .manifest_nodes(&r, Some(&first[2].digest), 3)
        .await
        .unwrap();
    assert_eq!(rest, vec![nodes[3].clone()]);

    // The same digest pushed again: `pushed` moves, `created` stays.
    tokio::time::sleep(Duration::from_millis(5)).await;
    store.put_manifest(a.clone()).await.unwrap();
    let again = all_nodes(store, &r).await;
    let again = again.iter().find(|n| n.digest == a.digest).unwrap();
    assert_eq!(again.created, node(&a).created);
    assert!(again.pushed > node(&a).pushed, "pushed moves");

    store.delete_repository(&r).await.unwrap();
    before.assert_unchanged(store).await;
}

/// An index whose child is not a manifest of the repository is refused
/// with `ManifestMissing`, storing nothing.
pub async fn metadata_index_children_must_exist(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let r = repo("conformance-children/app");
    let a = manifest(&r, "children-a");
    let absent = manifest(&r, "children-absent");
    store.put_manifest(a.clone()).await.unwrap();
    let idx = with_tags(index_of(&r, "children-index", &[&a, &absent]), &["v1"], "t");
    match store.put_manifest(idx.clone()).await {
        Err(StorageError::ManifestMissing { digest }) => assert_eq!(digest, absent.digest),
        other => panic!("expected ManifestMissing, got {other:?}"),
    }
    assert_eq!(
        store
            .get_manifest(&r, &by_digest(&idx.digest))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_manifest(&r, &by_tag("v1")).await.unwrap(), None);
    assert!(store
        .tag_history(&r, &tag("v1"), None, usize::MAX)
        .await
        .unwrap()
        .is_empty());
    // A child in another repository does not count either.
    let other = repo("conformance-children/other");
    store
        .put_manifest(manifest(&other, "children-absent"))
        .await
        .unwrap();
    assert!(store.put_manifest(idx.clone()).await.is_err());
    store.put_manifest(absent.clone()).await.unwrap();
    store.put_manifest(idx).await.unwrap();
    store.delete_repository(&r).await.unwrap();
    store.delete_repository(&other).await.unwrap();
    before.assert_unchanged(store).await;
}

/// `delete_unreferenced_manifests` deletes only what nothing keeps: not a
/// tagged manifest, not a child of a present index, not a referrer of a
/// present subject, not one pushed at or after the plan; tag history stays.
pub async fn metadata_delete_unreferenced_manifest(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let r = repo("conformance-unreferenced/app");
    let a = manifest(&r, "unref-a");
    let child = manifest(&r, "unref-child");
    let idx = index_of(&r, "unref-index", &[&child]);
    let sig = referrer_of(&r, "unref-sig", &a);
    store
        .put_manifest(with_tags(a.clone(), &["latest"], "t"))
        .await
        .unwrap();
    for m in [&child, &idx, &sig] {
        store.put_manifest(m.clone()).await.unwrap();
    }
    let later = SystemTime::now() + Duration::from_secs(60);
    let delete = |m: &NewManifest, planned: SystemTime| {
        let digest = m.digest.clone();
        let r = r.clone();
        async move {
            store
                .delete_unreferenced_manifests(&r, &[digest], planned)
                .await
                .unwrap()
                == [true]
        }
    };
    assert!(!delete(&a, later).await, "tagged");
    assert!(!delete(&child, later).await, "child of a present index");
    assert!(!delete(&sig, later).await, "referrer of a present subject");
    let long_ago = SystemTime::UNIX_EPOCH + Duration::from_secs(1);
    assert!(!delete(&idx, long_ago).await, "pushed after the plan");
    assert!(
        !delete(&manifest(&r, "unref-never"), later).await,
        "missing is false"
    );
    for m in [&a, &child, &idx, &sig] {
        assert!(store
            .get_manifest(&r, &by_digest(&m.digest))
            .await
            .unwrap()
            .is_some());
    }

    // Owners first: the index, then its child; the tag, then its image,
    // then its referrer. One batch sees its earlier deletes; a batch in the
    // wrong order deletes only what nothing keeps at each step.
    let batch = |ms: &[&NewManifest]| ms.iter().map(|m| m.digest.clone()).collect::<Vec<_>>();
    assert_eq!(
        store
            .delete_unreferenced_manifests(&r, &batch(&[&child, &idx]), later)
            .await
            .unwrap(),
        [false, true],
        "the child first: its index still holds it"
    );
    assert!(delete(&child, later).await);
    store.delete_tag(&r, &tag("latest"), "t").await.unwrap();
    assert_eq!(
        store
            .delete_unreferenced_manifests(&r, &batch(&[&a, &sig]), later)
            .await
            .unwrap(),
        [true, true]
    );
    assert!(all_nodes(store, &r).await.is_empty());
    assert!(store
        .referrers(&r, &a.digest, None, None, usize::MAX)
        .await
        .unwrap()
        .is_empty());
    // History keeps pointing at the removed image.
    let history = store
        .tag_history(&r, &tag("latest"), None, usize::MAX)
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].digest, Some(a.digest.clone()));
    assert_eq!(store.blob_reference_count(&a.blobs[1]).await.unwrap(), 0);
    store.delete_repository(&r).await.unwrap();
    before.assert_unchanged(store).await;
}

/// `blob_reference_count` counts manifests of every repository.
pub async fn metadata_blob_reference_count(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let (r1, r2) = (
        repo("conformance-refcount/a"),
        repo("conformance-refcount/b"),
    );
    let m1 = manifest(&r1, "refcount-1");
    let mut m2 = manifest(&r1, "refcount-2");
    m2.blobs.push(m1.blobs[1].clone());
    let m3 = manifest(&r2, "refcount-1");
    for m in [&m1, &m2, &m3] {
        store.put_manifest(m.clone()).await.unwrap();
    }
    assert_eq!(store.blob_reference_count(&m1.blobs[1]).await.unwrap(), 3);
    assert_eq!(store.blob_reference_count(&m2.blobs[1]).await.unwrap(), 1);
    assert_eq!(store.blob_reference_count(&blob("none")).await.unwrap(), 0);
    store.delete_repository(&r1).await.unwrap();
    store.delete_repository(&r2).await.unwrap();
    before.assert_unchanged(store).await;
}

/// `tag_events` lists every event of a repository, deleted tags' included,
/// by tag then oldest first, paged by (tag, seq).
pub async fn metadata_tag_events(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let r = repo("conformance-events/app");
    assert!(store
        .tag_events(&r, None, usize::MAX)
        .await
        .unwrap()
        .is_empty());
    let m1 = manifest(&r, "events-1");
    let m2 = manifest(&r, "events-2");
    store
        .put_manifest(with_tags(m1.clone(), &["b", "a"], "t"))
        .await
        .unwrap();
    store
        .put_manifest(with_tags(m2.clone(), &["b"], "t"))
        .await
        .unwrap();
    store.delete_tag(&r, &tag("a"), "t").await.unwrap();
    let events = store.tag_events(&r, None, usize::MAX).await.unwrap();
    let seen: Vec<(String, Option<Digest>)> = events
        .iter()
        .map(|(t, e)| (t.to_string(), e.digest.clone()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("a".into(), Some(m1.digest.clone())),
            ("a".into(), None),
            ("b".into(), Some(m1.digest.clone())),
            ("b".into(), Some(m2.digest.clone())),
        ]
    );
    // Page by page gives the same events.
    let mut paged: Vec<(Tag, TagEvent)> = Vec::new();
    loop {
        let after = paged.last().map(|(t, e)| (t.clone(), e.seq));
        let page = store
            .tag_events(&r, after.as_ref().map(|(t, s)| (t, *s)), 1)
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        assert_eq!(page.len(), 1);
        paged.extend(page);
    }
    assert_eq!(paged, events);
    store.delete_repository(&r).await.unwrap();
    before.assert_unchanged(store).await;
}
