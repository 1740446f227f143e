//! Namespace usage of the [`MemoryMetadataStore`](super::MemoryMetadataStore):
//! counters kept beside the links, updated under the same lock by every
//! change of links, and the quota check that runs under it before a link.

use std::collections::HashMap;
use std::ops::Bound;

use registry_core::{Digest, Namespace, RepositoryName};

use super::metadata::{Repository, State};
use crate::error::{Result, StorageError};
use crate::usage::{NamespaceUsage, RepositoryUsage, UsageRecount, UsageSummary};

/// Verified sizes and each namespace's distinct blobs.
#[derive(Debug, Default)]
pub(super) struct Usage {
    sizes: HashMap<Digest, u64>,
    namespaces: HashMap<Namespace, Counted>,
}

/// One namespace's counters.
#[derive(Debug, Default)]
struct Counted {
    bytes: u64,
    /// Each distinct blob with the size counted for it and how many of the
    /// namespace's repositories link it.
    blobs: HashMap<Digest, Held>,
}

#[derive(Debug, Clone, Copy)]
struct Held {
    size: u64,
    links: u64,
}

impl Usage {
    /// Records a verified size; a size learned late reaches every
    /// namespace that holds the blob.
    pub(super) fn record_size(&mut self, digest: &Digest, size: u64) {
        if self.sizes.contains_key(digest) {
            return;
        }
        self.sizes.insert(digest.clone(), size);
        for counted in self.namespaces.values_mut() {
            if let Some(held) = counted.blobs.get_mut(digest) {
                counted.bytes = counted.bytes - held.size + size;
                held.size = size;
            }
        }
    }

    /// Counts a link that did not exist before.
    pub(super) fn linked(&mut self, repository: &RepositoryName, digest: &Digest) {
        let size = self.sizes.get(digest).copied().unwrap_or(0);
        let counted = self
            .namespaces
            .entry(repository.to_namespace())
            .or_default();
        let held = counted
            .blobs
            .entry(digest.clone())
            .or_insert(Held { size, links: 0 });
        if held.links == 0 {
            counted.bytes += held.size;
        }
        held.links += 1;
    }

    /// Uncounts a link that was just removed.
    pub(super) fn unlinked(&mut self, repository: &RepositoryName, digest: &Digest) {
        let namespace = repository.to_namespace();
        let Some(counted) = self.namespaces.get_mut(&namespace) else {
            return;
        };
        if let Some(held) = counted.blobs.get_mut(digest) {
            held.links -= 1;
            if held.links == 0 {
                counted.bytes -= held.size;
                counted.blobs.remove(digest);
            }
        }
        if counted.blobs.is_empty() {
            self.namespaces.remove(&namespace);
        }
    }

    /// Drops a namespace whose repositories are all gone.
    pub(super) fn forget_namespace(&mut self, namespace: &Namespace) {
        self.namespaces.remove(namespace);
    }

    fn counters(&self, namespace: &Namespace) -> (u64, u64) {
        self.namespaces
            .get(namespace)
            .map_or((0, 0), |c| (c.bytes, c.blobs.len() as u64))
    }

    pub(super) fn size(&self, digest: &Digest) -> Option<u64> {
        self.sizes.get(digest).copied()
    }
}

impl State {
    /// Fails with `QuotaExceeded` when linking `digests` into `repository`
    /// would bring blobs new to its namespace past its quota. `size` is a
    /// size for `digests` the caller verified and is about to record.
    pub(super) fn check_quota(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
        size: Option<u64>,
    ) -> Result<()> {
        let namespace = repository.to_namespace();
        let Some(limit) = self.policies.get(&namespace).and_then(|p| p.quota_bytes) else {
            return Ok(());
        };
        let held = self.usage.namespaces.get(&namespace);
        let mut seen = std::collections::HashSet::new();
        let needed: u64 = digests
            .iter()
            .filter(|d| seen.insert(*d))
            .filter(|d| held.is_none_or(|c| !c.blobs.contains_key(*d)))
            .map(|d| self.usage.size(d).or(size).unwrap_or(0))
            .fold(0, u64::saturating_add);
        let (usage, _) = self.usage.counters(&namespace);
        if needed > 0 && usage.saturating_add(needed) > limit {
            return Err(StorageError::QuotaExceeded {
                namespace,
                usage,
                limit,
                needed,
            });
        }
        Ok(())
    }

