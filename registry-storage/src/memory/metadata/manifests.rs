//! Storing and deleting manifests in the in-memory store.

use std::collections::BTreeSet;
use std::time::SystemTime;

use registry_core::{Digest, RepositoryName, Tag};

use super::{blob_deleted, ManifestEntry, Repository, State};
use crate::error::{Result, StorageError};
use crate::events::NewEvent;
use crate::metadata::{BlobState, MovedTag, NewManifest, StoredManifest};

/// [`MetadataStore::put_manifest`](crate::MetadataStore::put_manifest),
/// under the store's write lock: everything is checked before anything
/// changes. Returns the events to record with it and the tags it moves.
pub(super) fn put(
    state: &mut State,
    manifest: NewManifest,
    now: SystemTime,
) -> Result<(Vec<NewEvent>, Vec<MovedTag>)> {
    if let Some(repo) = state.repositories.get(&manifest.repository) {
        for tag in &manifest.fixed_tags {
            if let Some((current, _)) = repo.tags.get(tag) {
                if *current != manifest.digest {
                    return Err(StorageError::TagImmutable {
                        tag: tag.clone(),
                        current: current.clone(),
                    });
                }
            }
        }
    }
    if let Some(gone) = manifest
        .blobs
        .iter()
        .find(|d| state.record(d).state != BlobState::Live)
    {
        return Err(blob_deleted(gone));
    }
    let present = state.repositories.get(&manifest.repository);
    if let Some(missing) = manifest
        .children
        .iter()
        .find(|child| present.is_none_or(|r| !r.manifests.contains_key(*child)))
    {
        return Err(StorageError::ManifestMissing {
            digest: missing.clone(),
        });
    }
    state.check_quota(&manifest.repository, &manifest.blobs, None)?;
    let current = state.repositories.get(&manifest.repository);
    let outcome = crate::metadata::push_events(&manifest, |tag| {
        current
            .and_then(|r| r.tags.get(tag))
            .map(|(digest, _)| digest)
    });
    for blob in &manifest.blobs {
        state.touch(blob, now);
    }
    let repo = state
        .repositories
        .entry(manifest.repository.clone())
        .or_insert_with(|| Repository::new(now));

    let entry = repo
        .manifests
        .entry(manifest.digest.clone())
        .or_insert_with(|| ManifestEntry {
            manifest: StoredManifest {
                repository: manifest.repository.clone(),
                digest: manifest.digest.clone(),
                media_type: manifest.media_type.clone(),
                bytes: manifest.bytes.clone(),
                subject: manifest.subject.clone(),
                artifact_type: manifest.artifact_type.clone(),
                annotations: manifest.annotations.clone(),
                config: manifest.config.clone(),
                created: now,
            },
            blobs: BTreeSet::new(),
            children: BTreeSet::new(),
            pushed: now,
        });
    entry.pushed = now;
    entry.blobs.extend(manifest.blobs.iter().cloned());
    entry.children.extend(manifest.children.iter().cloned());
    // The first put decides the subject: a later put of the same digest
    // is the same bytes, so it cannot name another one.
    if let Some(subject) = entry.manifest.subject.clone() {
        repo.referrers
            .entry(subject)
            .or_default()
            .insert(manifest.digest.clone());
    }
    let new_links: Vec<&Digest> = manifest
        .blobs
        .iter()
        .filter(|d| repo.links.insert((*d).clone()))
        .collect();

    for tag in &manifest.tags {
        let moved = repo
            .tags
            .get(tag)
            .is_none_or(|(current, _)| *current != manifest.digest);
        if moved {
            repo.tags
                .insert(tag.clone(), (manifest.digest.clone(), now));
            repo.record(tag, Some(manifest.digest.clone()), now, &manifest.actor);
        }
    }
    for digest in new_links {
        state.usage.linked(&manifest.repository, digest);
    }
    Ok(outcome)
}

/// [`MetadataStore::delete_manifest`](crate::MetadataStore::delete_manifest),
/// under the store's write lock.
pub(super) fn delete(
    state: &mut State,
    repository: &RepositoryName,
    digest: &Digest,
    actor: &str,
    now: SystemTime,
) -> Result<()> {
    let policy = repository
        .namespace()
        .parse::<registry_core::Namespace>()
        .ok()
        .and_then(|ns| state.policies.get(&ns).cloned());
    let repo = state
        .repositories
        .get_mut(repository)
        .filter(|r| r.manifests.contains_key(digest))
        .ok_or_else(|| StorageError::not_found(format_args!("manifest {digest}")))?;
    let pointing: Vec<Tag> = repo
        .tags
        .iter()
        .filter(|(_, (d, _))| d == digest)
        .map(|(t, _)| t.clone())
        .collect();
    // An immutable tag is never deleted with its image, however it came
    // to point there after the caller's own check.
    if let Some(tag) = pointing.iter().find(|t| {
        policy
            .as_ref()
            .is_some_and(|p| p.immutable_rule(t).is_some())
    }) {
        return Err(StorageError::TagImmutable {
            tag: tag.clone(),
            current: digest.clone(),
        });
    }
    repo.remove_manifest(digest);
    for tag in pointing {
        repo.tags.remove(&tag);
        repo.record(&tag, None, now, actor);
    }
    Ok(())
}
