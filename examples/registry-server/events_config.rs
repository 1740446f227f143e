//! Events and webhooks: `--webhook-allow-private`
//! (`REGISTRY_WEBHOOK_ALLOW_PRIVATE`, `webhook_allow_private`),
//! `--audit-retention` (`REGISTRY_AUDIT_RETENTION`, `audit_retention`), and
//! the config file's `[[webhook]]` tables (cluster-wide sinks), onto the
//! library's [`EventsConfig`].

use std::path::PathBuf;

use registry::api::events::guard;
use registry::api::EventsConfig;
use registry::storage::{EventType, NewWebhook, PolicyDuration};
use serde::Deserialize;

/// The events flags.
#[derive(Debug, Default, clap::Args)]
pub struct EventFlags {
    /// Let webhooks reach loopback, private and link-local addresses (tests,
    /// internal receivers). Off by default: a webhook URL could otherwise
    /// reach services behind the registry (server-side request forgery).
    #[arg(long, env = "REGISTRY_WEBHOOK_ALLOW_PRIVATE")]
    pub webhook_allow_private: bool,
    /// How long events stay in the audit trail (`30d`, `2160h`)
    /// [default: 90d].
    #[arg(long, env = "REGISTRY_AUDIT_RETENTION", value_name = "DURATION")]
    pub audit_retention: Option<PolicyDuration>,
}

/// One `[[webhook]]` table: a sink that receives every namespace's events.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileWebhook {
    /// Where deliveries are POSTed.
    pub url: String,
    /// Event types (`io.registry.manifest.pushed`, …); absent for all.
    #[serde(default)]
    pub events: Vec<String>,
    /// File holding the signing secret (first line).
    pub secret_file: PathBuf,
    /// Whether pulls are sent too.
    #[serde(default)]
    pub include_pulls: bool,
}

/// Flags over the file: the library's settings, `source` left to the caller.
pub fn resolve(
    flags: EventFlags,
    file_allow_private: Option<bool>,
    file_retention: Option<PolicyDuration>,
    sinks: Vec<FileWebhook>,
) -> Result<EventsConfig, String> {
    let mut config = EventsConfig::default();
    config.allow_private = flags.webhook_allow_private || file_allow_private.unwrap_or(false);
    if let Some(retention) = flags.audit_retention.or(file_retention) {
        if retention.get().is_zero() {
            return Err("audit_retention must be longer than 0s".into());
        }
        config.retention = Some(retention.get());
    }
    for sink in sinks {
        config.sinks.push(sink_of(sink, config.allow_private)?);
    }
    Ok(config)
}

fn sink_of(sink: FileWebhook, allow_private: bool) -> Result<NewWebhook, String> {
    let at = |e: &dyn std::fmt::Display| format!("[[webhook]] {}: {e}", sink.url);
    guard::validate_url(&sink.url, allow_private).map_err(|e| at(&e))?;
    let mut events = Vec::new();
    for name in &sink.events {
        events.push(name.parse::<EventType>().map_err(|e| at(&e))?);
    }
    let secret = std::fs::read_to_string(&sink.secret_file).map_err(|e| {
        at(&format_args!(
            "cannot read secret_file {}: {e}",
            sink.secret_file.display()
        ))
    })?;
    let secret = secret.lines().next().unwrap_or("").trim().to_owned();
    if secret.len() < 16 {
        return Err(at(&format_args!(
            "the secret in {} must be at least 16 bytes",
            sink.secret_file.display()
        )));
    }
    Ok(NewWebhook {
        namespace: None,
        url: sink.url,
        events,
        secret,
        include_pulls: sink.include_pulls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "0123456789abcdef0123\n").unwrap();
        let sink = |url: &str, events: &[&str]| FileWebhook {
            url: url.into(),
            events: events.iter().map(|s| s.to_string()).collect(),
            secret_file: secret.clone(),
            include_pulls: false,
        };
        let ok = resolve(
            EventFlags::default(),
            None,
            None,
            vec![sink(
                "https://hooks.example.com/",
                &["io.registry.manifest.pushed"],
            )],
        )
        .unwrap();
        assert_eq!(ok.sinks[0].secret, "0123456789abcdef0123");
        assert!(!ok.allow_private);
        let private = resolve(
            EventFlags::default(),
            None,
            None,
            vec![sink("http://127.0.0.1:9/", &[])],
        );
        assert!(private.unwrap_err().contains("webhook-allow-private"));
        let allowed = EventFlags {
            webhook_allow_private: true,
            audit_retention: None,
        };
        assert!(resolve(allowed, None, None, vec![sink("http://127.0.0.1:9/", &[])]).is_ok());
        let unknown = resolve(
            EventFlags::default(),
            None,
            None,
            vec![sink("https://hooks.example.com/", &["nope"])],
        );
        assert!(unknown.unwrap_err().contains("unknown event type"));
    }
}
