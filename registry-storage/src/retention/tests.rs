//! The retention rules, one by one, over hand-built repositories.

use std::time::{Duration, SystemTime};

use registry_core::{Digest, Tag};

use super::plan::{plan, Rules};
use super::RemovalReason;
use crate::metadata::{ManifestNode, TagEvent};
use crate::policy::NamespacePolicy;

const DAY: Duration = Duration::from_secs(86_400);

fn now() -> SystemTime {
    SystemTime::UNIX_EPOCH + 1000 * DAY
}

fn digest(name: &str) -> Digest {
    Digest::sha256_of(name.as_bytes())
}

/// A manifest pushed `age` days before [`now`].
fn node(name: &str, age: u64) -> ManifestNode {
    let at = now() - DAY * age as u32;
    ManifestNode {
        digest: digest(name),
        created: at,
        pushed: at,
        subject: None,
        children: Vec::new(),
        blobs: vec![digest(&format!("{name}-layer"))],
    }
}

fn index(name: &str, age: u64, children: &[&str]) -> ManifestNode {
    ManifestNode {
        children: children.iter().map(|c| digest(c)).collect(),
        ..node(name, age)
    }
}

fn referrer(name: &str, age: u64, subject: &str) -> ManifestNode {
    ManifestNode {
        subject: Some(digest(subject)),
        ..node(name, age)
    }
}

/// A tag's history from moves `(image or None for a deletion, age in days)`,
/// oldest first.
fn history(tag: &str, moves: &[(Option<&str>, u64)]) -> Vec<(Tag, TagEvent)> {
    moves
        .iter()
        .enumerate()
        .map(|(i, (image, age))| {
            (
                tag.parse().unwrap(),
                TagEvent {
                    seq: i as u64 + 1,
                    digest: image.map(digest),
                    at: now() - DAY * *age as u32,
                    actor: "test".into(),
                },
            )
        })
        .collect()
}

fn policy(json: &str) -> Rules {
    let policy: NamespacePolicy = serde_json::from_str(json).unwrap();
    Rules::of(&policy).expect("retention rules")
}

/// The names removed, in removal order.
fn removed(rules: Rules, nodes: &[ManifestNode], events: &[(Tag, TagEvent)]) -> Vec<Digest> {
    plan(rules, nodes, events, now())
        .into_iter()
        .map(|(d, _)| d)
        .collect()
}

#[test]
fn policies_without_removing_rules_plan_nothing() {
    for json in [
        r#"{}"#,
        r#"{"keep_younger_than":"7d"}"#,
        r#"{"quota_bytes":1}"#,
    ] {
        let policy: NamespacePolicy = serde_json::from_str(json).unwrap();
        assert!(Rules::of(&policy).is_none(), "{json}");
    }
}

