//! Namespace usage and quotas.

use super::*;
use crate::metadata::LinkedBlob;
use crate::usage::NamespaceUsage;

fn quota(bytes: u64) -> NamespacePolicy {
    NamespacePolicy {
        quota_bytes: Some(bytes),
        ..NamespacePolicy::default()
    }
}

/// A blob of `seed` whose size the store learns from its ticket.
async fn link_sized(store: &dyn MetadataStore, r: &RepositoryName, d: &Digest, size: u64) {
    let ticket = store.blob_ticket(d).await.unwrap().with_size(size);
    store.link_blob_with(r, &ticket).await.unwrap();
}

async fn bytes_blobs(store: &dyn MetadataStore, n: &Namespace) -> (u64, u64) {
    let u = store.namespace_usage(n).await.unwrap();
    (u.bytes, u.blobs)
}

/// The maintained counters equal what a recount rebuilds from the links.
async fn assert_recount_agrees(store: &dyn MetadataStore, n: &Namespace) {
    let recount = store.recount_usage(n).await.unwrap();
    assert_eq!(
        recount.before, recount.after,
        "maintained usage of {n} differs from its recount"
    );
    assert_eq!(store.namespace_usage(n).await.unwrap(), recount.after);
}

/// Usage: a blob counts once per namespace however many of its
/// repositories link it, and in each namespace linking it; every way links
/// go (unlink, forget, a collector's mark, repository and namespace
/// deletes) gives its bytes back; sizes learned late count; a recount
/// equals the maintained counters at every step.
pub async fn metadata_usage_accounting(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let team = ns("conformance-usage");
    let other = ns("conformance-usage-other");
    let (a, b) = (repo("conformance-usage/a"), repo("conformance-usage/b/c"));
    let elsewhere = repo("conformance-usage-other/x");
    let (shared, own) = (blob("usage-shared"), blob("usage-own"));
    assert_eq!(
        store.namespace_usage(&team).await.unwrap(),
        NamespaceUsage::default()
    );

    link_sized(store, &a, &shared, 100).await;
    link_sized(store, &b, &shared, 100).await;
    link_sized(store, &elsewhere, &shared, 100).await;
    assert_eq!(bytes_blobs(store, &team).await, (100, 1), "counted once");
    assert_eq!(
        bytes_blobs(store, &other).await,
        (100, 1),
        "and in each namespace"
    );
    link_sized(store, &a, &own, 1000).await;
    link_sized(store, &a, &own, 1000).await;
    assert_eq!(bytes_blobs(store, &team).await, (1100, 2));
    assert_recount_agrees(store, &team).await;

    // A manifest links its blobs; sizes recorded before it count.
    let m = manifest(&b, "usage-manifest");
    store
        .record_blob_sizes(&[(m.blobs[0].clone(), 10), (m.blobs[1].clone(), 20)])
        .await
        .unwrap();
    store.put_manifest(m.clone()).await.unwrap();
    let usage = store.namespace_usage(&team).await.unwrap();
    assert_eq!(
        usage,
        NamespaceUsage {
            bytes: 1130,
            blobs: 4,
            imagestreams: 2,
            images: 1,
        }
    );
    let b_usage = store.repository_usage(&b).await.unwrap();
    assert_eq!((b_usage.bytes, b_usage.blobs, b_usage.images), (130, 3, 1));
    assert_eq!(
        store
            .repository_usage(&repo("conformance-usage/none"))
            .await
            .unwrap(),
        crate::usage::RepositoryUsage::default()
    );

    // A size unknown at link time counts 0, then its size once recorded.
    let late = blob("usage-late");
    assert_eq!(store.linked_blob(&a, &late).await.unwrap(), None);
    store.link_blob(&a, &late).await.unwrap();
    assert_eq!(
        store.linked_blob(&a, &late).await.unwrap(),
        Some(LinkedBlob { size: None })
    );
    assert_eq!(bytes_blobs(store, &team).await, (1130, 5));
    assert_eq!(
        store.unsized_blobs(&team, None, 10).await.unwrap(),
        vec![late.clone()]
    );
    store.record_blob_sizes(&[(late.clone(), 7)]).await.unwrap();
    store.record_blob_sizes(&[(late.clone(), 9)]).await.unwrap();
    assert_eq!(
        store.linked_blob(&a, &late).await.unwrap(),
        Some(LinkedBlob { size: Some(7) }),
        "the link carries the first recorded size"
    );
    assert_eq!(
        bytes_blobs(store, &team).await,
        (1137, 5),
        "first size stays"
    );
    assert!(store
        .unsized_blobs(&team, None, 10)
        .await
        .unwrap()
        .is_empty());
    assert_recount_agrees(store, &team).await;

    let summary = store.usage_summary(usize::MAX).await.unwrap();
    let listed = |n: &Namespace| {
        summary
            .largest
            .iter()
            .find(|(x, _)| x == n)
            .map(|(_, u)| (u.bytes, u.blobs))
    };
    assert_eq!(listed(&team), Some((1137, 5)));
    assert_eq!(listed(&other), Some((100, 1)));
    let pos = |n: &Namespace| summary.largest.iter().position(|(x, _)| x == n);
    assert!(pos(&team) < pos(&other), "largest first");
    let none = store.usage_summary(0).await.unwrap();
    assert!(none.largest.is_empty());
    assert!(
        none.rest.bytes >= 1237 && none.rest.blobs >= 6,
        "the rest is summed"
    );

    // Links going give space back.
    store.unlink_blob(&a, &shared).await.unwrap();
    assert_eq!(
        bytes_blobs(store, &team).await,
        (1137, 5),
        "b still links it"
    );
    store.unlink_blob(&b, &shared).await.unwrap();
    assert_eq!(bytes_blobs(store, &team).await, (1037, 4));
    assert_eq!(bytes_blobs(store, &other).await, (100, 1));
    store.forget_blob(&own).await.unwrap();
    assert_eq!(bytes_blobs(store, &team).await, (37, 3));
    let generation = store.blob_record(&late).await.unwrap().generation;
    assert!(store.begin_blob_delete(&late, generation).await.unwrap());
    store.finish_blob_delete(&late).await.unwrap();
    assert_eq!(bytes_blobs(store, &team).await, (30, 2));
    assert_recount_agrees(store, &team).await;
    store.delete_repository(&b).await.unwrap();
    assert_eq!(
        store.namespace_usage(&team).await.unwrap(),
        NamespaceUsage {
            imagestreams: 1,
            ..NamespaceUsage::default()
        }
    );
    store.delete_repository(&a).await.unwrap();

    store.create_namespace(&other).await.unwrap();
    store.delete_namespace(&other).await.unwrap();
    assert_eq!(
        store.namespace_usage(&other).await.unwrap(),
        NamespaceUsage::default(),
        "a namespace delete gives everything back"
    );
    assert_recount_agrees(store, &other).await;
    before.assert_unchanged(store).await;
}

