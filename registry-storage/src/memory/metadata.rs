//! [`MemoryMetadataStore`]: every piece of metadata in one locked struct.

use std::collections::HashSet;
use std::ops::Bound;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::SystemTime;

use async_trait::async_trait;
use registry_core::{Digest, Namespace, Reference, RepositoryName, Tag};

use crate::error::{Result, StorageError};
use crate::events::NewEvent;
use crate::metadata::{
    BlobRecord, BlobState, BlobTicket, LinkedBlob, ManifestNode, MetadataStore, MovedTag,
    NewManifest, Referrer, RepositoryInfo, StoredManifest, TagEvent, TagRecord,
};
use crate::policy::NamespacePolicy;
use crate::usage::{NamespaceUsage, RepositoryUsage, UsageRecount, UsageSummary};

mod manifests;
mod outbox;
mod retention;
mod state;

use self::state::{blob_deleted, ManifestEntry};
pub(super) use self::state::{Repository, State};

/// Metadata held in process, for tests and for embedding without a disk.
///
/// One lock guards all of it, so every operation (notably
/// [`put_manifest`](MetadataStore::put_manifest)) is atomic: readers see
/// either nothing of a write or all of it.
#[derive(Debug, Default)]
pub struct MemoryMetadataStore {
    state: RwLock<State>,
}

impl MemoryMetadataStore {
    // A panic while the lock is held cannot leave a half-applied write:
    // every mutation below validates first and then only inserts or removes
    // map entries, which do not panic. So a poisoned lock still guards
    // consistent data and is safe to keep using.
    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn not_found_repository(name: &RepositoryName) -> StorageError {
    StorageError::not_found(format_args!("repository {name}"))
}

#[async_trait]
impl MetadataStore for MemoryMetadataStore {
    async fn create_namespace_raising(
        &self,
        namespace: &Namespace,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        let mut state = self.write();
        if state.namespaces.insert(namespace.clone()) {
            state.outbox.record(events, SystemTime::now());
            Ok(())
        } else {
            Err(StorageError::AlreadyExists {
                what: format!("namespace {namespace}"),
            })
        }
    }

    async fn namespace_exists(&self, namespace: &Namespace) -> Result<bool> {
        Ok(self.read().namespaces.contains(namespace))
    }

    async fn list_namespaces(&self) -> Result<Vec<Namespace>> {
        Ok(self.read().namespaces.iter().cloned().collect())
    }

    async fn delete_namespace_raising(
        &self,
        namespace: &Namespace,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        let mut state = self.write();
        if !state.namespaces.remove(namespace) {
            return Err(StorageError::not_found(format_args!(
                "namespace {namespace}"
            )));
        }
        state
            .repositories
            .retain(|name, _| name.namespace() != namespace.as_str());
        state.policies.remove(namespace);
        state.usage.forget_namespace(namespace);
        state.outbox.record(events, SystemTime::now());
        state.outbox.retire(namespace);
        Ok(())
    }

    async fn namespace_policy(&self, namespace: &Namespace) -> Result<NamespacePolicy> {
        let state = self.read();
        if !state.namespaces.contains(namespace) {
            return Err(StorageError::not_found(format_args!(
                "namespace {namespace}"
            )));
        }
        Ok(state.policies.get(namespace).cloned().unwrap_or_default())
    }

    async fn set_namespace_policy_raising(
        &self,
        namespace: &Namespace,
        policy: &NamespacePolicy,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        let mut state = self.write();
        if !state.namespaces.contains(namespace) {
            return Err(StorageError::not_found(format_args!(
                "namespace {namespace}"
            )));
        }
        state.policies.insert(namespace.clone(), policy.clone());
        state.outbox.record(events, SystemTime::now());
        Ok(())
    }

    async fn repository(&self, name: &RepositoryName) -> Result<Option<RepositoryInfo>> {
        Ok(self.read().repositories.get(name).map(|r| RepositoryInfo {
            name: name.clone(),
            created: r.created,
        }))
    }

