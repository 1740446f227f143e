//! Retention: removing the manifests a namespace policy no longer keeps
//! ([`apply_retention`], run by [`crate::collect_garbage`] before it sweeps
//! blobs).
//!
//! # The rules
//! Per repository of a namespace whose policy sets `keep_tag_revisions` or
//! `prune_untagged_after` (`keep_younger_than` only keeps):
//!
//! - A manifest a tag points at now is always kept.
//! - `keep_tag_revisions: N` keeps the N most recent distinct images of each
//!   live tag's history (the current one counts); an image further back in
//!   a live tag's history, or in the history of a deleted tag, goes.
//! - `keep_younger_than` keeps every manifest pushed more recently than
//!   that, whatever the other rules say.
//! - `prune_untagged_after` removes a manifest no tag has pointed at for that
//!   long (counted from when the last tag moved away from it, was deleted,
//!   or from its last push).
//! - An index keeps its children, and a subject its referrers (signatures,
//!   SBOMs): they go when every manifest of the repository holding them
//!   goes, and they never keep it alive.
//!
//! Tag history is never rewritten: entries pointing at a removed manifest
//! stay. Blobs freed by removed manifests go in the same garbage collection.
//!
//! # Running online
//! A run reads a repository in pages (no long transaction), plans, then
//! deletes each manifest with
//! [`MetadataStore::delete_unreferenced_manifest`]: one short transaction
//! that re-checks that no tag, index or subject keeps it and that no push
//! named it since the run started. So a tag moved, an index pushed or an
//! image pushed again while the run decides wins; the run counts it as
//! raced and keeps it.

mod plan;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::time::SystemTime;

use registry_core::{Digest, RepositoryName, Tag};

use crate::error::Result;
use crate::metadata::{ManifestNode, MetadataStore, TagEvent};
use crate::policy::PolicyDuration;

/// Rows read per store call while loading a repository.
const PAGE: usize = 1000;

/// Why retention removes a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemovalReason {
    /// Further back in a live tag's history than `keep_tag_revisions` keeps.
    OldRevision {
        /// The tag (the first one found, if several).
        tag: Tag,
        /// Its position among the tag's distinct images, 1 being the current.
        revision: usize,
        /// The policy's `keep_tag_revisions`.
        keep: u32,
    },
    /// Only in the history of a deleted tag (`keep_tag_revisions` keeps
    /// revisions of live tags only).
    DeletedTag {
        /// The deleted tag.
        tag: Tag,
    },
    /// No tag has pointed at it for longer than `prune_untagged_after`.
    Untagged {
        /// Since when (a tag moving away, its deletion, or the last push).
        since: SystemTime,
        /// The policy's `prune_untagged_after`.
        after: PolicyDuration,
    },
    /// A child of an index that is removed too.
    ChildOf {
        /// The index.
        index: Digest,
    },
    /// A referrer of a subject that is removed too.
    ReferrerOf {
        /// The subject.
        subject: Digest,
    },
}

impl fmt::Display for RemovalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RemovalReason::OldRevision {
                tag,
                revision,
                keep,
            } => write!(
                f,
                "revision {revision} of tag {tag} (keep_tag_revisions {keep})"
            ),
            RemovalReason::DeletedTag { tag } => {
                write!(f, "only in the history of deleted tag {tag}")
            }
            RemovalReason::Untagged { since, after } => {
                let days = SystemTime::now()
                    .duration_since(*since)
                    .map_or(0, |d| d.as_secs() / 86_400);
                write!(f, "untagged for {days} days (prune_untagged_after {after})")
            }
            RemovalReason::ChildOf { index } => write!(f, "child of removed index {index}"),
            RemovalReason::ReferrerOf { subject } => {
                write!(f, "referrer of removed manifest {subject}")
            }
        }
    }
}

/// A manifest retention removed (or, in a dry run, would remove).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemovedManifest {
    /// Its repository.
    pub repository: RepositoryName,
    /// Its digest.
    pub digest: Digest,
    /// Why.
    pub reason: RemovalReason,
}