#[test]
fn keep_tag_revisions_keeps_the_n_most_recent_images_of_each_tag() {
    let nodes = [node("a", 40), node("b", 30), node("c", 20), node("d", 10)];
    // latest: a, b, a (back again), c, d. Distinct newest first: d, c, a, b.
    let events = history(
        "latest",
        &[
            (Some("a"), 40),
            (Some("b"), 30),
            (Some("a"), 25),
            (Some("c"), 20),
            (Some("d"), 10),
        ],
    );
    let rules = policy(r#"{"keep_tag_revisions":3}"#);
    let plan = plan(rules, &nodes, &events, now());
    assert_eq!(
        plan,
        vec![(
            digest("b"),
            RemovalReason::OldRevision {
                tag: "latest".parse().unwrap(),
                revision: 4,
                keep: 3
            }
        )]
    );
    assert_eq!(
        plan[0].1.to_string(),
        "revision 4 of tag latest (keep_tag_revisions 3)"
    );
    // One revision: only the current image stays.
    let rules = policy(r#"{"keep_tag_revisions":1}"#);
    let mut gone = removed(rules, &nodes, &events);
    gone.sort();
    let mut expected = vec![digest("a"), digest("b"), digest("c")];
    expected.sort();
    assert_eq!(gone, expected);
}

#[test]
fn an_image_recent_in_one_tag_is_kept_though_old_in_another() {
    let nodes = [node("a", 30), node("b", 20), node("c", 10)];
    let mut events = history(
        "latest",
        &[(Some("a"), 30), (Some("b"), 20), (Some("c"), 10)],
    );
    events.extend(history("stable", &[(Some("c"), 15), (Some("a"), 5)]));
    let rules = policy(r#"{"keep_tag_revisions":1}"#);
    // a is stable's current image; c is latest's; b is old in latest.
    assert_eq!(removed(rules, &nodes, &events), vec![digest("b")]);
}

#[test]
fn keep_younger_than_overrides_the_removing_rules() {
    let nodes = [node("a", 40), node("b", 3), node("c", 1)];
    let events = history("latest", &[(Some("a"), 40), (Some("b"), 3), (Some("c"), 1)]);
    let rules = policy(r#"{"keep_tag_revisions":1,"keep_younger_than":"7d"}"#);
    assert_eq!(removed(rules, &nodes, &events), vec![digest("a")]);
}

#[test]
fn untagged_manifests_go_after_the_period_counted_from_the_last_untagging() {
    // a: pushed by digest long ago, never tagged. b: tagged until two days
    // ago. c: tagged until 20 days ago. d: current. e: tag deleted 20 days ago.
    let nodes = [
        node("a", 100),
        node("b", 100),
        node("c", 100),
        node("d", 2),
        node("e", 100),
    ];
    let mut events = history(
        "latest",
        &[(Some("c"), 100), (Some("b"), 20), (Some("d"), 2)],
    );
    events.extend(history("old", &[(Some("e"), 100), (None, 20)]));
    let rules = policy(r#"{"prune_untagged_after":"7d"}"#);
    let plan = plan(rules, &nodes, &events, now());
    let mut gone: Vec<Digest> = plan.iter().map(|(d, _)| d.clone()).collect();
    gone.sort();
    let mut expected = vec![digest("a"), digest("c"), digest("e")];
    expected.sort();
    assert_eq!(gone, expected);
    let (_, why) = plan.iter().find(|(d, _)| *d == digest("c")).unwrap();
    assert_eq!(
        *why,
        RemovalReason::Untagged {
            since: now() - 20 * DAY,
            after: "7d".parse().unwrap()
        }
    );
}

#[test]
fn a_push_of_the_same_image_again_restarts_the_untagged_period() {
    let mut again = node("a", 100);
    again.pushed = now() - DAY;
    let rules = policy(r#"{"prune_untagged_after":"7d"}"#);
    assert!(removed(rules, &[again], &[]).is_empty());
}

#[test]
fn keep_tag_revisions_removes_images_of_deleted_tags() {
    let nodes = [node("a", 30), node("b", 20)];
    let mut events = history("gone", &[(Some("a"), 30), (None, 25)]);
    events.extend(history("latest", &[(Some("b"), 20)]));
    let rules = policy(r#"{"keep_tag_revisions":5}"#);
    let plan = plan(rules, &nodes, &events, now());
    assert_eq!(
        plan,
        vec![(
            digest("a"),
            RemovalReason::DeletedTag {
                tag: "gone".parse().unwrap()
            }
        )]
    );
}

#[test]
fn an_index_keeps_its_children_and_takes_them_when_it_goes() {
    // Two indexes sharing child "x"; "old" goes, "new" is tagged.
    let nodes = [
        index("old", 40, &["x", "y"]),
        index("new", 10, &["x", "z"]),
        node("x", 40),
        node("y", 40),
        node("z", 10),
    ];
    let events = history("latest", &[(Some("old"), 40), (Some("new"), 10)]);
    let rules = policy(r#"{"keep_tag_revisions":1,"prune_untagged_after":"1d"}"#);
    let plan = plan(rules, &nodes, &events, now());
    assert_eq!(
        plan,
        vec![
            (
                digest("old"),
                RemovalReason::OldRevision {
                    tag: "latest".parse().unwrap(),
                    revision: 2,
                    keep: 1
                }
            ),
            (
                digest("y"),
                RemovalReason::ChildOf {
                    index: digest("old")
                }
            ),
        ]
    );
}

#[test]
fn referrers_go_with_their_subject_and_never_keep_it() {
    // "sig" and "sbom" refer to "a", which goes; "sig2" refers to the kept
    // "b"; "sig-of-sig" refers to "sig". "orphan" refers to an image the
    // repository does not hold: judged on its own.
    let nodes = [
        node("a", 40),
        node("b", 1),
        referrer("sig", 1, "a"),
        referrer("sbom", 1, "a"),
        referrer("sig2", 30, "b"),
        referrer("sig-of-sig", 1, "sig"),
        referrer("orphan", 30, "elsewhere"),
    ];
    let events = history("latest", &[(Some("a"), 40), (Some("b"), 1)]);
    let rules =
        policy(r#"{"keep_tag_revisions":1,"keep_younger_than":"7d","prune_untagged_after":"7d"}"#);
    let plan = plan(rules, &nodes, &events, now());
    let position = |name: &str| plan.iter().position(|(d, _)| *d == digest(name));
    for gone in ["a", "sig", "sbom", "sig-of-sig", "orphan"] {
        assert!(position(gone).is_some(), "{gone} should go: {plan:?}");
    }
    assert_eq!(plan.len(), 5, "{plan:?}");
    // Owners first: the conditional deletes succeed in this order.
    assert!(position("a") < position("sig"));
    assert!(position("sig") < position("sig-of-sig"));
    let (_, why) = &plan[position("sbom").unwrap()];
    assert_eq!(
        *why,
        RemovalReason::ReferrerOf {
            subject: digest("a")
        }
    );
}

#[test]
fn a_tagged_child_or_referrer_stays_when_its_owner_goes() {
    let nodes = [
        index("old", 40, &["x"]),
        node("x", 40),
        referrer("sig", 40, "old"),
    ];
    let mut events = history("latest", &[(Some("old"), 40), (None, 30)]);
    events.extend(history("x", &[(Some("x"), 40)]));
    events.extend(history("sig", &[(Some("sig"), 40)]));
    let rules = policy(r#"{"prune_untagged_after":"7d"}"#);
    assert_eq!(removed(rules, &nodes, &events), vec![digest("old")]);
}

#[test]
fn long_referrer_chains_are_planned_without_recursion() {
    let mut nodes = vec![node("m0", 40)];
    for i in 1..20_000 {
        nodes.push(referrer(&format!("m{i}"), 40, &format!("m{}", i - 1)));
    }
    let rules = policy(r#"{"prune_untagged_after":"7d"}"#);
    let plan = removed(rules, &nodes, &[]);
    assert_eq!(plan.len(), 20_000);
    assert_eq!(plan[0], digest("m0"));
    assert_eq!(plan[19_999], digest("m19999"));
}
