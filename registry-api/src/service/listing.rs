//! Listings: tags, the catalog (filtered to what the caller may pull) and
//! referrers, each a page at a time.

use registry_auth::{Action, NamespaceFilter, Resource};
use registry_core::{Digest, Namespace, RepositoryName, Tag};
use registry_storage::{Referrer, StorageError};

use super::{Caller, Registry, RegistryError, RegistryResult};

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Paged<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// The `last` to ask for the next page with; `None` on the last page.
    pub next: Option<String>,
    /// The page size used (the request's, capped by `Limits::max_page`).
    pub n: usize,
}

impl<T> Paged<T> {
    /// `found` holds up to `n + 1` items: a page of `n`, and whether more
    /// follow. `key` gives the cursor of an item.
    pub(crate) fn of(mut found: Vec<T>, n: usize, key: impl Fn(&T) -> String) -> Self {
        let more = found.len() > n;
        found.truncate(n);
        let next = found.last().filter(|_| more && n > 0).map(key);
        Paged {
            items: found,
            next,
            n,
        }
    }
}

impl Registry {
    /// The page size for a request asking for `n` (all the limit allows
    /// when `None`).
    pub(crate) fn page_size(&self, n: Option<usize>) -> usize {
        let max = self.limits().max_page;
        n.map_or(max, |n| n.min(max))
    }

    /// Tags of `repo` after `last`, sorted (needs pull).
    pub async fn list_tags(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        last: Option<&Tag>,
        n: Option<usize>,
    ) -> RegistryResult<Paged<Tag>> {
        self.authorize(caller, Action::Pull, &Resource::Repository(repo))?;
        let n = self.page_size(n);
        if self.metadata().repository(repo).await?.is_none() {
            return Err(RegistryError::RepositoryUnknown(repo.clone()));
        }
        let tags = self
            .metadata()
            .list_tags(repo, last, n.saturating_add(1))
            .await?;
        Ok(Paged::of(tags, n, Tag::to_string))
    }

    /// The repositories `caller` may pull from whose names sort after
    /// `last` (an opaque cursor, any string, as in Distribution).
    pub async fn catalog(
        &self,
        caller: &Caller,
        last: Option<&str>,
        n: Option<usize>,
    ) -> RegistryResult<Paged<RepositoryName>> {
        let n = self.page_size(n);
        let visible = self.visible_namespaces(caller);
        let names = self
            .visible_repositories(&visible, last, n.saturating_add(1))
            .await?;
        Ok(Paged::of(names, n, RepositoryName::to_string))
    }

    /// Up to `limit` repository names after the cursor `last` (any string,
    /// compared byte-wise) in the namespaces `filter` admits, in lexical
    /// order. The one listing behind the catalog and the Image API's
    /// repositories.
    ///
    /// For a set of namespaces the store is paged one namespace at a time,
    /// in the order their names sort: a namespace wholly before the cursor
    /// costs nothing, and listing stops as soon as the page is full, so the
    /// work is the page plus the namespaces passed, never the whole registry.
    pub(crate) async fn visible_repositories(
        &self,
        filter: &NamespaceFilter,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RepositoryName>, StorageError> {
        let namespaces = match filter {
            NamespaceFilter::All => {
                return self.metadata().list_repositories(None, last, limit).await
            }
            NamespaceFilter::Only(namespaces) => namespaces,
        };
        // A namespace's names all start with `ns/`, so namespaces ordered by
        // that prefix (not by bare name: `a-b/` sorts before `a/`) list their
        // repositories in global lexical order.
        let mut prefixes: Vec<(String, &Namespace)> =
            namespaces.iter().map(|ns| (format!("{ns}/"), ns)).collect();
        prefixes.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut names = Vec::new();
        for (prefix, ns) in &prefixes {
            if names.len() >= limit {
                break;
            }
            let after = match last {
                // The cursor is inside this namespace: continue after it.
                Some(last) if last.starts_with(prefix.as_str()) => Some(last),
                // The whole namespace sorts before the cursor.
                Some(last) if last > prefix.as_str() => continue,
                // The whole namespace sorts after the cursor.
                _ => None,
            };
            names.extend(
                self.metadata()
                    .list_repositories(Some(ns), after, limit - names.len())
                    .await?,
            );
        }
        Ok(names)
    }

    /// The manifests of `repo` whose subject is `subject`, by digest,
    /// optionally only those of `artifact_type` (needs pull).
    pub async fn referrers(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        last: Option<&Digest>,
        n: Option<usize>,
    ) -> RegistryResult<Paged<Referrer>> {
        self.authorize(caller, Action::Pull, &Resource::Repository(repo))?;
        let n = self.page_size(n);
        let found = self
            .metadata()
            .referrers(repo, subject, artifact_type, last, n.saturating_add(1))
            .await?;
        Ok(Paged::of(found, n, |r| r.digest.to_string()))
    }
}
