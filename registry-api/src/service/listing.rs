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
    /// `last` (an opaque cursor, any string, as in Distribution). A caller
    /// with a registry token needs `registry:catalog:*` in it.
    pub async fn catalog(
        &self,
        caller: &Caller,
        last: Option<&str>,
        n: Option<usize>,
    ) -> RegistryResult<Paged<RepositoryName>> {
        // A registry token lists only with `registry:catalog:*` (always
        // granted when asked for): a token narrowed to some repositories,
        // handed to a tool, does not reveal the others.
        if caller
            .token()
            .is_some_and(|claims| !claims.allows_catalog())
        {
            return Err(RegistryError::Unauthenticated {
                scope: Some("registry:catalog:*".to_owned()),
                insufficient_scope: true,
            });
        }
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
    /// optionally only those of `artifact_type` (needs pull). A page also
    /// ends once its descriptors reach about 4 MiB (one always fits), since
    /// each carries its manifest's annotations, which may be megabytes: the
    /// rest follow on the next page.
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
        let mut found: Vec<Referrer> = Vec::new();
        let mut bytes: usize = 0;
        let mut cursor = last.cloned();
        // Read in batches sized by the descriptors seen so far, so that
        // about a page's bytes and one batch are held at most.
        while found.len() <= n {
            let batch_size = match bytes.checked_div(found.len()) {
                Some(average) => ((REFERRERS_PAGE_BYTES - bytes.min(REFERRERS_PAGE_BYTES))
                    / average.max(1))
                .clamp(1, REFERRERS_BATCH),
                None => REFERRERS_FIRST_BATCH,
            };
            let want = (n + 1 - found.len()).min(batch_size);
            let batch = self
                .metadata()
                .referrers(repo, subject, artifact_type, cursor.as_ref(), want)
                .await?;
            let exhausted = batch.len() < want;
            for referrer in batch {
                let size = descriptor_bytes(&referrer);
                if !found.is_empty() && found.len() < n && bytes + size > REFERRERS_PAGE_BYTES {
                    // Full by bytes: the page ends here, more follow.
                    let next = found.last().map(|r| r.digest.to_string());
                    return Ok(Paged {
                        items: found,
                        next,
                        n,
                    });
                }
                bytes += size;
                found.push(referrer);
            }
            match found.last() {
                Some(r) if !exhausted => cursor = Some(r.digest.clone()),
                _ => break,
            }
        }
        Ok(Paged::of(found, n, |r| r.digest.to_string()))
    }
}

/// About how many bytes of descriptors a referrers page holds at most.
pub(crate) const REFERRERS_PAGE_BYTES: usize = 4 * 1024 * 1024;

/// How many referrers a page reads from the store at a time: at first, and
/// at most once their sizes are known.
const REFERRERS_FIRST_BATCH: usize = 4;
const REFERRERS_BATCH: usize = 64;

/// About the bytes of `referrer`'s descriptor in JSON: its strings and a
/// fixed allowance for the rest (digest, size, field names).
fn descriptor_bytes(referrer: &Referrer) -> usize {
    let annotations: usize = referrer
        .annotations
        .iter()
        .map(|(k, v)| k.len() + v.len() + 8)
        .sum();
    annotations
        + referrer.media_type.len()
        + referrer.artifact_type.as_ref().map_or(0, String::len)
        + 200
}
