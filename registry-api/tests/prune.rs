//! `POST /apis/admin/v1/prune` in process: only cluster-admin may prune,
//! a dry run changes nothing, a real run sweeps unreferenced blobs and
//! counts into the metrics.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use base64::Engine as _;
use common::{Client, Reply};
use registry_api::{AuthConfig, Registry};
use registry_auth::{
    AuthStore, ClusterRole, ClusterRoleBinding, MemoryAuthStore, Password, PasswordHasher,
    PullSecretPolicy, SigningKey, User,
};

const PRUNE: &str = "/apis/admin/v1/prune";
const PASSWORD: &str = "password-1";

fn basic(user: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{PASSWORD}"))
    )
}

/// `root` is cluster-admin, `prom` metrics-viewer.
async fn guarded() -> (Client, Registry) {
    let store = Arc::new(MemoryAuthStore::new());
    let hasher = PasswordHasher::insecure_fast();
    let hash = hasher.hash(&Password::new(PASSWORD)).unwrap();
    for (name, role) in [
        ("root", ClusterRole::ClusterAdmin),
        ("prom", ClusterRole::MetricsViewer),
    ] {
        store
            .create_user(User {
                name: name.parse().unwrap(),
                password_hash: Some(hash.clone()),
                created: time::OffsetDateTime::now_utc(),
            })
            .await
            .unwrap();
        store
            .add_cluster_role_binding(ClusterRoleBinding {
                role,
                subject: name.parse().unwrap(),
            })
            .await
            .unwrap();
    }
    let registry = Registry::in_memory()
        .with_auth(AuthConfig {
            store: store as Arc<dyn AuthStore>,
            hasher,
            signing_key: SigningKey::generate().unwrap(),
            service: "registry.test".into(),
            public_url: None,
            pull_secrets: PullSecretPolicy::new(Vec::<String>::new()),
        })
        .await
        .unwrap();
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
        .call(
            Method::GET,
            &format!("/v2/team/app/blobs/{garbage}"),
            &[("authorization", &basic("root"))],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    let text = c
        .call(
            Method::GET,
            "/extensions/v2/metrics",
            &[("authorization", &basic("prom"))],
            Body::empty(),
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
    let r = c.call(Method::POST, PRUNE, &[], Body::empty()).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
