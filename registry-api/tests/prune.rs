//! `POST /apis/admin/v1/prune` in process: only cluster-admin may prune,
//! a dry run changes nothing, a real run sweeps unreferenced blobs and
//! counts into the metrics.

mod common;

use axum::http::{Method, StatusCode};
use common::{with_access_control, Client, Reply, PASSWORD};
use registry_api::Registry;
use registry_auth::ClusterRole;

const PRUNE: &str = "/apis/admin/v1/prune";

fn basic(user: &str) -> String {
    common::basic(user, PASSWORD)
}

/// `root` is cluster-admin, `prom` metrics-viewer.
async fn guarded() -> (Client, Registry) {
    let cluster = [
        (ClusterRole::ClusterAdmin, "root"),
        (ClusterRole::MetricsViewer, "prom"),
    ];
    let (registry, _) =
        with_access_control(Registry::in_memory(), &["root", "prom"], &[], &cluster).await;
    (Client::with(registry.clone()), registry)
}

async fn prune(c: &Client, user: Option<&str>, body: &str) -> Reply {
    let auth = user.map(basic);
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    c.call(Method::POST, PRUNE, &headers, body.to_owned()).await
}

async fn push_blob_as_root(c: &Client, repo: &str, data: &[u8]) -> registry_core::Digest {
    let d = registry_core::Digest::sha256_of(data);
    let root = basic("root");
    let r = c
        .call(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            &[("authorization", &root)],
            data.to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    d
}

#[tokio::test]
async fn only_cluster_admin_prunes() {
    let (c, _) = guarded().await;
    assert_eq!(prune(&c, None, "").await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        prune(&c, Some("prom"), "").await.status,
        StatusCode::FORBIDDEN
    );
    let r = prune(&c, Some("root"), "").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.json()["dry_run"], false);
    let r = prune(&c, Some("root"), r#"{"grace":"1h"}"#).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn dry_run_then_prune() {
    let (c, registry) = guarded().await;
    let garbage = push_blob_as_root(&c, "team/app", b"garbage layer").await;

    // Default grace period (1 h): the fresh blob stays.
    let r = prune(&c, Some("root"), "{}").await;
    assert_eq!(r.json()["blobs_young"], 1, "{}", r.json());
    assert_eq!(r.json()["blobs_deleted"], 0);

    let r = prune(
        &c,
        Some("root"),
        r#"{"dry_run":true,"grace_period_seconds":0}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let report = r.json();
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["blobs_deleted"], 1);
    assert_eq!(report["bytes_freed"], 13);
    assert_eq!(report["deleted"][0], garbage.to_string());
    assert!(registry.blobs().stat(&garbage).await.unwrap().is_some());

    let r = prune(&c, Some("root"), r#"{"grace_period_seconds":0}"#).await;
    assert_eq!(r.json()["blobs_deleted"], 1, "{}", r.json());
    assert!(registry.blobs().stat(&garbage).await.unwrap().is_none());
    let r = c
        .bare(
            Method::GET,
            &format!("/v2/team/app/blobs/{garbage}"),
            &[("authorization", &basic("root"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let text = c
        .bare(
            Method::GET,
            "/extensions/v2/metrics",
            &[("authorization", &basic("prom"))],
        )
        .await;
    let text = String::from_utf8_lossy(&text.body);
    for line in [
        "registry_gc_runs_total 3",
        "registry_gc_blobs_deleted_total 1",
        "registry_gc_bytes_freed_total 13",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
    }
}

#[tokio::test]
async fn off_without_access_control() {
    let c = Client::new();
    let r = c.bare(Method::POST, PRUNE, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// However many blobs one run sweeps, the answer lists at most
/// `GcReport::MAX_LISTED` digests and counts the rest (before: every
/// digest, so the answer grew with the registry).
#[tokio::test]
async fn the_report_lists_a_bounded_number_of_digests() {
    use futures::StreamExt as _;
    use registry_storage::GcReport;

    let (_, registry) = guarded().await;
    let garbage = GcReport::MAX_LISTED + 7;
    for i in 0..garbage {
        let data = bytes::Bytes::from(format!("garbage {i}"));
        let digest = registry_core::Digest::sha256_of(&data);
        let body = futures::stream::iter([Ok(data)]).boxed();
        registry.blobs().put(&digest, body).await.unwrap();
    }
    let c = Client::with(registry);
    let r = prune(&c, Some("root"), r#"{"grace_period_seconds":0}"#).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let report = r.json();
    assert_eq!(report["blobs_deleted"], garbage);
    assert_eq!(
        report["deleted"].as_array().unwrap().len(),
        GcReport::MAX_LISTED
    );
    assert_eq!(report["deleted_unlisted"], 7);
}
