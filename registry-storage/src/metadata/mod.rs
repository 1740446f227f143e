//! The [`MetadataStore`]: repositories, manifests, tags and their history,
//! blob links, referrers and namespaces.

use std::collections::HashSet;
use std::fmt::Debug;
use std::time::SystemTime;

use async_trait::async_trait;
use registry_core::{Digest, Namespace, Reference, RepositoryName, Tag};

use crate::error::{Result, StorageError};
use crate::events::NewEvent;
use crate::policy::NamespacePolicy;
use crate::usage::{NamespaceUsage, RepositoryUsage, UsageRecount, UsageSummary};

mod records;

pub(crate) use records::push_events;
pub use records::{
    BlobRecord, BlobState, BlobTicket, LinkedBlob, ManifestNode, MovedTag, NewManifest, Referrer,
    RepositoryInfo, StoredManifest, TagEvent, TagRecord,
};

/// Registry metadata.
///
/// # Contract
/// - [`put_manifest`](MetadataStore::put_manifest) is one transaction: it
///   creates the repository if needed, stores the manifest (a second put of
///   the same digest keeps the first bytes and creation time), links
///   `blobs` to the repository, indexes it under its subject, and moves
///   every tag in `tags`, recording a [`TagEvent`] for each tag whose target
///   changed. Nothing of it is visible until all of it is.
/// - Tag history is newest first and never forgets: a deletion is an event too.
/// - Listings are in lexical (byte-wise) order; `last` is exclusive and
///   `limit` caps the count, so the work of one call is bounded by `limit`.
///   A `last` need not name anything that exists.
/// - [`delete_manifest`](MetadataStore::delete_manifest) removes the
///   manifest from that repository, deletes (and records) the tags that
///   pointed at it and removes it from the referrers index. Missing is `NotFound`.
/// - `put_manifest` fails with [`StorageError::ManifestMissing`], storing
///   nothing, when one of `children` is not a manifest of the repository
///   (checked inside the transaction, so a retention run deleting the
///   child meanwhile cannot leave an index without it).
/// - [`delete_unreferenced_manifests`](MetadataStore::delete_unreferenced_manifests)
///   is retention's delete: one short transaction that re-checks, for each
///   manifest in turn, that nothing keeps it, so a concurrent tag, index or
///   push wins.
/// - A blob is *linked* to a repository when uploaded or mounted into it or
///   referenced by one of its manifests; only linked blobs may be served
///   from that repository.
/// - Garbage collection (see [`crate::gc`]): every link and every
///   `put_manifest` moves each of its blobs' [`BlobRecord::generation`] and
///   `touched` *in its own transaction*, and fails with
///   [`StorageError::BlobDeleted`] (changing nothing) when a blob is
///   [`BlobState::Deleting`] (`put_manifest` also when it is
///   [`BlobState::Deleted`]; `link_blob_with` also when the blob's epoch
///   moved since its ticket). [`begin_blob_delete`](Self::begin_blob_delete)
///   is one transaction that checks "no manifest references it and its
///   generation is the one the collector read" before it marks the blob
///   `Deleting`, moves its epoch and removes its links. So whichever
///   commits first, a manifest commit and a collector never both succeed
///   on one blob.
/// - Usage (see [`crate::usage`]): every change of links (`link_blob`,
///   `link_blob_with`, `put_manifest`, `unlink_blob`, `forget_blob`,
///   `begin_blob_delete`, `delete_repository`, `delete_namespace`) updates
///   the namespace's byte and blob counters in its own transaction, so
///   [`namespace_usage`](Self::namespace_usage) always equals what
///   [`recount_usage`](Self::recount_usage) rebuilds from the links. A
///   blob's size is the one recorded for its digest (by a sized ticket or
///   [`record_blob_sizes`](Self::record_blob_sizes)), 0 while unknown.
/// - Quotas: a link or `put_manifest` that brings blobs new to a
///   namespace whose policy has a `quota_bytes`, and would take its bytes
///   past it, fails with [`StorageError::QuotaExceeded`] and records
///   nothing. The check shares the link's transaction, so concurrent
///   pushes cannot together overshoot. Links of blobs the namespace
///   already holds are never refused, even over the quota.
#[async_trait]
pub trait MetadataStore: Send + Sync + Debug + 'static {
    /// Creates a namespace; `AlreadyExists` if it does.
    async fn create_namespace(&self, namespace: &Namespace) -> Result<()> {
        self.create_namespace_raising(namespace, Vec::new()).await
    }
    /// [`create_namespace`](Self::create_namespace), recording `events` in
    /// the same transaction (see [`crate::events`]).
    async fn create_namespace_raising(
        &self,
        namespace: &Namespace,
        events: Vec<NewEvent>,
    ) -> Result<()>;
    /// Whether a namespace exists.
    async fn namespace_exists(&self, namespace: &Namespace) -> Result<bool>;
    /// All namespaces, sorted.
    async fn list_namespaces(&self) -> Result<Vec<Namespace>>;
    /// Deletes a namespace and the metadata of every repository in it
    /// (their blobs become garbage), and its policy. Missing is `NotFound`.
    async fn delete_namespace(&self, namespace: &Namespace) -> Result<()> {
        self.delete_namespace_raising(namespace, Vec::new()).await
    }
    /// [`delete_namespace`](Self::delete_namespace), recording `events` in
    /// the same transaction (see [`crate::events`]). Stores that keep
    /// webhooks retire the namespace's own in that transaction: they still
    /// receive `events`, then no later event (a namespace created again
    /// under the name starts without them), and they are removed once
    /// nothing is pending for them.
    async fn delete_namespace_raising(
        &self,
        namespace: &Namespace,
        events: Vec<NewEvent>,
    ) -> Result<()>;
    /// A namespace's policy (the default one until set). Missing namespace
    /// is `NotFound`.
    async fn namespace_policy(&self, namespace: &Namespace) -> Result<NamespacePolicy>;
    /// Replaces a namespace's policy. Missing namespace is `NotFound`.
    async fn set_namespace_policy(
        &self,
        namespace: &Namespace,
        policy: &NamespacePolicy,
    ) -> Result<()> {
        self.set_namespace_policy_raising(namespace, policy, Vec::new())
            .await
    }
    /// [`set_namespace_policy`](Self::set_namespace_policy), recording
    /// `events` in the same transaction.
    async fn set_namespace_policy_raising(
        &self,
        namespace: &Namespace,
        policy: &NamespacePolicy,
        events: Vec<NewEvent>,
    ) -> Result<()>;

    /// A repository, or `None`.
    async fn repository(&self, name: &RepositoryName) -> Result<Option<RepositoryInfo>>;
    /// Repository names after `last`, at most `limit`, optionally within one
    /// namespace. `last` is an opaque cursor compared byte-wise: any string,
    /// not only a repository name.
    async fn list_repositories(
        &self,
        namespace: Option<&Namespace>,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RepositoryName>>;
    /// Deletes a repository's metadata. Missing is `NotFound`.
    async fn delete_repository(&self, name: &RepositoryName) -> Result<()> {
        self.delete_repository_raising(name, Vec::new()).await
    }
    /// [`delete_repository`](Self::delete_repository), recording `events`
    /// in the same transaction.
    async fn delete_repository_raising(
        &self,
        name: &RepositoryName,
        events: Vec<NewEvent>,
    ) -> Result<()>;

    /// Stores a manifest and moves its tags (see the contract); returns the
    /// tags it moved from another manifest (not those it created).
    async fn put_manifest(&self, manifest: NewManifest) -> Result<Vec<MovedTag>>;
    /// A manifest by tag or digest, or `None`.
    async fn get_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<StoredManifest>>;
    /// Deletes a manifest from a repository (see the contract).
    async fn delete_manifest(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        actor: &str,
    ) -> Result<()> {
        self.delete_manifest_raising(repository, digest, actor, Vec::new())
            .await
    }
    /// [`delete_manifest`](Self::delete_manifest), recording `events` in
    /// the same transaction.
    async fn delete_manifest_raising(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        actor: &str,
        events: Vec<NewEvent>,
    ) -> Result<()>;
    /// Which of `digests` are manifests of the repository, in order. The
    /// default asks [`get_manifest`](Self::get_manifest) for each; backends
    /// answer in one lookup.
    async fn manifests_present(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
    ) -> Result<Vec<bool>> {
        let mut present = Vec::with_capacity(digests.len());
        for digest in digests {
            let reference = Reference::Digest(digest.clone());
            present.push(self.get_manifest(repository, &reference).await?.is_some());
        }
        Ok(present)
    }

    /// Waits until no other process prunes over this store and holds that
    /// until the returned guard is dropped (a database lock: PostgreSQL's
    /// advisory lock). Pruning is safe without it (every delete is decided
    /// by a transaction); it saves replicas sweeping the same blobs at
    /// once. Stores used by one process keep the default, which returns at
    /// once.
    async fn lock_prune(&self) -> Result<PruneGuard> {
        Ok(PruneGuard::none())
    }

    /// Drops what this store caches about `change`, a write another
    /// process committed (see [`crate::changes`]). Stores without a cache
    /// keep the default, which does nothing; wrappers pass it on.
    fn invalidate(&self, _change: &crate::Change) {}

    /// Repositories holding a manifest with this digest, sorted.
    async fn find_manifest(&self, digest: &Digest) -> Result<Vec<RepositoryName>>;

    /// The manifests of a repository sorted by digest: those after `last`,
    /// at most `limit` (retention reads a repository page by page). Empty
    /// for a missing repository.
    async fn manifest_nodes(
        &self,
        repository: &RepositoryName,
        last: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<ManifestNode>>;
    /// Deletes manifests retention decided to remove, in one transaction,
    /// each in turn (so an index before its children works) and only if
    /// nothing keeps it at that point: no tag points at it, no manifest of
    /// the repository lists it as a child, its subject (if any) is not a
    /// manifest of the repository, and no push named it at or after
    /// `planned` (a client pushing it again meanwhile was acknowledged).
    /// Returns, in order, whether each was deleted; a missing manifest is
    /// `false`. Tag history is left as it is (entries then point at a
    /// pruned image). Callers keep batches small: the transaction holds the
    /// write lock.
    async fn delete_unreferenced_manifests(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
        planned: SystemTime,
    ) -> Result<Vec<bool>>;
    /// How many manifests (of any repository) reference a blob as config
    /// or layer.
    async fn blob_reference_count(&self, digest: &Digest) -> Result<u64>;
    /// Every tag event of a repository, deleted tags' included, ordered by
    /// tag then oldest first: those after the event `after` (a tag and a
    /// [`TagEvent::seq`]), at most `limit`.
    async fn tag_events(
        &self,
        repository: &RepositoryName,
        after: Option<(&Tag, u64)>,
        limit: usize,
    ) -> Result<Vec<(Tag, TagEvent)>>;

    /// Tags after `last`, at most `limit`.
    async fn list_tags(
        &self,
        repository: &RepositoryName,
        last: Option<&Tag>,
        limit: usize,
    ) -> Result<Vec<Tag>>;
    /// Tags of a repository with their targets, sorted by tag: those after
    /// `last`, at most `limit`.
    async fn tags(
        &self,
        repository: &RepositoryName,
        last: Option<&Tag>,
        limit: usize,
    ) -> Result<Vec<TagRecord>>;
    /// A tag's history, newest first: the events older than the one whose
    /// [`TagEvent::seq`] is `before` (all when `None`), at most `limit`.
    /// Empty when the tag never existed.
    async fn tag_history(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<TagEvent>>;
    /// Deletes a tag (recording the event). Missing is `NotFound`.
    async fn delete_tag(&self, repository: &RepositoryName, tag: &Tag, actor: &str) -> Result<()> {
        self.delete_tag_raising(repository, tag, actor, Vec::new())
            .await
    }
    /// [`delete_tag`](Self::delete_tag), recording `events` in the same
    /// transaction.
    async fn delete_tag_raising(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        actor: &str,
        events: Vec<NewEvent>,
    ) -> Result<()>;

    /// Links a blob to a repository, creating the repository if needed. The
    /// caller asserts that the bytes are stored now (a
    /// [`BlobState::Deleted`] blob becomes live); `BlobDeleted` while a
    /// collector is deleting it. Request paths use
    /// [`link_blob_with`](Self::link_blob_with) instead.
    async fn link_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<()>;
    /// A blob's link to a repository with what is known of the blob (its
    /// verified size), or `None` when it is not linked: what a `HEAD` of the
    /// blob needs, in one round trip.
    async fn linked_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<LinkedBlob>>;
    /// Whether a blob is linked to a repository.
    async fn blob_linked(&self, repository: &RepositoryName, digest: &Digest) -> Result<bool> {
        Ok(self.linked_blob(repository, digest).await?.is_some())
    }
    /// Removes a blob's link to a repository. Missing is `NotFound`.
    async fn unlink_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<()>;

    /// Manifests of a repository whose subject is `subject`, optionally only
    /// those of one artifact type, sorted by digest: those after `last`, at
    /// most `limit`.
    async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        last: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<Referrer>>;

    /// Every blob some manifest references (the mark set of garbage collection).
    async fn referenced_blobs(&self) -> Result<HashSet<Digest>>;
    /// Removes every link to a blob (before the blob itself is swept).
    async fn forget_blob(&self, digest: &Digest) -> Result<()>;

    /// A blob's garbage-collection record ([`BlobRecord::UNKNOWN`] if none).
    async fn blob_record(&self, digest: &Digest) -> Result<BlobRecord>;

    /// A ticket to take before storing or finding a blob's bytes (see
    /// [`BlobTicket`]); `BlobDeleted` while a collector is deleting it.
    async fn blob_ticket(&self, digest: &Digest) -> Result<BlobTicket> {
        let record = self.blob_record(digest).await?;
        if record.state == BlobState::Deleting {
            return Err(StorageError::BlobDeleted {
                digest: digest.clone(),
            });
        }
        Ok(BlobTicket::new(digest.clone(), record.epoch))
    }

    /// Links the ticket's blob to a repository (creating the repository if
    /// needed) if no collector started deleting it since the ticket was
    /// taken; `BlobDeleted` otherwise, recording nothing.
    async fn link_blob_with(&self, repository: &RepositoryName, ticket: &BlobTicket) -> Result<()>;

    /// A collector's mark, in one transaction: if no manifest references the
    /// blob, it is not already `Deleting` and its generation is still
    /// `generation`, marks it `Deleting`, moves its epoch and generation and
    /// removes every link to it, and returns `true`. Otherwise changes
    /// nothing and returns `false`.
    async fn begin_blob_delete(&self, digest: &Digest, generation: u64) -> Result<bool>;

    /// Ends a deletion [`begin_blob_delete`](Self::begin_blob_delete)
    /// started, once the bytes are gone: `Deleting` becomes `Deleted`. A blob
    /// in another state is left as it is.
    async fn finish_blob_delete(&self, digest: &Digest) -> Result<()>;

    /// Blobs left `Deleting` since before `before` (by a collector that
    /// crashed between its mark and the end of the deletion), for the next
    /// collector to finish.
    async fn stale_blob_deletes(&self, before: SystemTime) -> Result<Vec<Digest>>;

    /// Records blobs' verified sizes. A digest's size never changes: a size
    /// already recorded stays. A blob linked while its size was unknown
    /// starts counting with it now, in the same transaction.
    async fn record_blob_sizes(&self, sizes: &[(Digest, u64)]) -> Result<()>;

    /// Blobs linked to the namespace's repositories whose size is unknown,
    /// sorted, those after `last`, at most `limit` (a recount stats them).
    async fn unsized_blobs(
        &self,
        namespace: &Namespace,
        last: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<Digest>>;

    /// A namespace's usage (zero when it holds nothing or does not exist).
    async fn namespace_usage(&self, namespace: &Namespace) -> Result<NamespaceUsage>;

    /// A repository's usage (zero when it does not exist).
    async fn repository_usage(&self, repository: &RepositoryName) -> Result<RepositoryUsage>;

    /// The `limit` namespaces storing the most bytes, and the rest summed.
    async fn usage_summary(&self, limit: usize) -> Result<UsageSummary>;

    /// Rebuilds a namespace's byte and blob counters from its links in one
    /// transaction, and returns them before and after.
    async fn recount_usage(&self, namespace: &Namespace) -> Result<UsageRecount>;
}

/// Held while a prune runs (see [`MetadataStore::lock_prune`]); dropping it
/// releases the lock.
pub struct PruneGuard(Option<Box<dyn Send + Sync>>);

impl PruneGuard {
    /// A guard that holds nothing (stores without a cross-process lock).
    pub fn none() -> Self {
        PruneGuard(None)
    }

    /// A guard holding `held` (a database transaction, a connection)
    /// until it is dropped.
    pub fn holding(held: impl Send + Sync + 'static) -> Self {
        PruneGuard(Some(Box::new(held)))
    }
}

impl Debug for PruneGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "PruneGuard(held)"
        } else {
            "PruneGuard(none)"
        })
    }
}
