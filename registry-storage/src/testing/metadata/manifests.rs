//! Manifests: put, get, delete, find, referrers, concurrent puts.

use super::*;

/// Put and get by digest and by tag; exact bytes; a second put of the same
/// digest keeps the first bytes and creation time.
pub async fn metadata_manifest_put_get(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let r = repo("conformance-put/app");
    assert_eq!(store.repository(&r).await.unwrap(), None);
    assert_eq!(store.get_manifest(&r, &by_tag("v1")).await.unwrap(), None);

    let mut m = with_tags(manifest(&r, "put"), &["v1"], "alice");
    m.artifact_type = Some("application/vnd.example".to_owned());
    m.annotations
        .insert("org.opencontainers.image.title".to_owned(), "x".to_owned());
    store.put_manifest(m.clone()).await.unwrap();

    let info = store
        .repository(&r)
        .await
        .unwrap()
        .expect("put creates the repository");
    assert_eq!(info.name, r);
    let got = store
        .get_manifest(&r, &by_digest(&m.digest))
        .await
        .unwrap()
        .expect("manifest by digest");
    assert_eq!(got.repository, r);
    assert_eq!(got.digest, m.digest);
    assert_eq!(got.bytes, m.bytes, "bytes are kept exactly");
    assert_eq!(got.media_type, m.media_type);
    assert_eq!(got.subject, None);
    assert_eq!(got.artifact_type, m.artifact_type);
    assert_eq!(got.annotations, m.annotations);
    assert_eq!(got.config, m.config);
    assert_eq!(
        store.get_manifest(&r, &by_tag("v1")).await.unwrap(),
        Some(got.clone())
    );
    assert_eq!(store.get_manifest(&r, &by_tag("v2")).await.unwrap(), None);
    let other = repo("conformance-put/other");
    assert_eq!(
        store
            .get_manifest(&other, &by_digest(&m.digest))
            .await
            .unwrap(),
        None
    );

    // Same digest again (bytes deliberately different to see which are kept).
    let mut again = with_tags(m.clone(), &["v2"], "bob");
    again.bytes = Bytes::from_static(b"{}");
    again.media_type = media_type::DOCKER_MANIFEST.to_owned();
    store.put_manifest(again).await.unwrap();
    let kept = store
        .get_manifest(&r, &by_tag("v2"))
        .await
        .unwrap()
        .expect("by new tag");
    assert_eq!(
        kept, got,
        "the first put's bytes and creation time are kept"
    );
    assert_eq!(store.repository(&r).await.unwrap(), Some(info));

    store.delete_repository(&r).await.unwrap();
    before.assert_unchanged(store).await;
}

/// `delete_manifest` removes the manifest, deletes and records its tags,
/// drops it from the referrers index; then it is `NotFound`.
pub async fn metadata_delete_manifest(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let r = repo("conformance-delete-manifest/app");
    let base = with_tags(manifest(&r, "delete-base"), &["base"], "alice");
    let mut sig = with_tags(manifest(&r, "delete-sig"), &["sig", "sig-alias"], "alice");
    sig.subject = Some(base.digest.clone());
    store.put_manifest(base.clone()).await.unwrap();
    store.put_manifest(sig.clone()).await.unwrap();
    assert_eq!(
        store
            .referrers(&r, &base.digest, None, None, usize::MAX)
            .await
            .unwrap()
            .len(),
        1
    );

    store
        .delete_manifest(&r, &sig.digest, "dave")
        .await
        .unwrap();
    assert_eq!(
        store
            .get_manifest(&r, &by_digest(&sig.digest))
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.get_manifest(&r, &by_tag("sig")).await.unwrap(), None);
    assert_eq!(
        store.list_tags(&r, None, 10).await.unwrap(),
        vec![tag("base")]
    );
    for t in ["sig", "sig-alias"] {
        let history = store
            .tag_history(&r, &tag(t), None, usize::MAX)
            .await
            .unwrap();
        assert_eq!(history.len(), 2, "{t}: pushed, then deleted");
        assert_eq!(
            (history[0].digest.as_ref(), history[0].actor.as_str()),
            (None, "dave")
        );
    }
    assert!(store
        .referrers(&r, &base.digest, None, None, usize::MAX)
        .await
        .unwrap()
        .is_empty());
    assert!(store.find_manifest(&sig.digest).await.unwrap().is_empty());
    let referenced = store.referenced_blobs().await.unwrap();
    assert!(
        !referenced.contains(&blob("delete-sig/layer")),
        "no longer referenced"
    );
    assert!(referenced.contains(&blob("delete-base/layer")));

    let again = store.delete_manifest(&r, &sig.digest, "dave").await;
    assert!(again.unwrap_err().is_not_found());
    let elsewhere = repo("conformance-delete-manifest/none");
    let missing = store
        .delete_manifest(&elsewhere, &base.digest, "dave")
        .await;
    assert!(missing.unwrap_err().is_not_found());
    assert!(store
        .get_manifest(&r, &by_tag("base"))
        .await
        .unwrap()
        .is_some());

    store.delete_repository(&r).await.unwrap();
    before.assert_unchanged(store).await;
}