    async fn list_repositories(
        &self,
        namespace: Option<&Namespace>,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RepositoryName>> {
        let state = self.read();
        let lower = last.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(match namespace {
            None => state
                .repositories
                .range::<str, _>((lower, Bound::Unbounded))
                .take(limit)
                .map(|(n, _)| n.clone())
                .collect(),
            Some(ns) => {
                // Names sharing the prefix `ns/` are contiguous in lexical
                // order: start at the later of the prefix and `last`, so no
                // other namespace's names are walked.
                let prefix = format!("{ns}/");
                let lower = match last {
                    Some(last) if last >= prefix.as_str() => Bound::Excluded(last),
                    _ => Bound::Included(prefix.as_str()),
                };
                state
                    .repositories
                    .range::<str, _>((lower, Bound::Unbounded))
                    .map(|(n, _)| n)
                    .take_while(|n| n.as_str().starts_with(&prefix))
                    .take(limit)
                    .cloned()
                    .collect()
            }
        })
    }

    async fn delete_repository_raising(
        &self,
        name: &RepositoryName,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        let mut state = self.write();
        match state.repositories.remove(name) {
            Some(repo) => {
                for digest in &repo.links {
                    state.usage.unlinked(name, digest);
                }
                state.outbox.record(events, SystemTime::now());
                Ok(())
            }
            None => Err(not_found_repository(name)),
        }
    }

    async fn put_manifest(&self, manifest: NewManifest) -> Result<Vec<MovedTag>> {
        let now = SystemTime::now();
        let mut state = self.write();
        let (events, moved) = manifests::put(&mut state, manifest, now)?;
        state.outbox.record(events, now);
        Ok(moved)
    }

    async fn get_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<StoredManifest>> {
        let state = self.read();
        let Some(repo) = state.repositories.get(repository) else {
            return Ok(None);
        };
        let digest = match reference {
            Reference::Digest(d) => d,
            Reference::Tag(t) => match repo.tags.get(t) {
                Some((d, _)) => d,
                None => return Ok(None),
            },
        };
        Ok(repo.manifests.get(digest).map(|e| e.manifest.clone()))
    }

    async fn delete_manifest_raising(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        actor: &str,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        let now = SystemTime::now();
        let mut state = self.write();
        manifests::delete(&mut state, repository, digest, actor, now)?;
        state.outbox.record(events, now);
        Ok(())
    }

    async fn manifests_present(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
    ) -> Result<Vec<bool>> {
        let state = self.read();
        let repo = state.repositories.get(repository);
        Ok(digests
            .iter()
            .map(|d| repo.is_some_and(|r| r.manifests.contains_key(d)))
            .collect())
    }

    async fn find_manifest(&self, digest: &Digest) -> Result<Vec<RepositoryName>> {
        Ok(self
            .read()
            .repositories
            .iter()
            .filter(|(_, r)| r.manifests.contains_key(digest))
            .map(|(n, _)| n.clone())
            .collect())
    }

    async fn list_tags(
        &self,
        repository: &RepositoryName,
        last: Option<&Tag>,
        limit: usize,
    ) -> Result<Vec<Tag>> {
        let state = self.read();
        let Some(repo) = state.repositories.get(repository) else {
            return Ok(Vec::new());
        };
        let lower = last.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(repo
            .tags
            .range((lower, Bound::Unbounded))
            .take(limit)
            .map(|(t, _)| t.clone())
            .collect())
    }

    async fn tags(
        &self,
        repository: &RepositoryName,
        last: Option<&Tag>,
        limit: usize,
    ) -> Result<Vec<TagRecord>> {
        let state = self.read();
        let lower = last.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(state
            .repositories
            .get(repository)
            .map(|repo| {
                repo.tags
                    .range((lower, Bound::Unbounded))
                    .take(limit)
                    .map(|(tag, (digest, updated))| TagRecord {
                        tag: tag.clone(),
                        digest: digest.clone(),
                        updated: *updated,
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn tag_history(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<TagEvent>> {
        let state = self.read();
        Ok(state
            .repositories
            .get(repository)
            .and_then(|r| r.history.get(tag))
            .map(|events| {
                // `seq` is the position plus one: older than `before` is a prefix.
                let end = before.map_or(events.len(), |b| {
                    usize::try_from(b.saturating_sub(1))
                        .map_or(events.len(), |b| b.min(events.len()))
                });
                events[..end].iter().rev().take(limit).cloned().collect()
            })
            .unwrap_or_default())
    }

    async fn delete_tag_raising(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        actor: &str,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        let now = SystemTime::now();
        let mut state = self.write();
        let repo = state
            .repositories
            .get_mut(repository)
            .filter(|repo| repo.tags.contains_key(tag))
            .ok_or_else(|| StorageError::not_found(format_args!("tag {repository}:{tag}")))?;
        repo.tags.remove(tag);
        repo.record(tag, None, now, actor);
        state.outbox.record(events, now);
        Ok(())
    }

    async fn link_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<()> {
        let mut state = self.write();
        if state.record(digest).state == BlobState::Deleting {
            return Err(blob_deleted(digest));
        }
        state.check_quota(repository, std::slice::from_ref(digest), None)?;
        state.link(repository, digest, SystemTime::now());
        Ok(())
    }

    async fn linked_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<LinkedBlob>> {
        let state = self.read();
        let linked = state
            .repositories
            .get(repository)
            .is_some_and(|r| r.links.contains(digest));
        Ok(linked.then(|| LinkedBlob {
            size: state.usage.size(digest),
        }))
    }

    async fn unlink_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<()> {
        let mut state = self.write();
        let removed = state
            .repositories
            .get_mut(repository)
            .is_some_and(|repo| repo.links.remove(digest));
        if removed {
            state.usage.unlinked(repository, digest);
            Ok(())
        } else {
            Err(StorageError::not_found(format_args!(
                "blob link {repository}@{digest}"
            )))
        }
    }

    async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        last: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<Referrer>> {
        let state = self.read();
        let Some(repo) = state.repositories.get(repository) else {
            return Ok(Vec::new());
        };
        let Some(digests) = repo.referrers.get(subject) else {
            return Ok(Vec::new());
        };
        let lower = last.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(digests
            .range((lower, Bound::Unbounded))
            .filter_map(|d| repo.manifests.get(d))
            .map(|e| &e.manifest)
            .filter(|m| artifact_type.is_none() || m.artifact_type.as_deref() == artifact_type)
            .take(limit)
            .map(|m| Referrer {
                digest: m.digest.clone(),
                media_type: m.media_type.clone(),
                size: m.bytes.len() as u64,
                artifact_type: m.artifact_type.clone(),
                annotations: m.annotations.clone(),
            })
            .collect())
    }

    async fn manifest_nodes(
        &self,
        repository: &RepositoryName,
        last: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<ManifestNode>> {
        Ok(retention::manifest_nodes(
            &self.read(),
            repository,
            last,
            limit,
        ))
    }

    async fn delete_unreferenced_manifests(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
        planned: SystemTime,
    ) -> Result<Vec<bool>> {
        let mut state = self.write();
        Ok(digests
            .iter()
            .map(|d| retention::delete_unreferenced(&mut state, repository, d, planned))
            .collect())
    }

    async fn blob_reference_count(&self, digest: &Digest) -> Result<u64> {
        Ok(retention::blob_reference_count(&self.read(), digest))
    }

    async fn tag_events(
        &self,
        repository: &RepositoryName,
        after: Option<(&Tag, u64)>,
        limit: usize,
    ) -> Result<Vec<(Tag, TagEvent)>> {
        Ok(retention::tag_events(
            &self.read(),
            repository,
            after,
            limit,
        ))
    }

    async fn referenced_blobs(&self) -> Result<HashSet<Digest>> {
        Ok(self
            .read()
            .repositories
            .values()
            .flat_map(|r| r.manifests.values())
            .flat_map(|e| e.blobs.iter().cloned())
            .collect())
    }

    async fn forget_blob(&self, digest: &Digest) -> Result<()> {
        self.write().unlink_everywhere(digest);
        Ok(())
    }

    async fn blob_record(&self, digest: &Digest) -> Result<BlobRecord> {
        Ok(self.read().record(digest))
    }

    async fn link_blob_with(&self, repository: &RepositoryName, ticket: &BlobTicket) -> Result<()> {
        let digest = ticket.digest();
        let mut state = self.write();
        let record = state.record(digest);
        if record.state == BlobState::Deleting || record.epoch != ticket.epoch() {
            return Err(blob_deleted(digest));
        }
        state.check_quota(repository, std::slice::from_ref(digest), ticket.size())?;
        if let Some(size) = ticket.size() {
            state.record_size(digest, size);
        }
        state.link(repository, digest, SystemTime::now());
        Ok(())
    }

    async fn begin_blob_delete(&self, digest: &Digest, generation: u64) -> Result<bool> {
        let mut state = self.write();
        let record = state.record(digest);
        if record.state == BlobState::Deleting
            || record.generation != generation
            || state.referenced(digest)
        {
            return Ok(false);
        }
        state.blobs.insert(
            digest.clone(),
            BlobRecord {
                state: BlobState::Deleting,
                generation: record.generation + 1,
                epoch: record.epoch + 1,
                touched: Some(SystemTime::now()),
            },
        );
        state.unlink_everywhere(digest);
        Ok(true)
    }

    async fn finish_blob_delete(&self, digest: &Digest) -> Result<()> {
        if let Some(record) = self.write().blobs.get_mut(digest) {
            if record.state == BlobState::Deleting {
                record.state = BlobState::Deleted;
                record.generation += 1;
            }
        }
        Ok(())
    }

    async fn record_blob_sizes(&self, sizes: &[(Digest, u64)]) -> Result<()> {
        let mut state = self.write();
        for (digest, size) in sizes {
            state.record_size(digest, *size);
        }
        Ok(())
    }

    async fn unsized_blobs(
        &self,
        namespace: &Namespace,
        last: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<Digest>> {
        Ok(self.read().unsized_blobs(namespace, last, limit))
    }

    async fn namespace_usage(&self, namespace: &Namespace) -> Result<NamespaceUsage> {
        Ok(self.read().namespace_usage(namespace))
    }

    async fn repository_usage(&self, repository: &RepositoryName) -> Result<RepositoryUsage> {
        Ok(self.read().repository_usage(repository))
    }

    async fn usage_summary(&self, limit: usize) -> Result<UsageSummary> {
        Ok(self.read().usage_summary(limit))
    }

    async fn recount_usage(&self, namespace: &Namespace) -> Result<UsageRecount> {
        Ok(self.write().recount_usage(namespace))
    }

    async fn stale_blob_deletes(&self, before: SystemTime) -> Result<Vec<Digest>> {
        let mut stale: Vec<Digest> = self
            .read()
            .blobs
            .iter()
            .filter(|(_, r)| {
                r.state == BlobState::Deleting && r.touched.is_some_and(|t| t < before)
            })
            .map(|(d, _)| d.clone())
            .collect();
        stale.sort();
        Ok(stale)
    }
}
