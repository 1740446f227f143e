//! The maps behind [`CachedMetadataStore`](super::CachedMetadataStore):
//! entries with an expiry, bounded by count (and manifests by bytes), and
//! what a change makes stale.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

use registry_core::{Digest, Namespace, RepositoryName, Tag};

use crate::metadata::{LinkedBlob, StoredManifest};

/// Entries that expire, emptied whole when full.
pub(super) struct Map<K, V> {
    entries: HashMap<K, (V, Instant)>,
}

impl<K: Eq + Hash, V: Clone> Map<K, V> {
    fn new() -> Self {
        Map {
            entries: HashMap::new(),
        }
    }

    pub(super) fn get(&self, k: &K, now: Instant) -> Option<V> {
        self.entries
            .get(k)
            .filter(|(_, expires)| *expires > now)
            .map(|(v, _)| v.clone())
    }

    pub(super) fn insert(&mut self, k: K, v: V, expires: Instant, max: usize) {
        if self.entries.len() >= max {
            self.entries.clear();
        }
        self.entries.insert(k, (v, expires));
    }

    pub(super) fn retain(&mut self, mut keep: impl FnMut(&K) -> bool) {
        self.entries.retain(|k, _| keep(k));
    }
}

/// What the cache holds, behind its one lock.
pub(super) struct Maps {
    pub(super) manifests: Map<(RepositoryName, Digest), StoredManifest>,
    /// Bytes of the manifests in `manifests`.
    manifest_bytes: usize,
    pub(super) tags: Map<(RepositoryName, Tag), Digest>,
    pub(super) links: Map<(RepositoryName, Digest), LinkedBlob>,
    pub(super) namespaces: Map<Namespace, ()>,
}

impl Maps {
    pub(super) fn new() -> Self {
        Maps {
            manifests: Map::new(),
            manifest_bytes: 0,
            tags: Map::new(),
            links: Map::new(),
            namespaces: Map::new(),
        }
    }

    /// Caches a manifest until `expires`, emptying the manifests first when
    /// they hold `max` entries or would pass `max_bytes`.
    pub(super) fn insert_manifest(
        &mut self,
        m: &StoredManifest,
        expires: Instant,
        max: usize,
        max_bytes: usize,
    ) {
        // Emptied when full by count or by bytes (`Map::insert` would
        // empty it by count without resetting the byte count).
        let full = self.manifests.entries.len() >= max;
        if full || self.manifest_bytes + m.bytes.len() > max_bytes {
            self.manifests.entries.clear();
            self.manifest_bytes = 0;
        }
        let key = (m.repository.clone(), m.digest.clone());
        if let Some((replaced, _)) = self.manifests.entries.get(&key) {
            self.manifest_bytes -= replaced.bytes.len();
        }
        self.manifest_bytes += m.bytes.len();
        self.manifests.insert(key, m.clone(), expires, max);
    }

    /// Drops every entry `change` may have made stale: what a write of
    /// this process or of another replica changed.
    pub(super) fn forget(&mut self, change: &crate::Change) {
        use crate::Change;
        match change {
            Change::Repository(repo) => self.forget_repositories(|r| r == repo),
            Change::Namespace(ns) => {
                self.namespaces.retain(|n| n != ns);
                self.forget_repositories(|r| in_namespace(r, ns));
            }
            Change::Auth => {}
            Change::Everything => {
                self.manifests.entries.clear();
                self.manifest_bytes = 0;
                self.tags.entries.clear();
                self.links.entries.clear();
                self.namespaces.entries.clear();
            }
        }
    }

    /// Drops the manifests, tags and links of the repositories `stale`
    /// picks, giving back the bytes of the manifests it drops.
    fn forget_repositories(&mut self, stale: impl Fn(&RepositoryName) -> bool) {
        let mut freed = 0;
        self.manifests.entries.retain(|(r, _), (m, _)| {
            let keep = !stale(r);
            if !keep {
                freed += m.bytes.len();
            }
            keep
        });
        self.manifest_bytes = self.manifest_bytes.saturating_sub(freed);
        self.tags.retain(|(r, _)| !stale(r));
        self.links.retain(|(r, _)| !stale(r));
    }
}

fn in_namespace(repo: &RepositoryName, ns: &Namespace) -> bool {
    repo.namespace() == ns.as_str()
}
