//! [`CachedMetadataStore`]: an in-memory read cache in front of any
//! [`MetadataStore`], so that SQL round trips do not bound requests per
//! second on the hot paths (manifest by tag or digest, blob links,
//! namespace checks).
//!
//! Writes through this wrapper invalidate what they change, so one process
//! always reads its own writes. Other replicas' writes are seen as soon as
//! their [`Change`](crate::Change) arrives through
//! [`MetadataStore::invalidate`], and at the latest once an entry's time to
//! live has passed. A generation counter, bumped by every
//! write, keeps a read that raced with a write from caching what it read
//! before the write.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use registry_core::{Digest, Namespace, Reference, RepositoryName, Tag};

use crate::error::Result;
use crate::events::NewEvent;
use crate::metadata::{
    BlobRecord, BlobTicket, LinkedBlob, ManifestNode, MetadataStore, MovedTag, NewManifest,
    Referrer, RepositoryInfo, StoredManifest, TagEvent, TagRecord,
};
use crate::policy::NamespacePolicy;
use crate::usage::{NamespaceUsage, RepositoryUsage, UsageRecount, UsageSummary};

mod maps;

use maps::Maps;

/// How long entries live and how many are kept.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// How long an entry is trusted: the bound on how stale a read may be
    /// after another replica wrote.
    pub ttl: Duration,
    /// Most entries per map; a full map is emptied (a cheap, bounded policy).
    pub max_entries: usize,
    /// Most manifest bytes held.
    pub max_manifest_bytes: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl: Duration::from_secs(5),
            max_entries: 100_000,
            max_manifest_bytes: 64 * 1024 * 1024,
        }
    }
}

/// A [`MetadataStore`] that caches hot reads of another one.
pub struct CachedMetadataStore<S> {
    inner: S,
    config: CacheConfig,
    generation: AtomicU64,
    maps: Mutex<Maps>,
}

