//! Retention applied by prune, in process: a namespace policy's rules
//! remove old revisions, untagged manifests, an index's children with it
//! and referrers with their subject; the dry run lists exactly what the
//! real run then removes, blobs included; tag history stays and shows the
//! removed images as pruned; namespaces without rules keep everything.

mod common;

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use common::{as_user, image_manifest, with_access_control, Client, Reply};
use registry_api::Registry;
use registry_auth::{ClusterRole, Role};
use registry_core::{media_type, Digest};
use serde_json::json;

/// root is cluster-admin; nsadmin is registry-admin of `team` (and of
/// `keep`, which has no retention rules).
async fn world() -> Registry {
    let (registry, _) = with_access_control(
        Registry::in_memory(),
        &["root", "nsadmin"],
        &[
            ("team", Role::Admin, "nsadmin"),
            ("keep", Role::Admin, "nsadmin"),
        ],
        &[(ClusterRole::ClusterAdmin, "root")],
    )
    .await;
    for ns in ["team", "keep"] {
        registry
            .metadata()
            .create_namespace(&ns.parse().unwrap())
            .await
            .unwrap();
    }
    registry
}

async fn put(c: &Client, uri: &str, content_type: &str, body: Vec<u8>) -> Reply {
    c.call(Method::PUT, uri, &[("content-type", content_type)], body)
        .await
}

/// Pushes an index over `children` (manifest digests with their sizes) to
/// `reference`.
async fn push_index(
    c: &Client,
    repo: &str,
    reference: &str,
    children: &[(Digest, usize)],
) -> Digest {
    let manifests: Vec<_> = children
        .iter()
        .map(|(d, size)| {
            json!({"mediaType": media_type::OCI_MANIFEST, "digest": d, "size": size,
                   "platform": {"architecture": "amd64", "os": "linux"}})
        })
        .collect();
    let body = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": manifests,
    }))
    .unwrap();
    let r = put(
        c,
        &format!("/v2/{repo}/manifests/{reference}"),
        media_type::OCI_INDEX,
        body.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    Digest::sha256_of(&body)
}

/// Pushes an image by digest (untagged), referring to `subject` when given
/// (a signature); returns its digest and size.
async fn push_by_digest(
    c: &Client,
    repo: &str,
    seed: &str,
    subject: Option<&(Digest, usize)>,
) -> (Digest, usize) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#);
    let config_digest = c.push_blob(repo, config.as_bytes()).await;
    let layer = format!("layer of {seed}");
    let layer_digest = c.push_blob(repo, layer.as_bytes()).await;
    let body = image_manifest(
        &config_digest,
        config.len(),
        &layer_digest,
        layer.len(),
        subject.map(|(d, size)| (d, *size)),
    );
    let digest = Digest::sha256_of(&body);
    let r = put(
        c,
        &format!("/v2/{repo}/manifests/{digest}"),
        media_type::OCI_MANIFEST,
        body.clone(),
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    (digest, body.len())
}

async fn post_prune(c: &Client, body: &str) -> Reply {
    c.call(
        Method::POST,
        "/apis/admin/v1/prune",
        &[("content-type", "application/json")],
        body.to_owned(),
    )
    .await
}

async fn prune(c: &Client, dry_run: bool) -> serde_json::Value {
    let body = json!({"dry_run": dry_run, "grace_period_seconds": 0}).to_string();
    let r = post_prune(c, &body).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.json()
}

