//! The admin commands' rendering, and `prune` against the real registry.

use super::*;

#[test]
fn tables_align_columns() {
    let rows = vec![
        vec!["registry-viewer".to_owned(), "user:alice".to_owned()],
        vec!["admin".to_owned(), "group:system:authenticated".to_owned()],
    ];
    assert_eq!(
        table(&["ROLE", "SUBJECT"], &rows),
        "ROLE              SUBJECT\n\
         registry-viewer   user:alice\n\
         admin             group:system:authenticated"
    );
}

#[test]
fn commands_that_wait_for_server_work_tolerate_long_silences() {
    let silence_of = |args: &[&str]| {
        let cli =
            <crate::cli::Cli as clap::Parser>::try_parse_from(["registryctl"].iter().chain(args))
                .expect("valid command line");
        silence(&cli.command)
    };
    for long in [
        &["prune"][..],
        &["prune", "--dry-run"],
        &["mirror", "sync", "hub/library/alpine"],
        &["namespace", "delete", "team", "--cascade"],
        &["namespace", "usage", "team", "--recompute"],
    ] {
        assert_eq!(silence_of(long), Silence::Long, "{long:?}");
    }
    for short in [
        &["namespace", "delete", "team"][..],
        &["namespace", "usage", "team"],
        &["namespace", "list"],
        &["whoami"],
    ] {
        assert_eq!(silence_of(short), Silence::Short, "{short:?}");
    }
}

#[test]
fn reports_as_text() {
    assert_eq!(human_bytes(512), "512 B");
    assert_eq!(human_bytes(1536), "1.5 KiB");
    assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    let report: PruneReport = serde_json::from_value(serde_json::json!({
        "dry_run": true, "blobs_scanned": 10, "blobs_referenced": 7, "blobs_young": 1,
        "blobs_deleted": 2, "bytes_freed": 2048, "uploads_expired": 1,
        "duration_seconds": 0.1, "deleted": [], "deleted_unlisted": 0,
    }))
    .unwrap();
    assert_eq!(
        describe(&report),
        "scanned 10 blobs: 7 referenced, 1 younger than the grace period\n\
         would delete 2 blobs (2.0 KiB)\n\
         would expire 1 upload sessions\n\
         dry run: nothing was changed"
    );
}

#[test]
fn retention_removals_are_listed_with_their_reasons() {
    let digest = registry::core::Digest::sha256_of(b"m");
    let report: PruneReport = serde_json::from_value(serde_json::json!({
        "dry_run": false, "blobs_scanned": 3, "blobs_referenced": 1, "blobs_young": 0,
        "blobs_deleted": 2, "bytes_freed": 100, "uploads_expired": 0,
        "duration_seconds": 0.1, "deleted": [], "deleted_unlisted": 0,
        "manifests_scanned": 9, "manifests_removed": 3, "manifests_raced": 1,
        "removed": [{"repository": "team/app", "digest": digest,
                     "reason": "revision 4 of tag latest (keep_tag_revisions 3)"}],
        "removed_unlisted": 2,
    }))
    .unwrap();
    assert_eq!(
        describe(&report),
        format!(
            "scanned 3 blobs: 1 referenced, 0 younger than the grace period\n\
             deleted 2 blobs (100 B)\n\
             expired 0 upload sessions\n\
             retention: scanned 9 manifests, removed 3 (1 kept: pushed, tagged or referenced meanwhile)\n  \
             team/app@{digest}: revision 4 of tag latest (keep_tag_revisions 3)\n  \
             and 2 more (the server's log names them)"
        )
    );
}

/// `registryctl login` then `prune` against the real registry, served
/// in process on a loopback port.
#[tokio::test]
async fn prune_against_the_registry() {
    use std::sync::Arc;

    use clap::Parser;
    use futures::StreamExt;
    use registry::api::{router, AuthConfig, Registry};
    use registry::auth::{ensure_admin, MemoryAuthStore, Password, PasswordHasher, SigningKey};
    use registry::core::Digest;

    use crate::cli::Cli;
    use crate::{run, Env};

    let store = Arc::new(MemoryAuthStore::new());
    let hasher = PasswordHasher::insecure_fast();
    ensure_admin(store.as_ref(), &hasher, Some(Password::new("admin-pass-1")))
        .await
        .unwrap();
    let mut config = AuthConfig::new(SigningKey::generate().unwrap()).with_store(store);
    config.hasher = hasher;
    let registry = Registry::builder(registry::storage::Stores::in_memory())
        .auth(config)
        .build()
        .await
        .unwrap();
    let data = bytes::Bytes::from_static(b"unreferenced layer");
    let garbage = Digest::sha256_of(&data);
    registry
        .blobs()
        .put(&garbage, futures::stream::iter([Ok(data)]).boxed())
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = router(&registry);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.json");
    let file = file.to_str().unwrap();
    let exec = |args: Vec<&str>, stdin: &'static str| {
        let cli = Cli::try_parse_from(["registryctl"].into_iter().chain(args)).unwrap();
        async move {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let mut input = stdin.as_bytes();
            let mut io = Io {
                stdin: &mut input,
                out: &mut out,
                err: &mut err,
                env: Env::default(),
            };
            let result = run(cli, &mut io).await.map_err(|e| e.to_string());
            (result, String::from_utf8(out).unwrap())
        }
    };
    let common = ["--server", &url, "--config", file, "--insecure"];
    let login = ["login", &url, "-u", "admin", "--password-stdin"];
    let (result, _) = exec([&login[..], &common[2..]].concat(), "admin-pass-1\n").await;
    result.unwrap();

    let args = [&["prune", "--dry-run", "--grace", "0"][..], &common].concat();
    let (result, out) = exec(args, "").await;
    result.unwrap();
    assert!(out.contains("would delete 1 blobs (18 B)"), "{out}");
    assert!(registry.blobs().stat(&garbage).await.unwrap().is_some());

    // Default grace period: the fresh blob stays.
    let (result, out) = exec([&["prune"][..], &common].concat(), "").await;
    result.unwrap();
    assert!(out.contains("deleted 0 blobs"), "{out}");

    let args = [&["prune", "--grace", "0s", "--json"][..], &common].concat();
    let (result, out) = exec(args, "").await;
    result.unwrap();
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["blobs_deleted"], 1);
    assert_eq!(report["deleted"][0], garbage.to_string());
    assert!(registry.blobs().stat(&garbage).await.unwrap().is_none());
}