/// `find_manifest` lists the repositories holding a digest, sorted.
pub async fn metadata_find_manifest(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let (a, b) = (repo("conformance-find/a"), repo("conformance-find/b"));
    let m = manifest(&b, "find");
    store.put_manifest(m.clone()).await.unwrap();
    store
        .put_manifest(NewManifest {
            repository: a.clone(),
            ..m.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        store.find_manifest(&m.digest).await.unwrap(),
        vec![a.clone(), b.clone()]
    );
    assert!(store
        .find_manifest(&blob("find-unknown"))
        .await
        .unwrap()
        .is_empty());
    store.delete_repository(&a).await.unwrap();
    assert_eq!(
        store.find_manifest(&m.digest).await.unwrap(),
        vec![b.clone()]
    );
    store.delete_repository(&b).await.unwrap();
    before.assert_unchanged(store).await;
}

/// Referrers by subject, with and without an artifact type filter, sorted
/// by digest.
pub async fn metadata_referrers(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let (r, other) = (
        repo("conformance-referrers/app"),
        repo("conformance-referrers/other"),
    );
    let subject = blob("referrers-subject");
    let (sig, sbom) = (
        "application/vnd.example.sig",
        "application/vnd.example.sbom",
    );
    let mut pushed = Vec::new();
    for (i, artifact_type) in [sig, sbom, sig].into_iter().enumerate() {
        let mut m = manifest(&r, &format!("referrer-{i}"));
        m.subject = Some(subject.clone());
        m.artifact_type = Some(artifact_type.to_owned());
        m.annotations.insert("index".to_owned(), i.to_string());
        store.put_manifest(m.clone()).await.unwrap();
        pushed.push(m);
    }
    let mut unrelated = manifest(&r, "referrer-unrelated");
    unrelated.subject = Some(blob("referrers-other-subject"));
    store.put_manifest(unrelated).await.unwrap();
    let mut elsewhere = manifest(&other, "referrer-elsewhere");
    elsewhere.subject = Some(subject.clone());
    store.put_manifest(elsewhere).await.unwrap();

    pushed.sort_by(|a, b| a.digest.cmp(&b.digest));
    let all = store
        .referrers(&r, &subject, None, None, usize::MAX)
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    for (got, m) in all.iter().zip(&pushed) {
        assert_eq!(got.digest, m.digest, "sorted by digest");
        assert_eq!(got.media_type, m.media_type);
        assert_eq!(got.size, m.bytes.len() as u64);
        assert_eq!(got.artifact_type, m.artifact_type);
        assert_eq!(got.annotations, m.annotations);
    }
    let sigs = store
        .referrers(&r, &subject, Some(sig), None, usize::MAX)
        .await
        .unwrap();
    let expected: Vec<&Digest> = pushed
        .iter()
        .filter(|m| m.artifact_type.as_deref() == Some(sig))
        .map(|m| &m.digest)
        .collect();
    assert_eq!(sigs.iter().map(|s| &s.digest).collect::<Vec<_>>(), expected);
    assert!(store
        .referrers(&r, &subject, Some("text/plain"), None, usize::MAX)
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .referrers(&r, &blob("referrers-none"), None, None, usize::MAX)
        .await
        .unwrap()
        .is_empty());

    store.delete_repository(&r).await.unwrap();
    store.delete_repository(&other).await.unwrap();
    before.assert_unchanged(store).await;
}

/// Many tasks put different manifests into one repository at once, each
/// with its own tag and a shared `latest`: every tag and every move of
/// `latest` is recorded.
pub async fn metadata_concurrent_puts(store: Arc<dyn MetadataStore>) {
    const TASKS: usize = 24;
    let before = Snapshot::take(store.as_ref()).await;
    let r = repo("conformance-concurrent/app");
    let tasks: Vec<_> = (0..TASKS)
        .map(|i| {
            let store = Arc::clone(&store);
            let own = format!("t{i:02}");
            let m = with_tags(
                manifest(&r, &format!("concurrent-{i}")),
                &[own.as_str(), "latest"],
                &format!("actor-{i}"),
            );
            tokio::spawn(async move {
                store.put_manifest(m.clone()).await.expect("concurrent put");
                m.digest
            })
        })
        .collect();
    let mut digests = Vec::new();
    for task in tasks {
        digests.push(task.await.expect("put task panicked"));
    }

    let records = store.tags(&r, None, usize::MAX).await.unwrap();
    assert_eq!(records.len(), TASKS + 1);
    for (i, digest) in digests.iter().enumerate() {
        let t = tag(&format!("t{i:02}"));
        let record = records
            .iter()
            .find(|rec| rec.tag == t)
            .expect("every tag is recorded");
        assert_eq!(&record.digest, digest);
        assert_eq!(
            store
                .tag_history(&r, &t, None, usize::MAX)
                .await
                .unwrap()
                .len(),
            1
        );
    }
    let history = store
        .tag_history(&r, &tag("latest"), None, usize::MAX)
        .await
        .unwrap();
    assert_eq!(history.len(), TASKS, "every move of latest is an event");
    let current = records
        .iter()
        .find(|rec| rec.tag.as_str() == "latest")
        .expect("latest");
    assert_eq!(
        history[0].digest.as_ref(),
        Some(&current.digest),
        "newest event is current"
    );
    let moved: HashSet<_> = history.iter().filter_map(|e| e.digest.clone()).collect();
    assert_eq!(moved, digests.iter().cloned().collect());

    store.delete_repository(&r).await.unwrap();
    before.assert_unchanged(store.as_ref()).await;
}
