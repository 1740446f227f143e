//! Proxy namespaces: `--proxy NAMESPACE=URL` (repeatable; `REGISTRY_PROXY`
//! takes a comma-separated list) and the config file's `[[proxy]]` tables,
//! onto the library's [`ProxyConfig`].

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use registry::api::proxy::ProxyConfig;
use registry::core::Namespace;
use serde::Deserialize;

/// The proxy flags.
#[derive(Debug, Default, clap::Args)]
pub struct ProxyFlags {
    /// A proxy namespace standing for an upstream registry, pulled through
    /// anonymously: `hub=https://registry-1.docker.io` (repeatable;
    /// credentials, CA, TTL and mirror hosts in the config file's
    /// `[[proxy]]` tables).
    #[arg(
        long = "proxy",
        env = "REGISTRY_PROXY",
        value_name = "NAMESPACE=URL",
        value_delimiter = ','
    )]
    pub proxy: Vec<ProxyFlag>,
}

/// One `--proxy NAMESPACE=URL`.
#[derive(Debug, Clone)]
pub struct ProxyFlag {
    namespace: Namespace,
    upstream: url::Url,
}

/// Why a `--proxy` value is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ProxyFlagError {
    /// No `=`.
    #[error("{0:?} is not NAMESPACE=URL (for example hub=https://registry-1.docker.io)")]
    Shape(String),
    /// The namespace is not a valid one.
    #[error("{value:?}: invalid namespace {namespace:?}: {source}")]
    Namespace {
        /// The whole value.
        value: String,
        /// The namespace part.
        namespace: String,
        /// Why.
        #[source]
        source: registry::core::NameError,
    },
    /// The URL does not parse.
    #[error("{value:?}: invalid upstream URL {url:?}: {source}")]
    Url {
        /// The whole value.
        value: String,
        /// The URL part.
        url: String,
        /// Why.
        #[source]
        source: url::ParseError,
    },
    /// Not http(s).
    #[error("{value:?}: the upstream URL must start with https:// or http://")]
    Scheme {
        /// The whole value.
        value: String,
    },
}

impl FromStr for ProxyFlag {
    type Err = ProxyFlagError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let (ns, url) = value
            .split_once('=')
            .ok_or_else(|| ProxyFlagError::Shape(value.to_owned()))?;
        let namespace = ns
            .trim()
            .parse()
            .map_err(|source| ProxyFlagError::Namespace {
                value: value.to_owned(),
                namespace: ns.to_owned(),
                source,
            })?;
        let upstream: url::Url = url.trim().parse().map_err(|source| ProxyFlagError::Url {
            value: value.to_owned(),
            url: url.to_owned(),
            source,
        })?;
        if !matches!(upstream.scheme(), "http" | "https") {
            return Err(ProxyFlagError::Scheme {
                value: value.to_owned(),
            });
        }
        Ok(ProxyFlag {
            namespace,
            upstream,
        })
    }
}

/// A `[[proxy]]` table of the config file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileProxy {
    /// The proxy namespace.
    pub namespace: Namespace,
    /// The upstream's base URL.
    pub upstream: String,
    /// User name presented upstream.
    pub username: Option<String>,
    /// File holding the password or token presented upstream.
    pub password_file: Option<PathBuf>,
    /// Extra CA certificates (PEM) for the upstream.
    pub ca_file: Option<PathBuf>,
    /// How long a cached tag is served before it is revalidated (`5m`).
    pub tag_ttl: Option<registry::storage::PolicyDuration>,
    /// Registry hosts it stands for in containerd's mirror mode.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Seconds connecting to the upstream may take.
    pub connect_timeout_secs: Option<u64>,
    /// Seconds the upstream may stay silent.
    pub read_timeout_secs: Option<u64>,
    /// Repositories (and tag globs) to mirror ahead of time:
    /// `["library/alpine:3.*"]`.
    #[serde(default)]
    pub sync: Vec<String>,
    /// How often `sync` runs (`1h`).
    pub sync_interval: Option<registry::storage::PolicyDuration>,
}

