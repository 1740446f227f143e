//! What retention reads and deletes in the in-memory store.

use std::ops::Bound;
use std::time::SystemTime;

use registry_core::{Digest, RepositoryName, Tag};

use super::State;
use crate::metadata::{ManifestNode, TagEvent};

pub(super) fn manifest_nodes(
    state: &State,
    repository: &RepositoryName,
    last: Option<&Digest>,
    limit: usize,
) -> Vec<ManifestNode> {
    let Some(repo) = state.repositories.get(repository) else {
        return Vec::new();
    };
    let lower = last.map_or(Bound::Unbounded, Bound::Excluded);
    repo.manifests
        .range::<Digest, _>((lower, Bound::Unbounded))
        .take(limit)
        .map(|(digest, e)| ManifestNode {
            digest: digest.clone(),
            created: e.manifest.created,
            pushed: e.pushed,
            subject: e.manifest.subject.clone(),
            children: e.children.iter().cloned().collect(),
            blobs: e.blobs.iter().cloned().collect(),
        })
        .collect()
}

pub(super) fn delete_unreferenced(
    state: &mut State,
    repository: &RepositoryName,
    digest: &Digest,
    planned: SystemTime,
) -> bool {
    let Some(repo) = state.repositories.get_mut(repository) else {
        return false;
    };
    let Some(entry) = repo.manifests.get(digest) else {
        return false;
    };
    let kept = entry.pushed >= planned
        || repo.tags.values().any(|(d, _)| d == digest)
        || repo.manifests.values().any(|e| e.children.contains(digest))
        || entry
            .manifest
            .subject
            .as_ref()
            .is_some_and(|s| repo.manifests.contains_key(s));
    if kept {
        return false;
    }
    repo.remove_manifest(digest);
    true
}

pub(super) fn blob_reference_count(state: &State, digest: &Digest) -> u64 {
    state
        .repositories
        .values()
        .flat_map(|r| r.manifests.values())
        .filter(|e| e.blobs.contains(digest))
        .count() as u64
}

pub(super) fn tag_events(
    state: &State,
    repository: &RepositoryName,
    after: Option<(&Tag, u64)>,
    limit: usize,
) -> Vec<(Tag, TagEvent)> {
    let Some(repo) = state.repositories.get(repository) else {
        return Vec::new();
    };
    let lower = after.map_or(Bound::Unbounded, |(tag, _)| Bound::Included(tag));
    repo.history
        .range::<Tag, _>((lower, Bound::Unbounded))
        .flat_map(|(tag, events)| events.iter().map(move |e| (tag, e)))
        .filter(|(tag, e)| after.is_none_or(|(t, seq)| *tag != t || e.seq > seq))
        .take(limit)
        .map(|(tag, e)| (tag.clone(), e.clone()))
        .collect()
}
