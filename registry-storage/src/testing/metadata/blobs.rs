//! Blob links and the mark set.

use super::*;

/// Blob links: link, linked, unlink (`NotFound` when missing), put_manifest
/// links its blobs, forget_blob removes every link.
pub async fn metadata_blob_links(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let (a, b) = (repo("conformance-links/a"), repo("conformance-links/b"));
    let d = blob("links");
    assert!(!store.blob_linked(&a, &d).await.unwrap());
    store.link_blob(&a, &d).await.unwrap();
    store.link_blob(&a, &d).await.unwrap();
    assert!(
        store.repository(&a).await.unwrap().is_some(),
        "link creates the repository"
    );
    assert!(store.blob_linked(&a, &d).await.unwrap());
    assert!(
        !store.blob_linked(&b, &d).await.unwrap(),
        "links are per repository"
    );
    store.unlink_blob(&a, &d).await.unwrap();
    assert!(!store.blob_linked(&a, &d).await.unwrap());
    assert!(store.unlink_blob(&a, &d).await.unwrap_err().is_not_found());
    assert!(store.unlink_blob(&b, &d).await.unwrap_err().is_not_found());

    let m = manifest(&b, "links-manifest");
    store.put_manifest(m.clone()).await.unwrap();
    for referenced in &m.blobs {
        assert!(
            store.blob_linked(&b, referenced).await.unwrap(),
            "put links {referenced}"
        );
        assert!(!store.blob_linked(&a, referenced).await.unwrap());
    }

    store.link_blob(&a, &d).await.unwrap();
    store.link_blob(&b, &d).await.unwrap();
    store.forget_blob(&d).await.unwrap();
    assert!(!store.blob_linked(&a, &d).await.unwrap());
    assert!(!store.blob_linked(&b, &d).await.unwrap());
    assert!(
        store.blob_linked(&b, &m.blobs[0]).await.unwrap(),
        "other links stay"
    );
    store.forget_blob(&blob("links-never")).await.unwrap();

    store.delete_repository(&a).await.unwrap();
    store.delete_repository(&b).await.unwrap();
    before.assert_unchanged(store).await;
}

/// `referenced_blobs` holds what manifests reference, not mere links.
pub async fn metadata_referenced_blobs(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let r = repo("conformance-referenced/app");
    let m = manifest(&r, "referenced");
    store.put_manifest(m.clone()).await.unwrap();
    let only_linked = blob("referenced-only-linked");
    store.link_blob(&r, &only_linked).await.unwrap();
    let set = store.referenced_blobs().await.unwrap();
    for b in &m.blobs {
        assert!(set.contains(b), "{b} is referenced");
    }
    assert!(!set.contains(&only_linked), "a link is not a reference");
    assert!(
        !set.contains(&m.digest),
        "the manifest itself is not a blob reference"
    );
    store.delete_repository(&r).await.unwrap();
    before.assert_unchanged(store).await;
}