impl<S: std::fmt::Debug> std::fmt::Debug for CachedMetadataStore<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedMetadataStore")
            .field("inner", &self.inner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<S: MetadataStore> CachedMetadataStore<S> {
    /// Caches `inner` with the default settings.
    pub fn new(inner: S) -> Self {
        Self::with_config(inner, CacheConfig::default())
    }

    /// Caches `inner` with `config`.
    pub fn with_config(inner: S, config: CacheConfig) -> Self {
        CachedMetadataStore {
            inner,
            config,
            generation: AtomicU64::new(0),
            maps: Mutex::new(Maps::new()),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn maps(&self) -> MutexGuard<'_, Maps> {
        // A panic while holding the lock cannot leave the maps inconsistent
        // in a way that matters: they only ever hold valid entries.
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs a write, then applies `invalidate` to the maps. The generation
    /// moves before and after, so no read spanning the write caches.
    async fn write<T>(
        &self,
        op: impl std::future::Future<Output = Result<T>>,
        invalidate: impl FnOnce(&mut Maps),
    ) -> Result<T> {
        self.generation.fetch_add(1, Ordering::SeqCst);
        let result = op.await;
        {
            let mut maps = self.maps();
            invalidate(&mut maps);
            self.generation.fetch_add(1, Ordering::SeqCst);
        }
        result
    }

    /// Inserts read results if no write happened since `generation`.
    fn fill(&self, generation: u64, fill: impl FnOnce(&mut Maps, Instant, usize)) {
        let mut maps = self.maps();
        if self.generation.load(Ordering::SeqCst) == generation {
            fill(
                &mut maps,
                Instant::now() + self.config.ttl,
                self.config.max_entries,
            );
        }
    }

    fn cache_manifest(&self, generation: u64, m: &StoredManifest, tag: Option<&Tag>) {
        let max_bytes = self.config.max_manifest_bytes;
        self.fill(generation, |maps, expires, max| {
            if let Some(tag) = tag {
                maps.tags.insert(
                    (m.repository.clone(), tag.clone()),
                    m.digest.clone(),
                    expires,
                    max,
                );
            }
            maps.insert_manifest(m, expires, max, max_bytes);
        });
    }
}

#[async_trait]
impl<S: MetadataStore> MetadataStore for CachedMetadataStore<S> {
    async fn lock_prune(&self) -> Result<crate::PruneGuard> {
        self.inner.lock_prune().await
    }

    fn invalidate(&self, change: &crate::Change) {
        // As a write does: a read that started before the change and ends
        // after it must not cache what it read.
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.maps().forget(change);
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.inner.invalidate(change);
    }

    async fn create_namespace_raising(
        &self,
        namespace: &Namespace,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        self.inner.create_namespace_raising(namespace, events).await
    }

    async fn namespace_exists(&self, namespace: &Namespace) -> Result<bool> {
        let generation = self.generation.load(Ordering::SeqCst);
        if self
            .maps()
            .namespaces
            .get(namespace, Instant::now())
            .is_some()
        {
            return Ok(true);
        }
        let exists = self.inner.namespace_exists(namespace).await?;
        if exists {
            self.fill(generation, |maps, expires, max| {
                maps.namespaces.insert(namespace.clone(), (), expires, max)
            });
        }
        Ok(exists)
    }

    async fn list_namespaces(&self) -> Result<Vec<Namespace>> {
        self.inner.list_namespaces().await
    }

    async fn namespace_policy(&self, namespace: &Namespace) -> Result<NamespacePolicy> {
        // Not cached: read once per manifest push, and another replica's
        // change must hold at once.
        self.inner.namespace_policy(namespace).await
    }

    async fn set_namespace_policy_raising(
        &self,
        namespace: &Namespace,
        policy: &NamespacePolicy,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        self.inner
            .set_namespace_policy_raising(namespace, policy, events)
            .await
    }

    async fn delete_namespace_raising(
        &self,
        namespace: &Namespace,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        let write = self.inner.delete_namespace_raising(namespace, events);
        self.write(write, |maps| {
            maps.forget(&crate::Change::Namespace(namespace.clone()));
        })
        .await
    }

    async fn repository(&self, name: &RepositoryName) -> Result<Option<RepositoryInfo>> {
        self.inner.repository(name).await
    }

    async fn list_repositories(
        &self,
        namespace: Option<&Namespace>,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RepositoryName>> {
        self.inner.list_repositories(namespace, last, limit).await
    }

    async fn delete_repository_raising(
        &self,
        name: &RepositoryName,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        self.write(self.inner.delete_repository_raising(name, events), |maps| {
            maps.forget(&crate::Change::Repository(name.clone()));
        })
        .await
    }

    async fn put_manifest(&self, manifest: NewManifest) -> Result<Vec<MovedTag>> {
        let repo = manifest.repository.clone();
        let tags = manifest.tags.clone();
        self.write(self.inner.put_manifest(manifest), |maps| {
            let moved: HashSet<&Tag> = tags.iter().collect();
            maps.tags.retain(|(r, t)| r != &repo || !moved.contains(t));
        })
        .await
    }

    async fn get_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<StoredManifest>> {
        let generation = self.generation.load(Ordering::SeqCst);
        let now = Instant::now();
        {
            let maps = self.maps();
            let digest = match reference {
                Reference::Digest(d) => Some(d.clone()),
                Reference::Tag(t) => maps.tags.get(&(repository.clone(), t.clone()), now),
            };
            if let Some(d) = digest {
                if let Some(m) = maps.manifests.get(&(repository.clone(), d), now) {
                    return Ok(Some(m));
                }
            }
        }
        let found = self.inner.get_manifest(repository, reference).await?;
        if let Some(m) = &found {
            self.cache_manifest(generation, m, reference.as_tag());
        }
        Ok(found)
    }

    async fn delete_manifest_raising(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        actor: &str,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        self.write(
            self.inner
                .delete_manifest_raising(repository, digest, actor, events),
            |maps| {
                maps.manifests
                    .retain(|(r, d)| r != repository || d != digest);
                maps.tags.retain(|(r, _)| r != repository);
            },
        )
        .await
    }

    async fn manifest_nodes(
        &self,
        repository: &RepositoryName,
        last: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<ManifestNode>> {
        self.inner.manifest_nodes(repository, last, limit).await
    }

    async fn delete_unreferenced_manifests(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
        planned: std::time::SystemTime,
    ) -> Result<Vec<bool>> {
        // No tag points at them (the store checks), so only their own
        // entries go.
        self.write(
            self.inner
                .delete_unreferenced_manifests(repository, digests, planned),
            |maps| {
                maps.manifests
                    .retain(|(r, d)| r != repository || !digests.contains(d));
            },
        )
        .await
    }

    async fn blob_reference_count(&self, digest: &Digest) -> Result<u64> {
        self.inner.blob_reference_count(digest).await
    }

    async fn tag_events(
        &self,
        repository: &RepositoryName,
        after: Option<(&Tag, u64)>,
        limit: usize,
    ) -> Result<Vec<(Tag, TagEvent)>> {
        self.inner.tag_events(repository, after, limit).await
    }

    async fn manifests_present(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
    ) -> Result<Vec<bool>> {
        self.inner.manifests_present(repository, digests).await
    }

    async fn find_manifest(&self, digest: &Digest) -> Result<Vec<RepositoryName>> {
        self.inner.find_manifest(digest).await
    }

    async fn list_tags(
        &self,
        repository: &RepositoryName,
        last: Option<&Tag>,
        limit: usize,
    ) -> Result<Vec<Tag>> {
        self.inner.list_tags(repository, last, limit).await
    }

    async fn tags(
        &self,
        repository: &RepositoryName,
        last: Option<&Tag>,
        limit: usize,
    ) -> Result<Vec<TagRecord>> {
        self.inner.tags(repository, last, limit).await
    }

    async fn tag_history(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<TagEvent>> {
        self.inner.tag_history(repository, tag, before, limit).await
    }

    async fn delete_tag_raising(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        actor: &str,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        let write = self
            .inner
            .delete_tag_raising(repository, tag, actor, events);
        self.write(write, |maps| {
            maps.tags.retain(|(r, t)| r != repository || t != tag);
        })
        .await
    }

    async fn link_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<()> {
        self.inner.link_blob(repository, digest).await
    }

    async fn linked_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<LinkedBlob>> {
        let generation = self.generation.load(Ordering::SeqCst);
        let key = (repository.clone(), digest.clone());
        if let Some(linked) = self.maps().links.get(&key, Instant::now()) {
            return Ok(Some(linked));
        }
        let linked = self.inner.linked_blob(repository, digest).await?;
        if let Some(linked) = linked {
            self.fill(generation, |maps, expires, max| {
                maps.links.insert(key, linked, expires, max)
            });
        }
        Ok(linked)
    }

    async fn unlink_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<()> {
        self.write(self.inner.unlink_blob(repository, digest), |maps| {
            maps.links.retain(|(r, d)| r != repository || d != digest);
        })
        .await
    }

    async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        last: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<Referrer>> {
        self.inner
            .referrers(repository, subject, artifact_type, last, limit)
            .await
    }

    async fn referenced_blobs(&self) -> Result<HashSet<Digest>> {
        self.inner.referenced_blobs().await
    }

    async fn forget_blob(&self, digest: &Digest) -> Result<()> {
        self.write(self.inner.forget_blob(digest), |maps| {
            maps.links.retain(|(_, d)| d != digest);
        })
        .await
    }

    // Garbage collection's records are never cached: they decide deletes.
    async fn blob_record(&self, digest: &Digest) -> Result<BlobRecord> {
        self.inner.blob_record(digest).await
    }

    async fn link_blob_with(&self, repository: &RepositoryName, ticket: &BlobTicket) -> Result<()> {
        self.inner.link_blob_with(repository, ticket).await
    }

    async fn begin_blob_delete(&self, digest: &Digest, generation: u64) -> Result<bool> {
        // The mark removes every link of the blob: drop the cached ones.
        self.write(self.inner.begin_blob_delete(digest, generation), |maps| {
            maps.links.retain(|(_, d)| d != digest);
        })
        .await
    }

    async fn finish_blob_delete(&self, digest: &Digest) -> Result<()> {
        self.inner.finish_blob_delete(digest).await
    }

    async fn stale_blob_deletes(&self, before: std::time::SystemTime) -> Result<Vec<Digest>> {
        self.inner.stale_blob_deletes(before).await
    }

    // Usage is never cached: quota checks read it inside the store's own
    // transactions, and a stale figure would mislead whoever reads it.
    async fn record_blob_sizes(&self, sizes: &[(Digest, u64)]) -> Result<()> {
        // Cached links of these blobs may say their size is unknown.
        let digests: HashSet<&Digest> = sizes.iter().map(|(digest, _)| digest).collect();
        self.write(self.inner.record_blob_sizes(sizes), |maps| {
            maps.links.retain(|(_, d)| !digests.contains(d));
        })
        .await
    }

    async fn unsized_blobs(
        &self,
        namespace: &Namespace,
        last: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<Digest>> {
        self.inner.unsized_blobs(namespace, last, limit).await
    }

    async fn namespace_usage(&self, namespace: &Namespace) -> Result<NamespaceUsage> {
        self.inner.namespace_usage(namespace).await
    }

    async fn repository_usage(&self, repository: &RepositoryName) -> Result<RepositoryUsage> {
        self.inner.repository_usage(repository).await
    }

    async fn usage_summary(&self, limit: usize) -> Result<UsageSummary> {
        self.inner.usage_summary(limit).await
    }

    async fn recount_usage(&self, namespace: &Namespace) -> Result<UsageRecount> {
        self.inner.recount_usage(namespace).await
    }
}