    pub(super) fn namespace_usage(&self, namespace: &Namespace) -> NamespaceUsage {
        let (bytes, blobs) = self.usage.counters(namespace);
        let mut usage = NamespaceUsage {
            bytes,
            blobs,
            ..NamespaceUsage::default()
        };
        for repo in self.repositories_of(namespace) {
            usage.imagestreams += 1;
            usage.images += repo.manifests.len() as u64;
        }
        usage
    }

    pub(super) fn repository_usage(&self, repository: &RepositoryName) -> RepositoryUsage {
        self.repositories
            .get(repository)
            .map(|repo| RepositoryUsage {
                bytes: repo
                    .links
                    .iter()
                    .map(|d| self.usage.size(d).unwrap_or(0))
                    .sum(),
                blobs: repo.links.len() as u64,
                images: repo.manifests.len() as u64,
                tags: repo.tags.len() as u64,
            })
            .unwrap_or_default()
    }

    pub(super) fn usage_summary(&self, limit: usize) -> UsageSummary {
        let mut all: Vec<(&Namespace, &Counted)> = self.usage.namespaces.iter().collect();
        all.sort_by(|(a, x), (b, y)| y.bytes.cmp(&x.bytes).then_with(|| a.cmp(b)));
        let mut summary = UsageSummary::default();
        for (i, (namespace, counted)) in all.into_iter().enumerate() {
            let usage = NamespaceUsage {
                bytes: counted.bytes,
                blobs: counted.blobs.len() as u64,
                ..NamespaceUsage::default()
            };
            if i < limit {
                summary.largest.push(((*namespace).clone(), usage));
            } else {
                summary.rest.bytes += usage.bytes;
                summary.rest.blobs += usage.blobs;
            }
        }
        summary
    }

    pub(super) fn unsized_blobs(
        &self,
        namespace: &Namespace,
        last: Option<&Digest>,
        limit: usize,
    ) -> Vec<Digest> {
        let Some(counted) = self.usage.namespaces.get(namespace) else {
            return Vec::new();
        };
        let mut missing: Vec<Digest> = counted
            .blobs
            .keys()
            .filter(|d| self.usage.size(d).is_none() && last.is_none_or(|l| *d > l))
            .cloned()
            .collect();
        missing.sort();
        missing.truncate(limit);
        missing
    }

    /// Rebuilds a namespace's counters from its repositories' links.
    pub(super) fn recount_usage(&mut self, namespace: &Namespace) -> UsageRecount {
        let before = self.namespace_usage(namespace);
        let mut blobs: HashMap<Digest, Held> = HashMap::new();
        for repo in self.repositories_of(namespace) {
            for digest in &repo.links {
                let size = self.usage.size(digest).unwrap_or(0);
                blobs
                    .entry(digest.clone())
                    .or_insert(Held { size, links: 0 })
                    .links += 1;
            }
        }
        if blobs.is_empty() {
            self.usage.namespaces.remove(namespace);
        } else {
            let bytes = blobs.values().map(|h| h.size).sum();
            self.usage
                .namespaces
                .insert(namespace.clone(), Counted { bytes, blobs });
        }
        UsageRecount {
            before,
            after: self.namespace_usage(namespace),
        }
    }

    pub(super) fn record_size(&mut self, digest: &Digest, size: u64) {
        self.usage.record_size(digest, size);
    }
}

impl State {
    /// The repositories of a namespace: a contiguous range of names.
    fn repositories_of<'a>(
        &'a self,
        namespace: &'a Namespace,
    ) -> impl Iterator<Item = &'a Repository> + 'a {
        let prefix = format!("{namespace}/");
        self.repositories
            .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded))
            .take_while(move |(name, _)| name.namespace() == namespace.as_str())
            .map(|(_, repo)| repo)
    }
}
