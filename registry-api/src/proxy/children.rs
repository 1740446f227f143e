//! An index's children in a proxy namespace. The index is cached as the
//! upstream serves it and its children are fetched only when asked for;
//! each child that is cached is then recorded as the index's child (the
//! store's `children` of the index), so retention keeps it, and its blobs,
//! as long as it keeps the index, exactly as for a pushed index. The index
//! lists only the children that are cached, and stays servable while the
//! others are not.
//!
//! Which index a child pulled by digest belongs to is not in the request:
//! clients pull the index, then the child. Each index the proxy serves is
//! remembered per child digest ([`ParentHints`], bounded, in memory); when
//! such a child is then fetched, its index is stored again with every
//! cached child listed. An index fetched after some of its children also
//! lists those. A child fetched with no index remembered (after a
//! restart, or through another replica) is looked for in the repository's
//! indexes in the store, tagged or cached by digest alone: its manifests
//! are listed ([`MAX_MANIFESTS_SEARCHED`] at most, a page at a time, only on
//! such a miss, which is an upstream fetch anyway), and those that
//! reference no blob (indexes) are read, each once: a manifest never
//! changes under its digest. A child of an index past that bound stays
//! unlisted until its index is fetched again; until then retention treats
//! it as untagged (it is fetched again when asked for).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use registry_core::{Digest, Manifest, Reference, RepositoryName};
use registry_storage::StorageError;

use super::ProxyNamespace;
use crate::service::{PulledManifest, Registry};

/// Most children remembered with their index; past it the map is cleared
/// (a child then fetched is listed once its index is fetched again),
/// which bounds it without an eviction order.
const MAX_PARENT_HINTS: usize = 100_000;

/// Most manifests of a repository listed when a child's index is not
/// remembered, and how many are listed per store call.
const MAX_MANIFESTS_SEARCHED: usize = 4096;
const SEARCH_PAGE: usize = 512;

/// The index each child digest was last served in, by repository.
#[derive(Debug, Default)]
pub(crate) struct ParentHints {
    hints: Mutex<Hints>,
}

#[derive(Debug, Default)]
struct Hints {
    /// Child → the index it was last served in.
    by_child: HashMap<(RepositoryName, Digest), Digest>,
    /// Manifests already read into `by_child` (indexes or not): a manifest
    /// never changes under its digest, so a search of the store skips them.
    read: HashSet<(RepositoryName, Digest)>,
}

impl ParentHints {
    /// Remembers the children of `served` when it is an index.
    pub(crate) fn note(&self, repo: &RepositoryName, served: &PulledManifest) {
        if !served.kind.is_index() {
            return;
        }
        // Stored manifests were parsed when cached; one that no longer
        // parses has no children to remember.
        let Ok(index) = Manifest::parse(Some(served.kind.media_type()), &served.bytes) else {
            return;
        };
        self.note_manifest(repo, &served.digest, &index);
    }

    /// Remembers the children of `manifest` (`digest`; none unless it is an
    /// index) and that it was read.
    fn note_manifest(&self, repo: &RepositoryName, digest: &Digest, manifest: &Manifest) {
        let mut hints = self.hints.lock().unwrap_or_else(|e| e.into_inner());
        if hints.read.len() >= MAX_PARENT_HINTS {
            hints.read.clear();
        }
        hints.read.insert((repo.clone(), digest.clone()));
        for child in manifest.manifest_references() {
            if hints.by_child.len() >= MAX_PARENT_HINTS {
                hints.by_child.clear();
            }
            hints
                .by_child
                .insert((repo.clone(), child.digest.clone()), digest.clone());
        }
    }

    /// Whether `digest` of `repo` was read into the hints already.
    fn was_read(&self, repo: &RepositoryName, digest: &Digest) -> bool {
        let hints = self.hints.lock().unwrap_or_else(|e| e.into_inner());
        hints.read.contains(&(repo.clone(), digest.clone()))
    }

    /// The index `child` was last served in, forgotten from now on.
    fn take(&self, repo: &RepositoryName, child: &Digest) -> Option<Digest> {
        let mut hints = self.hints.lock().unwrap_or_else(|e| e.into_inner());
        hints.by_child.remove(&(repo.clone(), child.clone()))
    }
}

