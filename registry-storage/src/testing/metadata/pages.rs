//! Paged listings: tags with their targets, tag history and referrers.

use super::*;

/// `tags` in lexical order after `last`, at most `limit`.
pub async fn metadata_tags_pagination(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let r = repo("conformance-tag-pages/app");
    let m = with_tags(
        manifest(&r, "tag-pages"),
        &["v2", "latest", "V1", "v1.1", "v1.0"],
        "alice",
    );
    store.put_manifest(m.clone()).await.unwrap();
    let target = &m.digest;
    let page = |last: Option<&str>, n: usize| {
        let (r, last) = (r.clone(), last.map(tag));
        async move {
            store
                .tags(&r, last.as_ref(), n)
                .await
                .unwrap()
                .into_iter()
                .map(|t| {
                    assert_eq!(&t.digest, target);
                    t.tag.to_string()
                })
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        page(None, 100).await,
        ["V1", "latest", "v1.0", "v1.1", "v2"]
    );
    assert_eq!(page(None, 2).await, ["V1", "latest"]);
    assert_eq!(page(Some("latest"), 2).await, ["v1.0", "v1.1"]);
    assert_eq!(page(Some("m"), 1).await, ["v1.0"], "last need not exist");
    assert!(page(Some("v2"), 2).await.is_empty());
    assert!(page(None, 0).await.is_empty());

    store.delete_repository(&r).await.unwrap();
    before.assert_unchanged(store).await;
}

/// `tag_history` newest first in pages that continue before a `seq`; an
/// event recorded while paging does not shift later pages.
pub async fn metadata_tag_history_pagination(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let r = repo("conformance-history-pages/app");
    let latest = tag("latest");
    let mut pushed = Vec::new();
    for i in 0..5 {
        let m = with_tags(
            manifest(&r, &format!("history-page-{i}")),
            &["latest"],
            &format!("actor-{i}"),
        );
        store.put_manifest(m.clone()).await.unwrap();
        pushed.push(m.digest);
    }
    let all = store.tag_history(&r, &latest, None, 100).await.unwrap();
    let newest_first: Vec<Option<Digest>> = pushed.iter().rev().cloned().map(Some).collect();
    assert_eq!(
        all.iter().map(|e| e.digest.clone()).collect::<Vec<_>>(),
        newest_first
    );
    assert!(
        all.windows(2).all(|w| w[0].seq > w[1].seq),
        "seq decreases newest first: {all:?}"
    );

    let first = store.tag_history(&r, &latest, None, 2).await.unwrap();
    assert_eq!(first, all[..2]);
    // A move between two pages is newer than the cursor: not seen again.
    store.delete_tag(&r, &latest, "carol").await.unwrap();
    let second = store
        .tag_history(&r, &latest, Some(first[1].seq), 2)
        .await
        .unwrap();
    assert_eq!(second, all[2..4]);
    let third = store
        .tag_history(&r, &latest, Some(second[1].seq), 2)
        .await
        .unwrap();
    assert_eq!(third, all[4..]);
    assert!(store
        .tag_history(&r, &latest, Some(third[0].seq), 2)
        .await
        .unwrap()
        .is_empty());
    let newest = store.tag_history(&r, &latest, None, 1).await.unwrap();
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].digest, None, "the deletion is the newest event");
    assert!(newest[0].seq > all[0].seq);
    assert!(store
        .tag_history(&r, &latest, None, 0)
        .await
        .unwrap()
        .is_empty());

    store.delete_repository(&r).await.unwrap();
    before.assert_unchanged(store).await;
}

/// `referrers` by digest after `last`, at most `limit`, with and without
/// an artifact type filter (the filter applies before the limit).
pub async fn metadata_referrers_pagination(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let r = repo("conformance-referrer-pages/app");
    let subject = blob("referrer-pages-subject");
    let (sig, sbom) = (
        "application/vnd.example.sig",
        "application/vnd.example.sbom",
    );
    let mut pushed = Vec::new();
    for i in 0..7 {
        let mut m = manifest(&r, &format!("referrer-page-{i}"));
        m.subject = Some(subject.clone());
        m.artifact_type = Some(if i % 2 == 0 { sig } else { sbom }.to_owned());
        store.put_manifest(m.clone()).await.unwrap();
        pushed.push(m);
    }
    pushed.sort_by(|a, b| a.digest.cmp(&b.digest));
    let pages = |filter: Option<&'static str>, n: usize| {
        let (r, subject) = (r.clone(), subject.clone());
        async move {
            let mut seen = Vec::new();
            let mut last: Option<Digest> = None;
            loop {
                let page = store
                    .referrers(&r, &subject, filter, last.as_ref(), n)
                    .await
                    .unwrap();
                assert!(page.len() <= n, "a page holds at most {n}");
                let Some(tail) = page.last() else { break };
                last = Some(tail.digest.clone());
                seen.extend(page.into_iter().map(|p| p.digest));
            }
            seen
        }
    };
    let expect = |filter: Option<&str>| -> Vec<Digest> {
        pushed
            .iter()
            .filter(|m| filter.is_none() || m.artifact_type.as_deref() == filter)
            .map(|m| m.digest.clone())
            .collect()
    };
    for n in [1, 2, 3, 100] {
        assert_eq!(pages(None, n).await, expect(None), "all, pages of {n}");
        assert_eq!(pages(Some(sig), n).await, expect(Some(sig)), "sig, {n}");
        assert_eq!(pages(Some(sbom), n).await, expect(Some(sbom)), "sbom, {n}");
    }
    let after_last = store
        .referrers(&r, &subject, None, Some(&pushed[6].digest), 10)
        .await
        .unwrap();
    assert!(after_last.is_empty());
    assert!(store
        .referrers(&r, &subject, None, None, 0)
        .await
        .unwrap()
        .is_empty());

    store.delete_repository(&r).await.unwrap();
    before.assert_unchanged(store).await;
}
