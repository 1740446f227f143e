//! `registryctl prune`: garbage collection on the server
//! (`POST /apis/admin/v1/prune`, cluster-admin).

use clap::Args;
use reqwest::Method;
use serde_json::{json, Value};

use crate::admin::print_json;
use crate::cli::Global;
use crate::parse::parse_duration;
use crate::session::Admin;
use crate::{say, Io};

/// `registryctl prune`.
#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Report what would be deleted without deleting anything.
    #[arg(long)]
    pub dry_run: bool,
    /// Keep unreferenced blobs younger than this, e.g. 30m, 1h, 2d, or 0
    /// for none [default: the server's, 1h]. Blobs of a push in progress
    /// are unreferenced until its manifest arrives: keep this longer than
    /// your slowest push.
    #[arg(long, value_name = "DURATION", value_parser = parse_grace)]
    pub grace: Option<u64>,
    /// Cancel upload sessions started longer ago than this [default: the
    /// server's, 24h].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub upload_max_age: Option<u64>,
}

/// A duration like `parse_duration`, but zero (`0`, `0s`) is allowed.
fn parse_grace(s: &str) -> Result<u64, String> {
    if s.trim_end_matches(['s', 'm', 'h', 'd', 'w']) == "0" {
        return Ok(0);
    }
    parse_duration(s)
}

/// `1536` → `1.5 KiB`.
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// The server's report as a few lines of text.
fn describe(report: &Value) -> String {
    let n = |field: &str| report.get(field).and_then(Value::as_u64).unwrap_or(0);
    let dry_run = report.get("dry_run").and_then(Value::as_bool) == Some(true);
    let (delete, expire) = if dry_run {
        ("would delete", "would expire")
    } else {
        ("deleted", "expired")
    };
    let mut lines = vec![
        format!(
            "scanned {} blobs: {} referenced, {} younger than the grace period",
            n("blobs_scanned"),
            n("blobs_referenced"),
            n("blobs_young")
        ),
        format!(
            "{delete} {} blobs ({})",
            n("blobs_deleted"),
            human_bytes(n("bytes_freed"))
        ),
        format!("{expire} {} upload sessions", n("uploads_expired")),
    ];
    if dry_run {
        lines.push("dry run: nothing was changed".to_owned());
    }
    lines.join("\n")
}

/// `registryctl prune [--dry-run] [--grace D] [--upload-max-age D]`.
pub async fn prune(global: &Global, args: &PruneArgs, io: &mut Io<'_>) -> Result<(), String> {
    let admin = Admin::connect(global, io)?;
    let mut body = json!({ "dry_run": args.dry_run });
    if let Some(seconds) = args.grace {
        body["grace_period_seconds"] = Value::from(seconds);
    }
    if let Some(seconds) = args.upload_max_age {
        body["upload_max_age_seconds"] = Value::from(seconds);
    }
    let report = admin
        .call(Method::POST, &["prune"], &[], Some(&body))
        .await?;
    if global.json {
        return print_json(io, &report);
    }
    say!(io.out, "{}", describe(&report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grace_durations() {
        assert_eq!(parse_grace("0"), Ok(0));
        assert_eq!(parse_grace("0s"), Ok(0));
        assert_eq!(parse_grace("1h"), Ok(3600));
        assert_eq!(parse_grace("1h30m"), Ok(5400));
        assert!(parse_grace("soon").is_err());
        assert!(parse_grace("").is_err());
    }

    #[test]
    fn reports_as_text() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
        let report = json!({
            "dry_run": true, "blobs_scanned": 10, "blobs_referenced": 7, "blobs_young": 1,
            "blobs_deleted": 2, "bytes_freed": 2048, "uploads_expired": 1,
        });
        assert_eq!(
            describe(&report),
            "scanned 10 blobs: 7 referenced, 1 younger than the grace period\n\
             would delete 2 blobs (2.0 KiB)\n\
             would expire 1 upload sessions\n\
             dry run: nothing was changed"
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
                let result = run(cli, &mut io).await;
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
        let report: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(report["blobs_deleted"], 1);
        assert_eq!(report["deleted"][0], garbage.to_string());
        assert!(registry.blobs().stat(&garbage).await.unwrap().is_none());
    }
}
