//! Two `registry-server` replicas over one S3 bucket and one PostgreSQL
//! database (nothing else shared: separate, empty data directories), as
//! behind a load balancer:
//! - an image pushed through one is pulled through the other, a chunked
//!   upload begun on one is finished on the other;
//! - a tag move and a role-binding removal on one are in force on the
//!   other within a second (its caches and authorizer were warm first);
//! - both pruning at once remove each unreferenced blob exactly once and
//!   nothing referenced;
//! - kill -9 of one replica mid-push loses nothing acknowledged: the client
//!   finishes through the other;
//! - a fresh replica with an empty data directory serves everything.
//!
//! Needs `REGISTRY_TEST_S3_*` and `REGISTRY_TEST_DATABASE_URL` (`bash
//! .ci/services.sh start`); without them it says it was skipped and passes.
#![cfg(unix)]

#[path = "common/examples.rs"]
mod examples;
#[path = "common/http_api.rs"]
mod http_api;
#[path = "common/s3_env.rs"]
mod s3_env;
#[path = "common/test_database.rs"]
mod test_database;

use std::time::{Duration, Instant};

use examples::ServerProcess;
use http_api::{data, digest, Api};
use reqwest::{Method, StatusCode};
use serde_json::json;

fn manifest(config: &[u8], layers: &[&[u8]]) -> Vec<u8> {
    let layers: Vec<_> = layers
        .iter()
        .map(|l| {
            json!({"mediaType": "application/vnd.oci.image.layer.v1.tar",
                   "digest": digest(l), "size": l.len()})
        })
        .collect();
    serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(config), "size": config.len()},
        "layers": layers,
    }))
    .unwrap()
}

