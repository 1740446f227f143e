//! `registryctl webhook` against the real registry, served in process on
//! a loopback port: add (secret shown once), list, deliveries (a receiver
//! that never answers: attempts and errors show), redeliver, remove.

use std::sync::Arc;

use clap::Parser;
use registry::api::{router, AuthConfig, EventsConfig, Registry};
use registry::auth::{ensure_admin, MemoryAuthStore, Password, PasswordHasher, SigningKey};

use crate::cli::Cli;
use crate::{run, Env, Io};

#[tokio::test]
async fn webhook_commands_against_the_registry() {
    let store = Arc::new(MemoryAuthStore::new());
    let hasher = PasswordHasher::insecure_fast();
    ensure_admin(store.as_ref(), &hasher, Some(Password::new("admin-pass-1")))
        .await
        .unwrap();
    let mut config = AuthConfig::new(SigningKey::generate().unwrap()).with_store(store);
    config.hasher = hasher;
    let mut events = EventsConfig::default();
    events.allow_private = true;
    events.initial_backoff = std::time::Duration::from_millis(20);
    events.poll_interval = std::time::Duration::from_millis(50);
    let registry = Registry::builder(registry::storage::Stores::in_memory())
        .auth(config)
        .events(events)
        .build()
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let app = router(&registry);
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    // A port nobody listens on: deliveries fail and stay pending.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let receiver = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);

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
    let (result, _) = exec([&["namespace", "create", "team"][..], &common].concat(), "").await;
    result.unwrap();

    let add = ["webhook", "add", "team", &receiver, "--secret-stdin"];
    let (result, out) = exec([&add[..], &common].concat(), "a-secret-of-20-bytes\n").await;
    result.unwrap();
    assert!(
        out.contains("webhook/1 created") && out.contains("a-secret-of-20-bytes"),
        "{out}"
    );
    let bad = ["webhook", "add", "team", "ftp://x.example/"];
    let (result, _) = exec([&bad[..], &common].concat(), "").await;
    assert!(result.unwrap_err().contains("http or https"));

    let (result, out) = exec([&["webhook", "list", "team"][..], &common].concat(), "").await;
    result.unwrap();
    assert!(
        out.contains(&receiver) && !out.contains("a-secret"),
        "{out}"
    );

    // A push raises an event; its delivery fails against the closed port.
    let (result, _) = exec([&["namespace", "delete", "team"][..], &common].concat(), "").await;
    result.unwrap();
    let deliveries = ["webhook", "deliveries", "team", "1"];
    let mut out = String::new();
    for _ in 0..100 {
        let (result, text) = exec([&deliveries[..], &common].concat(), "").await;
        result.unwrap();
        out = text;
        // Attempted once, and failed: still pending, with the error.
        if out.contains("namespace.deleted") && out.contains("pending") && out.contains("error") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        out.contains("STATUS") && out.contains("namespace.deleted"),
        "{out}"
    );
    assert!(out.contains("pending") && out.contains("error"), "{out}");
    let redeliver = ["webhook", "deliveries", "team", "1", "--redeliver", "1"];
    let (result, out) = exec([&redeliver[..], &common].concat(), "").await;
    result.unwrap();
    assert!(out.contains("queued again"), "{out}");
    let (result, out) = exec(
        [&["webhook", "remove", "team", "1"][..], &common].concat(),
        "",
    )
    .await;
    result.unwrap();
    assert!(out.contains("webhook/1 removed"), "{out}");
}
