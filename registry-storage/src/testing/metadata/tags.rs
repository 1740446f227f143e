//! Tags: moves, history, listing.

use super::*;

/// Tags move with put_manifest; history is newest first with digest and
/// actor; a deletion is an event; `tags()` lists current records.
pub async fn metadata_tag_history(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let r = repo("conformance-history/app");
    let latest = tag("latest");
    assert!(store
        .tag_history(&r, &latest, None, usize::MAX)
        .await
        .unwrap()
        .is_empty());

    let m1 = with_tags(manifest(&r, "history-1"), &["latest", "v1"], "alice");
    let m2 = with_tags(manifest(&r, "history-2"), &["latest"], "bob");
    store.put_manifest(m1.clone()).await.unwrap();
    store.put_manifest(m2.clone()).await.unwrap();
    let records = store.tags(&r, None, usize::MAX).await.unwrap();
    // Re-pointing a tag at its current target is not a move.
    store
        .put_manifest(with_tags(m2.clone(), &["latest"], "mallory"))
        .await
        .unwrap();
    assert_eq!(
        store.tags(&r, None, usize::MAX).await.unwrap(),
        records,
        "a no-op put changes no tag"
    );

    let got = store
        .get_manifest(&r, &by_tag("latest"))
        .await
        .unwrap()
        .expect("latest");
    assert_eq!(got.digest, m2.digest);
    assert_eq!(
        records
            .iter()
            .map(|t| (t.tag.clone(), t.digest.clone()))
            .collect::<Vec<_>>(),
        vec![
            (latest.clone(), m2.digest.clone()),
            (tag("v1"), m1.digest.clone())
        ]
    );

    let missing = store.delete_tag(&r, &tag("nope"), "carol").await;
    assert!(missing.unwrap_err().is_not_found());
    store.delete_tag(&r, &latest, "carol").await.unwrap();
    assert!(store
        .delete_tag(&r, &latest, "carol")
        .await
        .unwrap_err()
        .is_not_found());
    assert_eq!(
        store.get_manifest(&r, &by_tag("latest")).await.unwrap(),
        None
    );
    assert!(
        store
            .get_manifest(&r, &by_digest(&m2.digest))
            .await
            .unwrap()
            .is_some(),
        "deleting a tag keeps its manifest"
    );

    let history: Vec<(Option<Digest>, String)> = store
        .tag_history(&r, &latest, None, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|TagEvent { digest, actor, .. }| (digest, actor))
        .collect();
    assert_eq!(
        history,
        vec![
            (None, "carol".to_owned()),
            (Some(m2.digest.clone()), "bob".to_owned()),
            (Some(m1.digest.clone()), "alice".to_owned()),
        ]
    );
    let v1 = store
        .tag_history(&r, &tag("v1"), None, usize::MAX)
        .await
        .unwrap();
    assert_eq!(v1.len(), 1);
    assert_eq!(v1[0].digest.as_ref(), Some(&m1.digest));

    store.delete_repository(&r).await.unwrap();
    before.assert_unchanged(store).await;
}

/// `list_tags` in lexical order with `n`/`last`, including `last` past the end.
pub async fn metadata_list_tags_pagination(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let r = repo("conformance-list-tags/app");
    let names = ["v2", "latest", "V1", "v1.1", "v1.0"];
    store
        .put_manifest(with_tags(manifest(&r, "list-tags"), &names, "alice"))
        .await
        .unwrap();
    let list = |last: Option<&str>, n: usize| {
        let last = last.map(tag);
        let r = r.clone();
        async move { store.list_tags(&r, last.as_ref(), n).await.unwrap() }
    };
    let all: Vec<Tag> = ["V1", "latest", "v1.0", "v1.1", "v2"].map(tag).into();
    assert_eq!(list(None, 100).await, all, "byte-wise lexical order");
    assert_eq!(list(None, 2).await, all[..2]);
    assert_eq!(list(Some("latest"), 2).await, all[2..4]);
    assert_eq!(list(Some("v1.1"), 2).await, all[4..]);
    assert_eq!(list(Some("m"), 1).await, all[2..3], "last need not exist");
    assert!(list(Some("v2"), 2).await.is_empty());
    assert!(list(Some("zzz"), 2).await.is_empty(), "last beyond the end");
    assert!(list(None, 0).await.is_empty());
    let unknown = repo("conformance-list-tags/unknown");
    assert!(store
        .list_tags(&unknown, None, 10)
        .await
        .unwrap()
        .is_empty());

    store.delete_repository(&r).await.unwrap();
    before.assert_unchanged(store).await;
}