/// Quotas: a link or manifest bringing new bytes past the quota is refused
/// with the figures and records nothing; blobs the namespace holds always
/// link; a quota lowered under the usage deletes nothing.
pub async fn metadata_quota(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let team = ns("conformance-quota");
    let (a, b) = (repo("conformance-quota/a"), repo("conformance-quota/b"));
    store.create_namespace(&team).await.unwrap();
    store
        .set_namespace_policy(&team, &quota(1000))
        .await
        .unwrap();

    link_sized(store, &a, &blob("quota-1"), 600).await;
    link_sized(store, &a, &blob("quota-2"), 400).await;
    assert_eq!(
        bytes_blobs(store, &team).await,
        (1000, 2),
        "up to the quota"
    );
    let third = blob("quota-3");
    let ticket = store.blob_ticket(&third).await.unwrap().with_size(1);
    match store.link_blob_with(&a, &ticket).await {
        Err(StorageError::QuotaExceeded {
            namespace,
            usage,
            limit,
            needed,
        }) => {
            assert_eq!(
                (namespace, usage, limit, needed),
                (team.clone(), 1000, 1000, 1)
            );
        }
        other => panic!("a link past the quota: {other:?}"),
    }
    assert!(
        !store.blob_linked(&a, &third).await.unwrap(),
        "nothing linked"
    );
    assert_eq!(
        bytes_blobs(store, &team).await,
        (1000, 2),
        "nothing counted"
    );

    // A manifest whose blobs are new to the namespace.
    let m = manifest(&b, "quota-manifest");
    store
        .record_blob_sizes(&[(m.blobs[0].clone(), 5), (m.blobs[1].clone(), 5)])
        .await
        .unwrap();
    let refused = store.put_manifest(m.clone()).await.unwrap_err();
    assert!(
        matches!(refused, StorageError::QuotaExceeded { needed: 10, .. }),
        "{refused:?}"
    );
    assert_eq!(
        store.get_manifest(&b, &by_digest(&m.digest)).await.unwrap(),
        None
    );
    assert!(!store.blob_linked(&b, &m.blobs[0]).await.unwrap());
    assert_eq!(
        store.repository(&b).await.unwrap(),
        None,
        "no repository made"
    );

    // Blobs the namespace holds link anywhere in it, even over the quota.
    store.set_namespace_policy(&team, &quota(10)).await.unwrap();
    link_sized(store, &b, &blob("quota-1"), 600).await;
    assert_eq!(
        bytes_blobs(store, &team).await,
        (1000, 2),
        "nothing deleted"
    );
    assert!(matches!(
        store.link_blob(&b, &third).await,
        Ok(()) // its size is unknown to the store: it counts 0
    ));
    store.unlink_blob(&b, &third).await.unwrap();

    // Space given back is usable again.
    store
        .set_namespace_policy(&team, &quota(1000))
        .await
        .unwrap();
    store.unlink_blob(&a, &blob("quota-2")).await.unwrap();
    store.put_manifest(m.clone()).await.unwrap();
    assert_eq!(bytes_blobs(store, &team).await, (610, 3));
    assert_recount_agrees(store, &team).await;

    store.delete_namespace(&team).await.unwrap();
    assert_eq!(bytes_blobs(store, &team).await, (0, 0));
    before.assert_unchanged(store).await;
}

/// Concurrent links cannot together overshoot a quota: the check shares
/// each link's transaction.
pub async fn metadata_quota_concurrent(store: Arc<dyn MetadataStore>) {
    let before = Snapshot::take(store.as_ref()).await;
    let team = ns("conformance-quota-race");
    store.create_namespace(&team).await.unwrap();
    store
        .set_namespace_policy(&team, &quota(1000))
        .await
        .unwrap();
    let tasks: Vec<_> = (0..24)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let r = repo(&format!("conformance-quota-race/r{}", i % 3));
                let d = blob(&format!("quota-race-{i}"));
                let ticket = store.blob_ticket(&d).await.unwrap().with_size(100);
                store.link_blob_with(&r, &ticket).await
            })
        })
        .collect();
    let mut linked = 0;
    for task in tasks {
        match task.await.expect("task") {
            Ok(()) => linked += 1,
            Err(StorageError::QuotaExceeded { .. }) => {}
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(linked, 10, "exactly the quota's worth is linked");
    assert_eq!(bytes_blobs(store.as_ref(), &team).await, (1000, 10));
    assert_recount_agrees(store.as_ref(), &team).await;
    store.delete_namespace(&team).await.unwrap();
    before.assert_unchanged(store.as_ref()).await;
}