/// The proxy namespaces of the flags and the config file.
pub fn resolve(flags: ProxyFlags, file: Vec<FileProxy>) -> Result<Vec<ProxyConfig>, String> {
    let mut out: Vec<ProxyConfig> = flags
        .proxy
        .into_iter()
        .map(|f| ProxyConfig::new(f.namespace, f.upstream))
        .collect();
    for table in file {
        let ns = table.namespace.clone();
        if out.iter().any(|c| c.namespace == ns) {
            return Err(format!(
                "proxy namespace {ns} is configured twice (--proxy / REGISTRY_PROXY and a \
                 [[proxy]] table, or two tables)"
            ));
        }
        let upstream: url::Url = table.upstream.parse().map_err(|e| {
            format!(
                "[[proxy]] {ns}: invalid upstream URL {:?}: {e}",
                table.upstream
            )
        })?;
        if !matches!(upstream.scheme(), "http" | "https") {
            return Err(format!(
                "[[proxy]] {ns}: upstream {upstream} must start with https:// or http://"
            ));
        }
        let mut config = ProxyConfig::new(ns.clone(), upstream);
        config.username = table.username;
        if let Some(path) = table.password_file {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!(
                    "[[proxy]] {ns}: cannot read password_file {}: {e}",
                    path.display()
                )
            })?;
            config.password = Some(text.trim_end_matches(['\r', '\n']).to_owned());
            if config.username.is_none() {
                return Err(format!("[[proxy]] {ns}: password_file needs a username"));
            }
        }
        if let Some(path) = table.ca_file {
            let pem = std::fs::read(&path).map_err(|e| {
                format!(
                    "[[proxy]] {ns}: cannot read ca_file {}: {e}",
                    path.display()
                )
            })?;
            config.ca_pem = Some(pem);
        }
        if let Some(ttl) = table.tag_ttl {
            config.tag_ttl = ttl.get();
        }
        config.hosts = table.hosts;
        for rule in &table.sync {
            let rule = rule.parse().map_err(|e| format!("[[proxy]] {ns}: {e}"))?;
            config.sync.push(rule);
        }
        config.sync_interval = match (table.sync_interval, config.sync.is_empty()) {
            (Some(d), _) if d.get().is_zero() => {
                return Err(format!(
                    "[[proxy]] {ns}: sync_interval must be longer than 0s"
                ))
            }
            (Some(_), true) => {
                return Err(format!(
                    "[[proxy]] {ns}: sync_interval without sync rules (sync = [\"repo:glob\"])"
                ))
            }
            (None, false) => {
                return Err(format!(
                    "[[proxy]] {ns}: sync rules need a sync_interval (\"1h\")"
                ))
            }
            (interval, _) => interval.map(|d| d.get()),
        };
        for (secs, field, slot) in [
            (
                table.connect_timeout_secs,
                "connect_timeout_secs",
                &mut config.connect_timeout,
            ),
            (
                table.read_timeout_secs,
                "read_timeout_secs",
                &mut config.read_timeout,
            ),
        ] {
            match secs {
                Some(0) => return Err(format!("[[proxy]] {ns}: {field} must be at least 1")),
                Some(s) => *slot = Duration::from_secs(s),
                None => {}
            }
        }
        out.push(config);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(value: &str) -> String {
        value.parse::<ProxyFlag>().unwrap_err().to_string()
    }

    #[test]
    fn bad_proxy_flags_say_what_is_wrong() {
        assert!(err("hub").contains("is not NAMESPACE=URL"));
        assert!(err("Hub=https://registry-1.docker.io").contains("invalid namespace \"Hub\""));
        assert!(err("hub=registry-1.docker.io").contains("invalid upstream URL"));
        assert!(err("hub=ftp://mirror.example").contains("https:// or http://"));
        let ok: ProxyFlag = "hub=https://registry-1.docker.io".parse().unwrap();
        assert_eq!(ok.namespace.as_str(), "hub");
    }

    #[test]
    fn tables_and_flags_merge_and_duplicates_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("password");
        std::fs::write(&password, "s3cret\n").unwrap();
        let text = format!(
            r#"
            [[proxy]]
            namespace = "quay"
            upstream = "https://quay.io"
            username = "robot"
            password_file = "{}"
            tag_ttl = "10m"
            hosts = ["quay.io"]
            sync = ["coreos/etcd:v3.*", "prometheus/prometheus"]
            sync_interval = "1h"
            "#,
            password.display()
        );
        #[derive(Deserialize)]
        struct Doc {
            proxy: Vec<FileProxy>,
        }
        let doc: Doc = toml::from_str(&text).unwrap();
        let flags = ProxyFlags {
            proxy: vec!["hub=https://registry-1.docker.io".parse().unwrap()],
        };
        let configs = resolve(flags, doc.proxy).unwrap();
        assert_eq!(configs.len(), 2);
        assert_eq!(configs[1].password.as_deref(), Some("s3cret"));
        assert_eq!(configs[1].tag_ttl, Duration::from_secs(600));
        assert_eq!(configs[1].sync.len(), 2);
        assert_eq!(configs[1].sync_interval, Some(Duration::from_secs(3600)));
        let no_interval: Doc = toml::from_str(&text.replace("sync_interval = \"1h\"", "")).unwrap();
        let flags = ProxyFlags::default();
        assert!(resolve(flags, no_interval.proxy)
            .unwrap_err()
            .contains("need a sync_interval"));
        let bad_rule: Doc = toml::from_str(&text.replace("coreos/etcd:v3.*", "Etcd")).unwrap();
        let message = resolve(ProxyFlags::default(), bad_rule.proxy).unwrap_err();
        assert!(message.contains("invalid repository"), "{message}");

        let doc: Doc = toml::from_str(&text.replace("quay\"\n", "hub\"\n")).unwrap();
        let flags = ProxyFlags {
            proxy: vec!["hub=https://registry-1.docker.io".parse().unwrap()],
        };
        assert!(resolve(flags, doc.proxy).unwrap_err().contains("twice"));
        let bad = toml::from_str::<Doc>(
            "[[proxy]]\nnamespace = \"hub\"\nupstream = \"https://x.io\"\ntag_ttl = \"5 minutes\"\n",
        );
        assert!(bad.is_err());
    }
}
