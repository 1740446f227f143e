//! A flood of wrong passwords against the `registry-server` binary (issue 8,
//! item 1): 256 concurrent wrong Basic passwords, several rounds, must keep
//! the server's memory bounded (each argon2 check holds 7 MiB, and before
//! the bounded pool all 256 ran at once: ~1.8 GB per round), and a request
//! with an access token must still be answered within a couple of seconds
//! while the flood is on.
//!
//! The failed-login limiter is switched off here (`--login-failures-per-*
//! 0`), so that the pool alone is what bounds the work; the limiter has its
//! in-process tests (registry-api/tests/auth_hardening/).
//!
//! The server binary is built and started by `tests/common/examples.rs`.

use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::Value;

#[path = "common/examples.rs"]
mod examples;

use examples::{ServerProcess, ADMIN_PASSWORD};

const WRONG: &str = "not-the-password-0xDEADBEEF";

/// `VmRSS` and `VmHWM` (peak) of a process, in KiB.
fn memory_kib(pid: u32) -> (u64, u64) {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading /proc/<pid>/status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no {name} in /proc status"))
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The text of colored log output.
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Skip to the end of the escape sequence (a letter).
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

#[cfg(target_os = "linux")]
#[test]
fn wrong_password_flood_keeps_memory_bounded_and_valid_requests_answered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, url) = ServerProcess::start(
        dir.path(),
        &[
            "--login-failures-per-user",
            "0",
            "--login-failures-per-peer",
            "0",
        ],
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("client");

    // An access token for the valid requests (one argon2 check).
    let token = runtime.block_on(async {
        let r = client
            .post(format!("{url}/apis/admin/v1/tokens"))
            .header("authorization", basic("admin", ADMIN_PASSWORD))
            .header("content-type", "application/json")
            .body(r#"{"name":"flood-test"}"#)
            .send()
            .await
            .expect("creating a token");
        assert_eq!(r.status(), 201);
        let body: Value = r.json().await.expect("token JSON");
        body["token"].as_str().expect("token").to_owned()
    });
    let (_, baseline) = memory_kib(server.child.id());

    for round in 0..2 {
        let (statuses, valid_latency) = runtime.block_on(async {
            let flood: Vec<_> = (0..256)
                .map(|i| {
                    let client = client.clone();
                    // Real and unknown users alike.
                    let user = if i % 2 == 0 {
                        "admin".to_owned()
                    } else {
                        format!("u{i}")
                    };
                    let url = format!("{url}/v2/");
                    tokio::spawn(async move {
                        client
                            .get(url)
                            .header("authorization", basic(&user, WRONG))
                            .send()
                            .await
                            .map(|r| r.status().as_u16())
                            .unwrap_or(0)
                    })
                })
                .collect();
            // While they are in flight: a request with the access token.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let started = Instant::now();
            let r = client
                .get(format!("{url}/apis/admin/v1/whoami"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("valid request");
            assert_eq!(r.status(), 200, "round {round}: the valid request failed");
            let latency = started.elapsed();
            let mut statuses = Vec::new();
            for f in flood {
                statuses.push(f.await.expect("flood task"));
            }
            (statuses, latency)
        });
        assert!(
            statuses.iter().all(|s| *s == 401 || *s == 429),
            "round {round}: only 401 and 429 expected: {statuses:?}"
        );
        assert!(
            statuses.contains(&429),
            "round {round}: a saturated pool must refuse some logins"
        );
        assert!(
            valid_latency < Duration::from_secs(2),
            "round {round}: the valid request took {valid_latency:?} during the flood"
        );
        let (rss, peak) = memory_kib(server.child.id());
        eprintln!(
            "round {round}: baseline {baseline} KiB, RSS {rss} KiB, peak {peak} KiB, \
             valid request {valid_latency:?}, {} of 256 refused with 429",
            statuses.iter().filter(|s| **s == 429).count()
        );
        // Before the bounded pool every round added ~1.8 GB; now at most
        // a few argon2 blocks (7 MiB each) are live at once.
        assert!(
            peak < baseline + 200 * 1024,
            "round {round}: peak RSS {peak} KiB over baseline {baseline} KiB (now {rss} KiB)"
        );
    }

    // The failure log line names the user and the peer, never the password.
    let printed = strip_ansi(&server.printed());
    let failures: Vec<_> = printed
        .lines()
        .filter(|l| l.contains("authentication failed") || l.contains("authentication refused"))
        .collect();
    assert!(!failures.is_empty(), "no auth failure logged");
    let unnamed: Vec<_> = failures
        .iter()
        .filter(|l| !(l.contains("user=\"") && l.contains("peer=127.0.0.1")))
        .take(3)
        .collect();
    assert!(
        unnamed.is_empty(),
        "failure lines without user and peer: {unnamed:?}"
    );
    assert!(!printed.contains(WRONG), "a password reached the log");
}