/// `(repository, digest)` of the removed manifests, and the deleted blobs.
fn removed(report: &serde_json::Value) -> (BTreeSet<(String, String)>, BTreeSet<String>) {
    let manifests = report["removed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["repository"].as_str().unwrap().to_owned(),
                m["digest"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let blobs = report["deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().to_owned())
        .collect();
    (manifests, blobs)
}

async fn exists(c: &Client, repo: &str, digest: &Digest) -> bool {
    let r = c
        .bare(Method::HEAD, &format!("/v2/{repo}/manifests/{digest}"), &[])
        .await;
    match r.status {
        StatusCode::OK => true,
        StatusCode::NOT_FOUND => false,
        other => panic!("HEAD {repo}@{digest}: {other}"),
    }
}

fn reason(report: &serde_json::Value, digest: &Digest) -> String {
    report["removed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["digest"] == digest.as_str())
        .map(|m| m["reason"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("{digest} not removed: {report}"))
}

#[tokio::test]
async fn a_dry_run_lists_exactly_what_the_run_removes_by_each_rule() {
    let registry = world().await;
    let c = as_user(&registry, Some("root"));
    // team/app:latest moves four times: l1 and l2 fall out of two revisions.
    let mut latest = Vec::new();
    for seed in ["l1", "l2", "l3", "l4"] {
        let (digest, body, _) = c.push_image("team/app", "latest", seed).await;
        latest.push((digest, body.len()));
    }
    // Signatures: of l1 (goes with it) and of l4 (stays).
    let (sig_old, _) = push_by_digest(&c, "team/app", "old", Some(&latest[0])).await;
    let (sig_new, _) = push_by_digest(&c, "team/app", "new", Some(&latest[3])).await;
    // team/multi:v moves over three indexes; the first one goes with its
    // own child c1, while c2 stays for the second index.
    let mut children = Vec::new();
    for seed in ["c1", "c2", "c3", "c4"] {
        children.push(push_by_digest(&c, "team/multi", seed, None).await);
    }
    let i1 = push_index(&c, "team/multi", "v", &children[0..2]).await;
    let i2 = push_index(&c, "team/multi", "v", &children[1..3]).await;
    let i3 = push_index(&c, "team/multi", "v", &children[2..4]).await;
    // An image pushed by digest that nothing tags or indexes.
    let (loose, _) = push_by_digest(&c, "team/multi", "loose", None).await;
    // In `keep` (no rules) the same kind of history stays whole.
    let (kept_old, _, _) = c.push_image("keep/app", "latest", "k1").await;
    c.push_image("keep/app", "latest", "k2").await;
    c.push_image("keep/app", "latest", "k3").await;

    let r = put(
        &c,
        "/apis/admin/v1/namespaces/team/policy",
        "application/json",
        br#"{"keep_tag_revisions":2,"prune_untagged_after":"0s"}"#.to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    let repo_of = |d: &Digest| {
        if [&i1, &i2, &i3, &loose].contains(&d) || children.iter().any(|(c, _)| c == d) {
            "team/multi"
        } else {
            "team/app"
        }
    };
    let doomed = [
        &latest[0].0,
        &latest[1].0,
        &sig_old,
        &i1,
        &children[0].0,
        &loose,
    ];
    let dry = prune(&c, true).await;
    assert_eq!(dry["dry_run"], true);
    for d in doomed {
        assert!(exists(&c, repo_of(d), d).await, "a dry run removes nothing");
    }
    let real = prune(&c, false).await;
    assert_eq!(
        removed(&dry),
        removed(&real),
        "dry run:\n{dry}\nreal run:\n{real}"
    );
    assert_eq!(real["manifests_removed"], 6, "{real}");
    assert_eq!(real["manifests_raced"], 0);
    assert!(
        !removed(&real).1.is_empty() && real["blobs_deleted"] == dry["blobs_deleted"],
        "the freed blobs go in the same run, as the dry run said: {real}"
    );

    for gone in doomed {
        assert!(
            !exists(&c, repo_of(gone), gone).await,
            "{gone} should be gone"
        );
    }
    for kept in [
        &latest[2].0,
        &latest[3].0,
        &sig_new,
        &i2,
        &i3,
        &children[1].0,
        &children[2].0,
        &children[3].0,
    ] {
        assert!(exists(&c, repo_of(kept), kept).await, "{kept} should stay");
    }
    assert_eq!(
        reason(&real, &latest[0].0),
        "revision 4 of tag latest (keep_tag_revisions 2)"
    );
    assert_eq!(
        reason(&real, &sig_old),
        format!("referrer of removed manifest {}", latest[0].0)
    );
    assert_eq!(
        reason(&real, &children[0].0),
        format!("child of removed index {i1}")
    );
    assert!(reason(&real, &loose).starts_with("untagged for 0 days (prune_untagged_after 0s)"));
    // The removed layers are gone from the blob store as well.
    let r = c
        .bare(
            Method::GET,
            &format!("/v2/team/app/blobs/{}", Digest::sha256_of(b"layer of l1")),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // `keep` has no rules: all three revisions stay.
    assert!(exists(&c, "keep/app", &kept_old).await);

    // History stays, the removed images marked.
    let history = c
        .get("/apis/image/v1/namespaces/team/imagestreamtags/app:latest")
        .await
        .json();
    let items = history["history"].as_array().unwrap();
    assert_eq!(items.len(), 4);
    let pruned: Vec<bool> = items
        .iter()
        .map(|i| i["pruned"].as_bool().unwrap_or(false))
        .collect();
    assert_eq!(pruned, vec![false, false, true, true], "{history}");

    // A second run finds nothing more.
    let again = prune(&c, false).await;
    assert_eq!(again["manifests_removed"], 0, "{again}");
}

#[tokio::test]
async fn keep_younger_than_keeps_recent_pushes_and_pushing_an_index_needs_its_children() {
    let registry = world().await;
    let c = as_user(&registry, Some("root"));
    for seed in ["y1", "y2", "y3"] {
        c.push_image("team/app", "latest", seed).await;
    }
    let r = put(
        &c,
        "/apis/admin/v1/namespaces/team/policy",
        "application/json",
        br#"{"keep_tag_revisions":1,"keep_younger_than":"1d","prune_untagged_after":"0s"}"#
            .to_vec(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let report = prune(&c, false).await;
    assert_eq!(report["manifests_scanned"], 3);
    assert_eq!(
        report["manifests_removed"], 0,
        "all younger than a day: {report}"
    );

    // A child removed before its index arrives: the index is refused with
    // MANIFEST_BLOB_UNKNOWN instead of pointing at nothing.
    let (child, size) = push_by_digest(&c, "team/idx", "child", None).await;
    assert_eq!(
        prune(&c, false).await["manifests_removed"],
        0,
        "younger than a day"
    );
    registry
        .metadata()
        .delete_unreferenced_manifests(
            &"team/idx".parse().unwrap(),
            std::slice::from_ref(&child),
            std::time::SystemTime::now() + std::time::Duration::from_secs(1),
        )
        .await
        .unwrap();
    let body = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_INDEX,
        "manifests": [{"mediaType": media_type::OCI_MANIFEST, "digest": child, "size": size}],
    }))
    .unwrap();
    let r = put(&c, "/v2/team/idx/manifests/v1", media_type::OCI_INDEX, body).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);
    assert_eq!(r.code(), "MANIFEST_BLOB_UNKNOWN");
    assert!(r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains(&format!("manifest {child} is not in repository team/idx")));
}

#[tokio::test]
async fn only_cluster_admin_prunes_and_bad_prune_bodies_are_refused() {
    let registry = world().await;
    let nsadmin = as_user(&registry, Some("nsadmin"));
    let r = post_prune(&nsadmin, "{}").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let root = as_user(&registry, Some("root"));
    for body in [r#"{"dry_run":"yes"}"#, r#"{"retention":false}"#, "[]"] {
        let r = post_prune(&root, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {:?}", r.body);
    }
}
