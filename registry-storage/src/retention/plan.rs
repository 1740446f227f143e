//! Deciding, from a repository's manifests and tag history alone, which
//! manifests a namespace policy's retention rules remove and why. Pure: no
//! store, no clock (the caller passes `now`).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

use registry_core::{Digest, Tag};

use super::RemovalReason;
use crate::metadata::{ManifestNode, TagEvent};
use crate::policy::{NamespacePolicy, PolicyDuration};

/// The retention rules of a policy, when it has any.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    keep_tag_revisions: Option<u32>,
    keep_younger_than: Option<PolicyDuration>,
    prune_untagged_after: Option<PolicyDuration>,
}

impl Rules {
    /// The policy's retention rules; `None` when it sets none (retention
    /// then keeps everything and need not read the repository).
    pub(crate) fn of(policy: &NamespacePolicy) -> Option<Rules> {
        let rules = Rules {
            keep_tag_revisions: policy.keep_tag_revisions,
            keep_younger_than: policy.keep_younger_than,
            prune_untagged_after: policy.prune_untagged_after,
        };
        // keep_younger_than alone removes nothing: it only keeps.
        (rules.keep_tag_revisions.is_some() || rules.prune_untagged_after.is_some())
            .then_some(rules)
    }
}

/// What the tag history says about the manifests.
#[derive(Default)]
struct TagFacts {
    /// Where a tag points now.
    current: HashSet<Digest>,
    /// Among the `keep_tag_revisions` most recent images of a live tag.
    recent: HashSet<Digest>,
    /// In a tag's history beyond what `keep_tag_revisions` keeps (or in a
    /// deleted tag's): the first such place seen.
    old: HashMap<Digest, RemovalReason>,
    /// When a tag last moved away from it (or was deleted).
    untagged_since: HashMap<Digest, SystemTime>,
}

/// Reads every tag's history (`events`: grouped by tag, oldest first).
fn tag_facts(events: &[(Tag, TagEvent)], keep: Option<u32>) -> TagFacts {
    let mut facts = TagFacts::default();
    let mut start = 0;
    while start < events.len() {
        let tag = &events[start].0;
        let end = start + events[start..].iter().take_while(|(t, _)| t == tag).count();
        let history = &events[start..end];
        start = end;
        let live = history.last().is_some_and(|(_, e)| e.digest.is_some());
        let mut distinct: Vec<&Digest> = Vec::new();
        // Newest first; `newer` is the event that moved the tag off the
        // image of the event being read.
        let mut newer: Option<&TagEvent> = None;
        for (_, event) in history.iter().rev() {
            if let Some(digest) = &event.digest {
                match newer {
                    None => {
                        facts.current.insert(digest.clone());
                    }
                    Some(moved) => {
                        let since = facts
                            .untagged_since
                            .entry(digest.clone())
                            .or_insert(moved.at);
                        *since = (*since).max(moved.at);
                    }
                }
                if !distinct.contains(&digest) {
                    distinct.push(digest);
                    if let Some(keep) = keep {
                        let revision = distinct.len();
                        if live && revision <= keep as usize {
                            facts.recent.insert(digest.clone());
                        } else {
                            let reason = if live {
                                RemovalReason::OldRevision {
                                    tag: tag.clone(),
                                    revision,
                                    keep,
                                }
                            } else {
                                RemovalReason::DeletedTag { tag: tag.clone() }
                            };
                            facts.old.entry(digest.clone()).or_insert(reason);
                        }
                    }
                }
            }
            newer = Some(event);
        }
    }
    facts
}

fn older_than(at: SystemTime, now: SystemTime, age: Duration) -> bool {
    now.duration_since(at).is_ok_and(|elapsed| elapsed >= age)
}

/// The verdict on one manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    Keep,
    Remove(RemovalReason),
}

/// The removals retention makes in one repository, owners before what
/// depends on them (an index before its children, a subject before its
/// referrers): the order in which conditional deletes succeed.
pub(crate) fn plan(
    rules: Rules,
    nodes: &[ManifestNode],
    events: &[(Tag, TagEvent)],
    now: SystemTime,
) -> Vec<(Digest, RemovalReason)> {
    let facts = tag_facts(events, rules.keep_tag_revisions);
    let index: HashMap<&Digest, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (&n.digest, i))
        .collect();
    // Owners of each manifest present in the repository: indexes listing
    // it, and its subject.
    let mut owners: Vec<Vec<(usize, bool)>> = vec![Vec::new(); nodes.len()];
    for (i, node) in nodes.iter().enumerate() {
        for child in &node.children {
            if let Some(&c) = index.get(child) {
                owners[c].push((i, true));
            }
        }
        if let Some(&s) = node.subject.as_ref().and_then(|s| index.get(s)) {
            owners[i].push((s, false));
        }
    }
    let own = |node: &ManifestNode| -> Verdict {
        if facts.recent.contains(&node.digest) {
            return Verdict::Keep;
        }
        if let Some(young) = rules.keep_younger_than {
            if !older_than(node.pushed, now, young.get()) {
                return Verdict::Keep;
            }
        }
        if let Some(reason) = facts.old.get(&node.digest) {
            return Verdict::Remove(reason.clone());
        }
        if let Some(after) = rules.prune_untagged_after {
            let since = facts
                .untagged_since
                .get(&node.digest)
                .map_or(node.pushed, |s| (*s).max(node.pushed));
            if older_than(since, now, after.get()) {
                return Verdict::Remove(RemovalReason::Untagged { since, after });
            }
        }
        Verdict::Keep
    };

    // Depth-first over owners (the graph is acyclic: a manifest names the
    // digests of its children and subject, so none can name it back), with
    // an explicit stack: chains of referrers can be long.
    let mut verdicts: Vec<Option<Verdict>> = vec![None; nodes.len()];
    let mut removals = Vec::new();
    for root in 0..nodes.len() {
        let mut stack = vec![root];
        while let Some(&i) = stack.last() {
            if verdicts[i].is_some() {
                stack.pop();
                continue;
            }
            let pending: Vec<usize> = owners[i]
                .iter()
                .map(|(o, _)| *o)
                .filter(|o| verdicts[*o].is_none())
                .collect();
            if !pending.is_empty() {
                stack.extend(pending);
                continue;
            }
            stack.pop();
            let node = &nodes[i];
            let verdict = if facts.current.contains(&node.digest) {
                Verdict::Keep
            } else if owners[i].is_empty() {
                own(node)
            } else if owners[i]
                .iter()
                .any(|(o, _)| verdicts[*o] == Some(Verdict::Keep))
                || facts.recent.contains(&node.digest)
            {
                // An index keeps its children, a subject its referrers; a
                // referrer never keeps its subject.
                Verdict::Keep
            } else {
                let (o, child) = owners[i][0];
                let owner = nodes[o].digest.clone();
                Verdict::Remove(if child {
                    RemovalReason::ChildOf { index: owner }
                } else {
                    RemovalReason::ReferrerOf { subject: owner }
                })
            };
            if let Verdict::Remove(reason) = &verdict {
                removals.push((node.digest.clone(), reason.clone()));
            }
            verdicts[i] = Some(verdict);
        }
    }
    removals
}
