//! The in-memory store's state: namespaces, repositories with their
//! manifests, tags, history and links, blob records and usage, all behind
//! the store's one lock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::SystemTime;

use registry_core::{Digest, Namespace, RepositoryName, Tag};

use crate::error::StorageError;
use crate::memory::usage::Usage;
use crate::metadata::{BlobRecord, BlobState, StoredManifest, TagEvent};
use crate::policy::NamespacePolicy;

#[derive(Debug, Default)]
pub(in crate::memory) struct State {
    pub(in crate::memory) namespaces: BTreeSet<Namespace>,
    pub(in crate::memory) policies: BTreeMap<Namespace, NamespacePolicy>,
    pub(in crate::memory) repositories: BTreeMap<RepositoryName, Repository>,
    /// Garbage collection's record of each blob it or a link has touched.
    pub(in crate::memory) blobs: HashMap<Digest, BlobRecord>,
    /// Namespace usage, kept with every change of `links` (see `usage.rs`).
    pub(in crate::memory) usage: Usage,
    /// Events, webhooks and deliveries (see `outbox.rs`).
    pub(in crate::memory) outbox: super::outbox::Outbox,
}

impl State {
    pub(in crate::memory) fn record(&self, digest: &Digest) -> BlobRecord {
        self.blobs
            .get(digest)
            .copied()
            .unwrap_or(BlobRecord::UNKNOWN)
    }

    /// Marks a blob live and wanted now (a link or a manifest reference).
    pub(in crate::memory) fn touch(&mut self, digest: &Digest, now: SystemTime) {
        let record = self
            .blobs
            .entry(digest.clone())
            .or_insert(BlobRecord::UNKNOWN);
        record.state = BlobState::Live;
        record.generation += 1;
        record.touched = Some(now);
    }

    pub(in crate::memory) fn referenced(&self, digest: &Digest) -> bool {
        self.repositories
            .values()
            .flat_map(|r| r.manifests.values())
            .any(|e| e.blobs.contains(digest))
    }

    pub(in crate::memory) fn link(
        &mut self,
        repository: &RepositoryName,
        digest: &Digest,
        now: SystemTime,
    ) {
        self.touch(digest, now);
        let new = self
            .repositories
            .entry(repository.clone())
            .or_insert_with(|| Repository::new(now))
            .links
            .insert(digest.clone());
        if new {
            self.usage.linked(repository, digest);
        }
    }

    /// Removes a blob's links from every repository, uncounting each.
    pub(in crate::memory) fn unlink_everywhere(&mut self, digest: &Digest) {
        for (name, repo) in &mut self.repositories {
            if repo.links.remove(digest) {
                self.usage.unlinked(name, digest);
            }
        }
    }
}

pub(in crate::memory) fn blob_deleted(digest: &Digest) -> StorageError {
    StorageError::BlobDeleted {
        digest: digest.clone(),
    }
}

#[derive(Debug)]
pub(in crate::memory) struct Repository {
    pub(in crate::memory) created: SystemTime,
    pub(in crate::memory) manifests: BTreeMap<Digest, ManifestEntry>,
    pub(in crate::memory) tags: BTreeMap<Tag, (Digest, SystemTime)>,
    /// Oldest first; read back reversed.
    pub(in crate::memory) history: BTreeMap<Tag, Vec<TagEvent>>,
    pub(in crate::memory) links: BTreeSet<Digest>,
    /// Subject digest → digests of the manifests referring to it.
    pub(in crate::memory) referrers: BTreeMap<Digest, BTreeSet<Digest>>,
}

#[derive(Debug)]
pub(in crate::memory) struct ManifestEntry {
    pub(in crate::memory) manifest: StoredManifest,
    pub(in crate::memory) blobs: BTreeSet<Digest>,
    /// Child manifests (an index's entries).
    pub(in crate::memory) children: BTreeSet<Digest>,
    /// When a push last named it.
    pub(in crate::memory) pushed: SystemTime,
}

impl Repository {
    pub(in crate::memory) fn new(created: SystemTime) -> Self {
        Repository {
            created,
            manifests: BTreeMap::new(),
            tags: BTreeMap::new(),
            history: BTreeMap::new(),
            links: BTreeSet::new(),
            referrers: BTreeMap::new(),
        }
    }

    /// Removes a manifest and its referrers-index entry (not its tags).
    pub(in crate::memory) fn remove_manifest(&mut self, digest: &Digest) -> Option<ManifestEntry> {
        let entry = self.manifests.remove(digest)?;
        if let Some(subject) = &entry.manifest.subject {
            if let Some(set) = self.referrers.get_mut(subject) {
                set.remove(digest);
                if set.is_empty() {
                    self.referrers.remove(subject);
                }
            }
        }
        Some(entry)
    }

    pub(in crate::memory) fn record(
        &mut self,
        tag: &Tag,
        digest: Option<Digest>,
        at: SystemTime,
        actor: &str,
    ) {
        let events = self.history.entry(tag.clone()).or_default();
        events.push(TagEvent {
            // Events are never removed while the repository exists, so the
            // position is a stable cursor.
            seq: events.len() as u64 + 1,
            digest,
            at,
            actor: actor.to_owned(),
        });
    }
}
