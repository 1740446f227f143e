//! Conformance suite of [`MetadataStore`].
//!
//! Each test works in repositories and namespaces named after it (all start
//! with `conformance-`), so the tests may share one store when run one after
//! another ([`run_metadata_suite`]). Each removes what it created and
//! asserts that the store's namespaces, repositories and mark set are as
//! they were before it ran.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use bytes::Bytes;
use registry_core::{media_type, Digest, Namespace, Reference, RepositoryName, Tag};

use crate::metadata::{MetadataStore, NewManifest, TagEvent};
use crate::{NamespacePolicy, StorageError};

mod blobs;
mod gc;
mod manifests;
mod namespaces;
mod pages;
mod retention;
mod tags;
mod usage;

pub use blobs::{metadata_blob_links, metadata_referenced_blobs};
pub use gc::{metadata_blob_deletion_protocol, metadata_blob_deletion_races};
pub use manifests::{
    metadata_concurrent_puts, metadata_delete_manifest, metadata_find_manifest,
    metadata_manifest_put_get, metadata_referrers,
};
pub use namespaces::{
    metadata_delete_namespace, metadata_delete_repository, metadata_list_repositories_pagination,
    metadata_namespace_policies, metadata_namespaces,
};
pub use pages::{
    metadata_referrers_pagination, metadata_tag_history_pagination, metadata_tags_pagination,
};
pub use retention::{
    metadata_blob_reference_count, metadata_delete_unreferenced_manifest,
    metadata_index_children_must_exist, metadata_manifest_nodes, metadata_tag_events,
};
pub use tags::{
    metadata_delete_keeps_immutable_tags, metadata_fixed_tags, metadata_list_tags_pagination,
    metadata_tag_history,
};
pub use usage::{metadata_quota, metadata_quota_concurrent, metadata_usage_accounting};

/// Runs every metadata conformance test against `store`, one after another.
pub async fn run_metadata_suite(store: Arc<dyn MetadataStore>) {
    let s = store.as_ref();
    metadata_namespaces(s).await;
    metadata_namespace_policies(s).await;
    metadata_fixed_tags(s).await;
    metadata_delete_keeps_immutable_tags(s).await;
    metadata_manifest_put_get(s).await;
    metadata_tag_history(s).await;
    metadata_list_tags_pagination(s).await;
    metadata_list_repositories_pagination(s).await;
    metadata_delete_manifest(s).await;
    metadata_find_manifest(s).await;
    metadata_blob_links(s).await;
    metadata_referrers(s).await;
    metadata_tags_pagination(s).await;
    metadata_tag_history_pagination(s).await;
    metadata_referrers_pagination(s).await;
    metadata_referenced_blobs(s).await;
    metadata_delete_repository(s).await;
    metadata_delete_namespace(s).await;
    metadata_blob_deletion_protocol(s).await;
    metadata_usage_accounting(s).await;
    metadata_quota(s).await;
    metadata_manifest_nodes(s).await;
    metadata_index_children_must_exist(s).await;
    metadata_delete_unreferenced_manifest(s).await;
    metadata_blob_reference_count(s).await;
    metadata_tag_events(s).await;
    metadata_blob_deletion_races(store.clone()).await;
    metadata_quota_concurrent(store.clone()).await;
    metadata_concurrent_puts(store).await;
}

pub(super) fn repo(name: &str) -> RepositoryName {
    name.parse().expect("test repository name is valid")
}

pub(super) fn tag(name: &str) -> Tag {
    name.parse().expect("test tag is valid")
}

pub(super) fn ns(name: &str) -> Namespace {
    name.parse().expect("test namespace is valid")
}

fn blob(seed: &str) -> Digest {
    Digest::sha256_of(seed.as_bytes())
}

/// An image manifest whose bytes (and so digest) depend on `seed`, with a
/// config blob and one layer derived from the seed too.
pub(crate) fn manifest(repository: &RepositoryName, seed: &str) -> NewManifest {
    let bytes = Bytes::from(format!(
        "{{ \"schemaVersion\": 2,\n  \"seed\": \"{seed}\" }}\n"
    ));
    let config = blob(&format!("{seed}/config"));
    NewManifest {
        repository: repository.clone(),
        digest: Digest::sha256_of(&bytes),
        media_type: media_type::OCI_MANIFEST.to_owned(),
        bytes,
        subject: None,
        artifact_type: None,
        annotations: BTreeMap::new(),
        config: Some(config.clone()),
        blobs: vec![config, blob(&format!("{seed}/layer"))],
        children: Vec::new(),
        tags: Vec::new(),
        fixed_tags: Vec::new(),
        actor: "tester".to_owned(),
        events: Vec::new(),
        tag_moved: Vec::new(),
    }
}

/// [`manifest`] for the events suite.
pub(super) fn manifest_for_events(repository: &RepositoryName, seed: &str) -> NewManifest {
    manifest(repository, seed)
}

/// A child manifest no repository holds.
pub(super) fn missing_child() -> Digest {
    blob("conformance-missing-child")
}

fn with_tags(mut m: NewManifest, tags: &[&str], actor: &str) -> NewManifest {
    m.tags = tags.iter().map(|t| tag(t)).collect();
    m.actor = actor.to_owned();
    m
}

fn by_tag(t: &str) -> Reference {
    Reference::Tag(tag(t))
}

fn by_digest(d: &Digest) -> Reference {
    Reference::Digest(d.clone())
}

/// What a test must leave as it found it.
#[derive(Debug, PartialEq)]
struct Snapshot {
    namespaces: Vec<Namespace>,
    repositories: Vec<RepositoryName>,
    referenced: HashSet<Digest>,
}

impl Snapshot {
    async fn take(store: &dyn MetadataStore) -> Self {
        Snapshot {
            namespaces: store.list_namespaces().await.expect("list namespaces"),
            repositories: store
                .list_repositories(None, None, usize::MAX)
                .await
                .expect("list repositories"),
            referenced: store.referenced_blobs().await.expect("referenced blobs"),
        }
    }

    async fn assert_unchanged(&self, store: &dyn MetadataStore) {
        assert_eq!(
            &Snapshot::take(store).await,
            self,
            "the test left something behind"
        );
    }
}
