//! Namespaces and repositories: creation, listing, deletion.

use super::*;

/// Namespaces: create, exists, list (sorted), delete; `AlreadyExists` and
/// `NotFound`.
pub async fn metadata_namespaces(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let (a, b) = (ns("conformance-ns-a"), ns("conformance-ns-b"));
    assert!(!store.namespace_exists(&a).await.unwrap());
    store.create_namespace(&b).await.unwrap();
    store.create_namespace(&a).await.unwrap();
    let again = store.create_namespace(&a).await;
    assert!(
        matches!(again, Err(StorageError::AlreadyExists { .. })),
        "{again:?}"
    );
    assert!(store.namespace_exists(&a).await.unwrap());

    let mut expected = before.namespaces.clone();
    expected.extend([a.clone(), b.clone()]);
    expected.sort();
    assert_eq!(store.list_namespaces().await.unwrap(), expected);

    store.delete_namespace(&a).await.unwrap();
    assert!(!store.namespace_exists(&a).await.unwrap());
    assert!(store.delete_namespace(&a).await.unwrap_err().is_not_found());
    store.delete_namespace(&b).await.unwrap();
    let never = ns("conformance-ns-never");
    assert!(store
        .delete_namespace(&never)
        .await
        .unwrap_err()
        .is_not_found());
    before.assert_unchanged(store).await;
}

/// `list_repositories` with and without a namespace, with `n`/`last`.
pub async fn metadata_list_repositories_pagination(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let ours = [
        "conformance-list-repos/b/c",
        "conformance-list-repos/a",
        "conformance-list-repos/b-d",
        // Neighbours in lexical order that a namespace filter must skip.
        "conformance-list-repos-x/a",
        "conformance-list-repos0/a",
    ]
    .map(repo);
    for r in &ours {
        store.link_blob(r, &blob("list-repos")).await.unwrap();
    }
    let namespace = ns("conformance-list-repos");
    let page = |last: Option<&'static str>, n: usize| {
        let namespace = namespace.clone();
        async move {
            store
                .list_repositories(Some(&namespace), last, n)
                .await
                .unwrap()
        }
    };
    // '-' sorts before '/': b-d comes before b/c.
    let inside: Vec<RepositoryName> = [
        "conformance-list-repos/a",
        "conformance-list-repos/b-d",
        "conformance-list-repos/b/c",
    ]
    .map(repo)
    .into();
    assert_eq!(page(None, 10).await, inside);
    assert_eq!(page(None, 2).await, inside[..2]);
    assert_eq!(
        page(Some("conformance-list-repos/b-d"), 2).await,
        inside[2..]
    );
    assert!(page(Some("conformance-list-repos/b/c"), 2).await.is_empty());
    assert!(page(Some("conformance-list-repos/zzz"), 2).await.is_empty());
    assert!(
        page(Some("zzz/zzz"), 2).await.is_empty(),
        "last beyond the end"
    );
    assert_eq!(
        page(Some("aaa/aaa"), 1).await,
        inside[..1],
        "last before the namespace"
    );
    // `last` is an opaque cursor: any string sorts, names or not.
    assert_eq!(page(Some(""), 10).await, inside, "empty cursor");
    assert_eq!(page(Some("conformance-list-repos"), 10).await, inside);
    assert_eq!(
        page(Some("conformance-list-repos/b"), 10).await,
        inside[1..],
        "a prefix of a name sorts before it"
    );
    assert_eq!(
        page(Some("conformance-list-repos/a!"), 10).await,
        inside[1..],
        "punctuation sorts byte-wise"
    );
    assert_eq!(
        page(Some("conformance-list-repos/B"), 10).await,
        inside,
        "upper case sorts before lower case"
    );
    assert_eq!(
        page(Some("conformance-list-repos/b-d~"), 10).await,
        inside[2..]
    );
    assert!(page(Some("\u{10ffff}"), 10).await.is_empty());

    // Without a namespace: every repository, ours among those already there.
    let mut all: BTreeSet<RepositoryName> = before.repositories.iter().cloned().collect();
    all.extend(ours.iter().cloned());
    let expected = |last: &str, n: usize| -> Vec<RepositoryName> {
        all.iter()
            .filter(|r| r.as_str() > last)
            .take(n)
            .cloned()
            .collect()
    };
    for last in [
        inside[0].as_str(),
        ours[3].as_str(),
        "zzz/zzz",
        "conformance-list-repos/",
        "Conformance",
        "~",
    ] {
        let got = store.list_repositories(None, Some(last), 2).await.unwrap();
        assert_eq!(got, expected(last, 2), "after {last}");
    }
    let everything = store
        .list_repositories(None, None, usize::MAX)
        .await
        .unwrap();
    assert_eq!(everything, all.iter().cloned().collect::<Vec<_>>());

    for r in &ours {
        store.delete_repository(r).await.unwrap();
    }
    before.assert_unchanged(store).await;
}

