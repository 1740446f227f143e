//! `registry-server --prune-interval`: the server prunes on its own,
//! applying a namespace's retention rules, and refuses a bad interval.

#[path = "common/examples.rs"]
mod examples;

use std::time::{Duration, Instant};

use bytes::Bytes;
use examples::{ServerProcess, ADMIN_PASSWORD};
use registry::api::client::{Client, ClientError};
use registry::core::{media_type, Digest, Reference, RepositoryName};
use registry::storage::NamespacePolicy;

fn refuses_to_start(dir: &std::path::Path, args: &[&str], expected: &str) {
    let output = ServerProcess::command(dir, args)
        .output()
        .expect("running registry-server");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_ne!(output.status.code(), Some(0), "{args:?}: {stderr}");
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
}

/// Pushes an image by digest only (no tag); returns its digest.
async fn push_untagged(admin: &Client, repo: &RepositoryName) -> Digest {
    let config = Bytes::from_static(br#"{"architecture":"amd64","os":"linux","untagged":true}"#);
    let digest = admin.push_blob(repo, config.clone()).await.unwrap();
    let manifest = Bytes::from(format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[]}}"#,
        media_type::OCI_MANIFEST,
        media_type::OCI_CONFIG,
        digest,
        config.len()
    ));
    let manifest_digest = Digest::sha256_of(&manifest);
    admin
        .put_manifest(
            repo,
            &Reference::Digest(manifest_digest.clone()),
            media_type::OCI_MANIFEST,
            manifest,
        )
        .await
        .unwrap();
    manifest_digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_prunes_on_schedule_by_the_namespace_policy() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    refuses_to_start(dir, &["--prune-interval", "0s"], "longer than 0s");
    refuses_to_start(dir, &["--prune-interval", "soon"], "soon");

    let (server, url) = ServerProcess::start(dir, &["--prune-interval", "1s"]);
    let admin = Client::builder(&url)
        .basic_auth("admin", ADMIN_PASSWORD)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let team = "team".parse().unwrap();
    admin.create_namespace(&team).await.unwrap();
    let policy: NamespacePolicy = serde_json::from_str(r#"{"prune_untagged_after":"0s"}"#).unwrap();
    admin.set_namespace_policy(&team, &policy).await.unwrap();
    let repo: RepositoryName = "team/app".parse().unwrap();
    let digest = push_untagged(&admin, &repo).await;

    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match admin
            .get_manifest(&repo, &Reference::Digest(digest.clone()))
            .await
        {
            Err(ClientError::NotFound { .. }) => break,
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!(
                "the untagged image should have been pruned: {other:?}\n{}",
                server.printed()
            ),
        }
    }
    let log = server.printed();
    assert!(log.contains("scheduled prune finished"), "{log}");
    assert!(log.contains("retention removed manifest"), "{log}");
}