/// Immutable tags (`NewManifest::fixed_tags`): created, re-pointed at the
/// same image, never moved; a refused put stores nothing, not even its
/// other tags.
pub async fn metadata_fixed_tags(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let r = repo("conformance-fixed/app");
    let fixed = |m: NewManifest, tags: &[&str]| NewManifest {
        fixed_tags: tags.iter().map(|t| tag(t)).collect(),
        ..m
    };
    let m1 = fixed(
        with_tags(manifest(&r, "fixed-1"), &["v1"], "alice"),
        &["v1"],
    );
    let m2 = manifest(&r, "fixed-2");
    store.put_manifest(m1.clone()).await.unwrap();
    store.put_manifest(m1.clone()).await.unwrap();

    let refused = store
        .put_manifest(fixed(
            with_tags(m2.clone(), &["latest", "v1"], "mallory"),
            &["v1"],
        ))
        .await;
    match refused {
        Err(StorageError::TagImmutable { tag: t, current }) => {
            assert_eq!(t, tag("v1"));
            assert_eq!(current, m1.digest);
        }
        other => panic!("expected TagImmutable, got {other:?}"),
    }
    assert!(store
        .get_manifest(&r, &by_digest(&m2.digest))
        .await
        .unwrap()
        .is_none());
    assert!(store
        .get_manifest(&r, &by_tag("latest"))
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        store
            .tag_history(&r, &tag("v1"), None, usize::MAX)
            .await
            .unwrap()
            .len(),
        1
    );
    // Not fixed, the same tag moves; a fixed tag that does not exist yet is made.
    store
        .put_manifest(with_tags(m2.clone(), &["v1"], "bob"))
        .await
        .unwrap();
    store
        .put_manifest(fixed(with_tags(m2.clone(), &["v2"], "bob"), &["v2"]))
        .await
        .unwrap();
    let got = store
        .get_manifest(&r, &by_tag("v2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.digest, m2.digest);

    store.delete_repository(&r).await.unwrap();
    before.assert_unchanged(store).await;
}

/// `delete_manifest` refuses, changing nothing, while a tag that the
/// namespace policy's immutable-tags rules protect points at the image
/// (the rule holds however the tag came there); other images delete.
pub async fn metadata_delete_keeps_immutable_tags(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let n = ns("conformance-immutable");
    let r = repo("conformance-immutable/app");
    store.create_namespace(&n).await.unwrap();
    let policy: NamespacePolicy = serde_json::from_str(r#"{"immutable_tags":["v*"]}"#).unwrap();
    store.set_namespace_policy(&n, &policy).await.unwrap();
    let released = with_tags(manifest(&r, "immutable-1"), &["latest", "v1"], "alice");
    let scratch = with_tags(manifest(&r, "immutable-2"), &["dev"], "alice");
    store.put_manifest(released.clone()).await.unwrap();
    store.put_manifest(scratch.clone()).await.unwrap();
    match store.delete_manifest(&r, &released.digest, "mallory").await {
        Err(StorageError::TagImmutable { tag: t, current }) => {
            assert_eq!(t, tag("v1"));
            assert_eq!(current, released.digest);
        }
        other => panic!("expected TagImmutable, got {other:?}"),
    }
    for t in ["latest", "v1"] {
        let got = store.get_manifest(&r, &by_tag(t)).await.unwrap();
        assert_eq!(got.map(|m| m.digest), Some(released.digest.clone()), "{t}");
    }
    assert_eq!(
        store
            .tag_history(&r, &tag("latest"), None, usize::MAX)
            .await
            .unwrap()
            .len(),
        1,
        "a refused delete records nothing"
    );
    store
        .delete_manifest(&r, &scratch.digest, "alice")
        .await
        .unwrap();
    // Without the rule, the image goes with its tags.
    store
        .set_namespace_policy(&n, &NamespacePolicy::default())
        .await
        .unwrap();
    store
        .delete_manifest(&r, &released.digest, "alice")
        .await
        .unwrap();
    store.delete_namespace(&n).await.unwrap();
    before.assert_unchanged(store).await;
}