/// `delete_repository` removes manifests, tags, history and links.
pub async fn metadata_delete_repository(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let r = repo("conformance-delete-repo/app");
    assert!(store
        .delete_repository(&r)
        .await
        .unwrap_err()
        .is_not_found());
    let m = with_tags(manifest(&r, "delete-repo"), &["latest"], "alice");
    store.put_manifest(m.clone()).await.unwrap();
    store
        .link_blob(&r, &blob("delete-repo-extra"))
        .await
        .unwrap();

    store.delete_repository(&r).await.unwrap();
    assert_eq!(store.repository(&r).await.unwrap(), None);
    assert_eq!(
        store.get_manifest(&r, &by_digest(&m.digest)).await.unwrap(),
        None
    );
    assert_eq!(
        store.get_manifest(&r, &by_tag("latest")).await.unwrap(),
        None
    );
    assert!(store.tags(&r, None, usize::MAX).await.unwrap().is_empty());
    assert!(store
        .tag_history(&r, &tag("latest"), None, usize::MAX)
        .await
        .unwrap()
        .is_empty());
    assert!(!store.blob_linked(&r, &m.blobs[0]).await.unwrap());
    assert!(!store
        .blob_linked(&r, &blob("delete-repo-extra"))
        .await
        .unwrap());
    assert!(store.find_manifest(&m.digest).await.unwrap().is_empty());
    assert!(store
        .delete_repository(&r)
        .await
        .unwrap_err()
        .is_not_found());
    before.assert_unchanged(store).await;
}

/// `delete_namespace` removes the metadata of every repository in it, and
/// only those.
pub async fn metadata_delete_namespace(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let namespace = ns("conformance-delete-ns");
    let (app, lib) = (
        repo("conformance-delete-ns/app"),
        repo("conformance-delete-ns/lib/x"),
    );
    let keep = repo("conformance-delete-ns-keep/app");
    store.create_namespace(&namespace).await.unwrap();
    let m = with_tags(manifest(&app, "delete-ns"), &["latest"], "alice");
    store.put_manifest(m.clone()).await.unwrap();
    store.link_blob(&lib, &blob("delete-ns-lib")).await.unwrap();
    store
        .put_manifest(manifest(&keep, "delete-ns-keep"))
        .await
        .unwrap();

    store.delete_namespace(&namespace).await.unwrap();
    assert!(!store.namespace_exists(&namespace).await.unwrap());
    assert!(store
        .list_repositories(Some(&namespace), None, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(store.repository(&app).await.unwrap(), None);
    assert_eq!(store.repository(&lib).await.unwrap(), None);
    assert_eq!(
        store.get_manifest(&app, &by_tag("latest")).await.unwrap(),
        None
    );
    assert!(store
        .tag_history(&app, &tag("latest"), None, usize::MAX)
        .await
        .unwrap()
        .is_empty());
    assert!(!store
        .blob_linked(&lib, &blob("delete-ns-lib"))
        .await
        .unwrap());
    assert!(
        store.repository(&keep).await.unwrap().is_some(),
        "other namespaces stay"
    );
    assert!(store
        .delete_namespace(&namespace)
        .await
        .unwrap_err()
        .is_not_found());

    store.delete_repository(&keep).await.unwrap();
    before.assert_unchanged(store).await;
}

/// Namespace policies: the default until set, replaced whole, gone with
/// the namespace; `NotFound` for a namespace that does not exist.
pub async fn metadata_namespace_policies(store: &dyn MetadataStore) {
    let before = Snapshot::take(store).await;
    let a = ns("conformance-policy");
    let missing = ns("conformance-policy-missing");
    assert!(store
        .namespace_policy(&missing)
        .await
        .unwrap_err()
        .is_not_found());
    assert!(store
        .set_namespace_policy(&missing, &NamespacePolicy::default())
        .await
        .unwrap_err()
        .is_not_found());
    store.create_namespace(&a).await.unwrap();
    assert_eq!(
        store.namespace_policy(&a).await.unwrap(),
        NamespacePolicy::default()
    );
    let policy: NamespacePolicy = serde_json::from_str(
        r#"{"keep_tag_revisions":3,"keep_younger_than":"30d","prune_untagged_after":"2w",
            "immutable_tags":["v*","release-?"],"quota_bytes":1099511627776}"#,
    )
    .expect("test policy");
    store.set_namespace_policy(&a, &policy).await.unwrap();
    assert_eq!(store.namespace_policy(&a).await.unwrap(), policy);
    let smaller: NamespacePolicy =
        serde_json::from_str(r#"{"immutable_tags":["v*"]}"#).expect("test policy");
    store.set_namespace_policy(&a, &smaller).await.unwrap();
    assert_eq!(store.namespace_policy(&a).await.unwrap(), smaller);

    store.delete_namespace(&a).await.unwrap();
    store.create_namespace(&a).await.unwrap();
    assert_eq!(
        store.namespace_policy(&a).await.unwrap(),
        NamespacePolicy::default(),
        "a policy goes with its namespace"
    );
    store.delete_namespace(&a).await.unwrap();
    before.assert_unchanged(store).await;
}