impl Registry {
    /// The children of `manifest` (an index) that are manifests of `repo`.
    pub(super) async fn cached_children(
        &self,
        repo: &RepositoryName,
        manifest: &Manifest,
    ) -> Result<Vec<Digest>, StorageError> {
        let wanted: Vec<Digest> = manifest
            .manifest_references()
            .map(|d| d.digest.clone())
            .collect();
        if wanted.is_empty() {
            return Ok(wanted);
        }
        let present = self.metadata().manifests_present(repo, &wanted).await?;
        Ok(wanted
            .into_iter()
            .zip(present)
            .filter_map(|(digest, present)| present.then_some(digest))
            .collect())
    }

    /// After `child` was fetched into `repo` by digest: lists it (with the
    /// other cached children) in the index it was served in, if that is
    /// known. Best effort: the child is served either way, so a failure is
    /// logged, not returned.
    pub(super) async fn list_in_parent(
        &self,
        proxy: &ProxyNamespace,
        repo: &RepositoryName,
        child: &Digest,
    ) {
        let index = match proxy.parents.take(repo, child) {
            Some(index) => Ok(Some(index)),
            None => self
                .recall_parents(proxy, repo)
                .await
                .map(|()| proxy.parents.take(repo, child)),
        };
        let index = match index {
            Ok(Some(index)) => index,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(repository = %repo, child = %child, error = %e,
                    "looking for the cached index of a cached child manifest");
                return;
            }
        };
        if let Err(e) = self.relist_children(proxy, repo, &index).await {
            tracing::warn!(repository = %repo, index = %index, child = %child, error = %e,
                "a cached child manifest was not listed in its cached index");
        }
    }

    /// Remembers the children of `repo`'s indexes in the store, tagged or
    /// not (among its first [`MAX_MANIFESTS_SEARCHED`] manifests by digest):
    /// what a restart, or another replica serving the index, left out of
    /// the hints.
    async fn recall_parents(
        &self,
        proxy: &ProxyNamespace,
        repo: &RepositoryName,
    ) -> Result<(), StorageError> {
        let mut last: Option<Digest> = None;
        let mut listed = 0;
        while listed < MAX_MANIFESTS_SEARCHED {
            let page = self
                .metadata()
                .manifest_nodes(repo, last.as_ref(), SEARCH_PAGE)
                .await?;
            listed += page.len();
            let full = page.len() == SEARCH_PAGE;
            for node in &page {
                // An image manifest references its config and layers; an
                // index none. Each is read once, whichever miss came first.
                if !node.blobs.is_empty() || proxy.parents.was_read(repo, &node.digest) {
                    continue;
                }
                let reference = Reference::Digest(node.digest.clone());
                let Some(stored) = self.metadata().get_manifest(repo, &reference).await? else {
                    continue;
                };
                if let Ok(manifest) = Manifest::parse(Some(&stored.media_type), &stored.bytes) {
                    proxy.parents.note_manifest(repo, &node.digest, &manifest);
                }
            }
            if !full {
                break;
            }
            last = page.last().map(|node| node.digest.clone());
        }
        Ok(())
    }

    /// Stores `index` of `repo` again with every cached child listed.
    async fn relist_children(
        &self,
        proxy: &ProxyNamespace,
        repo: &RepositoryName,
        index: &Digest,
    ) -> Result<(), StorageError> {
        let reference = Reference::Digest(index.clone());
        // Pruned meanwhile: fetched again, with its children, when asked for.
        let Some(stored) = self.metadata().get_manifest(repo, &reference).await? else {
            return Ok(());
        };
        let Ok(manifest) = Manifest::parse(Some(&stored.media_type), &stored.bytes) else {
            return Ok(());
        };
        let children = self.cached_children(repo, &manifest).await?;
        if children.is_empty() {
            return Ok(());
        }
        let record = proxy.cached_record(repo, index, &manifest, stored.bytes, None, children);
        match self.put_cached_manifest(proxy, record).await {
            // A child pruned between the check and the put: it is listed
            // when fetched again.
            Ok(_) | Err(StorageError::ManifestMissing { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}