impl Api {
    async fn push_blob(&self, repo: &str, blob: &[u8]) {
        let r = self
            .req(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={}", digest(blob)),
            )
            .body(blob.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
    }

    async fn put_manifest(&self, repo: &str, tag: &str, manifest: &[u8]) {
        let r = self
            .req(Method::PUT, &format!("/v2/{repo}/manifests/{tag}"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            StatusCode::CREATED,
            "{}",
            r.text().await.unwrap()
        );
    }

    async fn tag_digest(&self, repo: &str, tag: &str) -> (StatusCode, String) {
        let r = self
            .req(Method::GET, &format!("/v2/{repo}/manifests/{tag}"))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap();
        let digest = r
            .headers()
            .get("docker-content-digest")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (r.status(), digest)
    }

    async fn admin(
        &self,
        method: Method,
        path: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let r = self.req(method, path).json(&body).send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{path}: {status}: {text}");
        serde_json::from_str(&text).unwrap_or_default()
    }
}

/// Polls until `check` holds, for at most a second.
async fn within_a_second(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let started = Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{what}: not in force on the other replica within a second"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_agree() {
    let Some(s3) = s3_env::s3("two_replicas_agree") else {
        return;
    };
    let Some((database_url, server, name)) =
        test_database::test_database("two_replicas_agree").await
    else {
        return;
    };
    let prefix = format!("replicas-{}", registry::storage::UploadId::random());
    let start = |dir: &std::path::Path| {
        ServerProcess::spawn(s3_env::server(
            dir,
            &s3,
            &s3.bucket,
            &prefix,
            &["--database-url", &database_url],
        ))
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (mut replica_a, url_a) = start(dir_a.path());
    let (_replica_b, url_b) = start(dir_b.path());
    let (a, b) = (Api::new(&url_a), Api::new(&url_b));

    // An image: config pushed through A, a 12 MiB layer in PATCHes begun
    // on A and finished on B, the manifest through B.
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    a.push_blob("team/app", &config).await;
    let layer = data(12 << 20, 1);
    let location = a.start_upload("team/app").await;
    let path = |location: &str| format!("/v2/{}", location.split_once("/v2/").unwrap().1);
    let location = a.patch(&location, 0, &layer[..5 << 20]).await;
    let location = b.patch(&path(&location), 5 << 20, &layer[5 << 20..]).await;
    b.finish(&path(&location), &layer).await;
    let v1 = manifest(&config, &[&layer]);
    b.put_manifest("team/app", "latest", &v1).await;
    let (status, body) = a
        .get(&format!("/v2/team/app/blobs/{}", digest(&layer)), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == layer, "layer pulled through A differs");

    // A user with a viewer binding, warm on B (user, binding, tag cached).
    a.admin(
        Method::POST,
        "/apis/admin/v1/users",
        json!({"name": "bob", "password": "bob-password-1"}),
    )
    .await;
    a.admin(
        Method::POST,
        "/apis/admin/v1/namespaces/team/rolebindings",
        json!({"role": "registry-viewer", "subject": "bob"}),
    )
    .await;
    let bob_b = b.as_user("bob", "bob-password-1");
    within_a_second("a new binding", async || {
        bob_b.tag_digest("team/app", "latest").await.0 == StatusCode::OK
    })
    .await;
    assert_eq!(bob_b.tag_digest("team/app", "latest").await.1, digest(&v1));

    // Tag move on A, seen by B.
    let other_layer = data(1 << 20, 2);
    a.push_blob("team/app", &other_layer).await;
    let v2 = manifest(&config, &[&other_layer]);
    a.put_manifest("team/app", "latest", &v2).await;
    within_a_second("the tag move", async || {
        bob_b.tag_digest("team/app", "latest").await.1 == digest(&v2)
    })
    .await;

    // Binding removed on A, refused on B.
    let r = a
        .req(
            Method::DELETE,
            "/apis/admin/v1/namespaces/team/rolebindings?role=registry-viewer&subject=bob",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::NO_CONTENT,
        "{}",
        r.text().await.unwrap()
    );
    within_a_second("the binding removal", async || {
        bob_b.tag_digest("team/app", "latest").await.0 != StatusCode::OK
    })
    .await;

    // Both prune at once after `v1`'s layer lost its last manifest: each
    // unreferenced blob goes exactly once, nothing referenced goes.
    let r = a
        .req(
            Method::DELETE,
            &format!("/v2/team/app/manifests/{}", digest(&v1)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::ACCEPTED,
        "{}",
        r.text().await.unwrap()
    );
    let prune = json!({"grace_period_seconds": 0});
    let (ra, rb) = tokio::join!(
        a.admin(Method::POST, "/apis/admin/v1/prune", prune.clone()),
        b.admin(Method::POST, "/apis/admin/v1/prune", prune.clone())
    );
    let deleted: Vec<String> = [&ra, &rb]
        .iter()
        .flat_map(|r| r["deleted"].as_array().unwrap().clone())
        .map(|d| d.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(deleted, vec![digest(&layer)], "A: {ra}\nB: {rb}");
    for blob in [&config, &other_layer] {
        let (status, _) = b
            .get(&format!("/v2/team/app/blobs/{}", digest(blob)), None)
            .await;
        assert_eq!(status, StatusCode::OK, "a referenced blob went");
    }
    let (status, _) = b
        .get(&format!("/v2/team/app/blobs/{}", digest(&layer)), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // kill -9 of A mid-push: the acknowledged part is kept; B finishes.
    let big = data(9 << 20, 3);
    let location = a.start_upload("team/app").await;
    let location = a.patch(&location, 0, &big[..6 << 20]).await;
    replica_a.child.kill().unwrap();
    replica_a.child.wait().unwrap();
    let r = b.req(Method::GET, &path(&location)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        r.headers()["range"],
        format!("0-{}", (6 << 20) - 1).as_str()
    );
    let location = b.patch(&path(&location), 6 << 20, &big[6 << 20..]).await;
    b.finish(&path(&location), &big).await;
    let v3 = manifest(&config, &[&big]);
    b.put_manifest("team/app", "v3", &v3).await;

    // A fresh replica with an empty data directory serves it all.
    let dir_c = tempfile::tempdir().unwrap();
    let (_replica_c, url_c) = start(dir_c.path());
    let c = Api::new(&url_c);
    assert_eq!(c.tag_digest("team/app", "v3").await.1, digest(&v3));
    assert_eq!(c.tag_digest("team/app", "latest").await.1, digest(&v2));
    let (status, body) = c
        .get(&format!("/v2/team/app/blobs/{}", digest(&big)), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body == big, "the blob finished after the kill differs on C");

    drop(_replica_c);
    drop(_replica_b);
    test_database::admin_sql(&server, &format!("DROP DATABASE {name} WITH (FORCE)")).await;
}