/// What one retention run found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Repositories read (those of namespaces with retention rules).
    pub repositories_scanned: u64,
    /// Manifests read.
    pub manifests_scanned: u64,
    /// Manifests removed (or that a dry run would remove).
    pub manifests_removed: u64,
    /// Manifests planned for removal that a tag, an index or a push took
    /// while the run decided: kept.
    pub manifests_raced: u64,
    /// The first [`RetentionReport::MAX_LISTED`] removed manifests, with
    /// their reasons; the rest are counted in `removed_unlisted` (the log
    /// names every one).
    pub removed: Vec<RemovedManifest>,
    /// Removed manifests not listed in `removed`.
    pub removed_unlisted: u64,
    /// How many of the removed manifests reference each blob: garbage
    /// collection's dry run counts a blob freed when every manifest
    /// referencing it is among them.
    pub(crate) released_blobs: HashMap<Digest, u64>,
}

impl RetentionReport {
    /// Most manifests [`RetentionReport::removed`] lists.
    pub const MAX_LISTED: usize = 256;

    fn record(&mut self, repository: &RepositoryName, node: &ManifestNode, reason: RemovalReason) {
        tracing::info!(target: "gc", repository = %repository, digest = %node.digest,
            reason = %reason, "retention removed manifest");
        self.manifests_removed += 1;
        for blob in &node.blobs {
            *self.released_blobs.entry(blob.clone()).or_default() += 1;
        }
        if self.removed.len() < Self::MAX_LISTED {
            self.removed.push(RemovedManifest {
                repository: repository.clone(),
                digest: node.digest.clone(),
                reason,
            });
        } else {
            self.removed_unlisted += 1;
        }
    }
}

/// Reads a whole repository: its manifests and every tag event.
async fn load(
    metadata: &dyn MetadataStore,
    repository: &RepositoryName,
) -> Result<(Vec<ManifestNode>, Vec<(Tag, TagEvent)>)> {
    let mut nodes: Vec<ManifestNode> = Vec::new();
    loop {
        let last = nodes.last().map(|n| n.digest.clone());
        let page = metadata
            .manifest_nodes(repository, last.as_ref(), PAGE)
            .await?;
        let done = page.len() < PAGE;
        nodes.extend(page);
        if done {
            break;
        }
    }
    let mut events: Vec<(Tag, TagEvent)> = Vec::new();
    loop {
        let after = events.last().map(|(t, e)| (t.clone(), e.seq));
        let page = metadata
            .tag_events(repository, after.as_ref().map(|(t, s)| (t, *s)), PAGE)
            .await?;
        let done = page.len() < PAGE;
        events.extend(page);
        if done {
            break;
        }
    }
    Ok((nodes, events))
}

/// Applies every namespace's retention rules (see the module
/// documentation). With `dry_run` nothing changes and the report lists what
/// a run would remove.
pub async fn apply_retention(
    metadata: &dyn MetadataStore,
    dry_run: bool,
) -> Result<RetentionReport> {
    let started = SystemTime::now();
    let mut report = RetentionReport::default();
    for namespace in metadata.list_namespaces().await? {
        let policy = match metadata.namespace_policy(&namespace).await {
            Ok(policy) => policy,
            // Deleted since the listing.
            Err(crate::StorageError::NotFound { .. }) => continue,
            Err(e) => return Err(e),
        };
        let Some(rules) = plan::Rules::of(&policy) else {
            continue;
        };
        let mut last: Option<String> = None;
        loop {
            let page = metadata
                .list_repositories(Some(&namespace), last.as_deref(), PAGE)
                .await?;
            for repository in &page {
                let (nodes, events) = load(metadata, repository).await?;
                report.repositories_scanned += 1;
                report.manifests_scanned += nodes.len() as u64;
                let by_digest: HashMap<&Digest, &ManifestNode> =
                    nodes.iter().map(|n| (&n.digest, n)).collect();
                for (digest, reason) in plan::plan(rules, &nodes, &events, started) {
                    let node = by_digest[&digest];
                    if dry_run
                        || metadata
                            .delete_unreferenced_manifest(repository, &digest, started)
                            .await?
                    {
                        report.record(repository, node, reason);
                    } else {
                        report.manifests_raced += 1;
                    }
                }
            }
            if page.len() < PAGE {
                break;
            }
            last = page.last().map(|r| r.as_str().to_owned());
        }
    }
    Ok(report)
}
