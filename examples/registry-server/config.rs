//! Server settings: defaults < TOML config file < environment < flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use serde::Deserialize;

/// Command-line flags; each also reads an environment variable.
#[derive(Debug, Parser)]
#[command(
    name = "registry-server",
    about = "An OCI container image registry",
    version
)]
pub struct Flags {
    /// TOML config file.
    #[arg(long, env = "REGISTRY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:5000].
    #[arg(long, env = "REGISTRY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory for blobs, uploads and the SQLite database [default: ./data].
    #[arg(long, env = "REGISTRY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `fsync` (default: a pushed blob survives power loss) or `none`.
    #[arg(long, env = "REGISTRY_DURABILITY")]
    pub durability: Option<DurabilitySetting>,
    /// Log format: `text` (default) or `json`.
    #[arg(long, env = "REGISTRY_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Serve without authentication: anyone may pull, push and delete.
    /// Only for throwaway local registries.
    #[arg(long, env = "REGISTRY_NO_AUTH")]
    pub no_auth: bool,
    /// URL clients use to reach the registry (token realm, pull secrets).
    #[arg(long, env = "REGISTRY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// PEM certificate chain (leaf first): serve HTTPS. Needs --tls-key.
    #[arg(long, env = "REGISTRY_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, RSA or EC) of --tls-cert.
    #[arg(long, env = "REGISTRY_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Bounds on logins and what to trust from proxies.
    #[command(flatten)]
    pub auth_limits: AuthLimitFlags,
}

/// Flags bounding logins, and the proxies whose forwarded headers count.
#[derive(Debug, Default, clap::Args)]
pub struct AuthLimitFlags {
    /// Reverse proxies (CIDR list, comma-separated) whose `Forwarded` /
    /// `X-Forwarded-*` headers are believed [default: none].
    #[arg(long, env = "REGISTRY_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Option<Vec<String>>,
    /// argon2 password checks run at once [default: the CPU cores].
    #[arg(long, env = "REGISTRY_PASSWORD_CHECKS")]
    pub password_checks: Option<usize>,
    /// Milliseconds a login waits for a check slot before 429 [default: 500].
    #[arg(long, env = "REGISTRY_PASSWORD_CHECK_WAIT_MS")]
    pub password_check_wait_ms: Option<u64>,
    /// Failed logins per user name per minute before it is locked [default: 10; 0: off].
    #[arg(long, env = "REGISTRY_LOGIN_FAILURES_PER_USER")]
    pub login_failures_per_user: Option<u32>,
    /// Failed logins per peer address per minute before it is locked [default: 30; 0: off].
    #[arg(long, env = "REGISTRY_LOGIN_FAILURES_PER_PEER")]
    pub login_failures_per_peer: Option<u32>,
    /// Seconds a locked user name or address is refused [default: 60].
    #[arg(long, env = "REGISTRY_LOGIN_LOCKOUT_SECONDS")]
    pub login_lockout_seconds: Option<u64>,
    /// Days a managed pull-secret token lives (renewed with a third left) [default: 90].
    #[arg(long, env = "REGISTRY_PULL_SECRET_LIFETIME_DAYS")]
    pub pull_secret_lifetime_days: Option<u64>,
}

/// The durability setting.
#[derive(Debug, Clone, Copy, Deserialize, clap::ValueEnum, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DurabilitySetting {
    /// fsync blobs and their directories before acknowledging a push.
    Fsync,
    /// Leave flushing to the OS (as CNCF Distribution does).
    None,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, Deserialize, clap::ValueEnum, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The config file's shape; every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on.
    pub listen: Option<SocketAddr>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Durability.
    pub durability: Option<DurabilitySetting>,
    /// Log format.
    pub log_format: Option<LogFormat>,
    /// `false` serves without authentication.
    pub auth: Option<bool>,
    /// URL clients use to reach the registry.
    pub public_url: Option<String>,
    /// PEM certificate chain: serve HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Namespaces whose service accounts get no managed pull secret
    /// (exact names or `prefix*`).
    #[serde(default)]
    pub ignored_namespaces: Vec<String>,
    /// Reverse proxies (CIDR) whose forwarded headers are believed.
    pub trusted_proxies: Option<Vec<String>>,
    /// argon2 password checks run at once.
    pub password_checks: Option<usize>,
    /// Milliseconds a login waits for a check slot.
    pub password_check_wait_ms: Option<u64>,
    /// Failed logins per user name per minute before a lock.
    pub login_failures_per_user: Option<u32>,
    /// Failed logins per peer address per minute before a lock.
    pub login_failures_per_peer: Option<u32>,
    /// Seconds a lock lasts.
    pub login_lockout_seconds: Option<u64>,
    /// Days a managed pull-secret token lives.
    pub pull_secret_lifetime_days: Option<u64>,
}

/// Login bounds and trusted proxies in force (unset: the library defaults).
#[derive(Debug, Default)]
pub struct AuthLimits {
    /// Reverse proxies (CIDR) whose forwarded headers are believed.
    pub trusted_proxies: Vec<String>,
    /// argon2 password checks run at once.
    pub password_checks: Option<usize>,
    /// Milliseconds a login waits for a check slot.
    pub password_check_wait_ms: Option<u64>,
    /// Failed logins per user name per minute before a lock.
    pub login_failures_per_user: Option<u32>,
    /// Failed logins per peer address per minute before a lock.
    pub login_failures_per_peer: Option<u32>,
    /// Seconds a lock lasts.
    pub login_lockout_seconds: Option<u64>,
    /// Days a managed pull-secret token lives.
    pub pull_secret_lifetime_days: Option<u64>,
}

impl AuthLimits {
    fn merge(flags: AuthLimitFlags, file: &FileConfig) -> Self {
        AuthLimits {
            trusted_proxies: flags
                .trusted_proxies
                .or_else(|| file.trusted_proxies.clone())
                .unwrap_or_default(),
            password_checks: flags.password_checks.or(file.password_checks),
            password_check_wait_ms: flags.password_check_wait_ms.or(file.password_check_wait_ms),
            login_failures_per_user: flags
                .login_failures_per_user
                .or(file.login_failures_per_user),
            login_failures_per_peer: flags
                .login_failures_per_peer
                .or(file.login_failures_per_peer),
            login_lockout_seconds: flags.login_lockout_seconds.or(file.login_lockout_seconds),
            pull_secret_lifetime_days: flags
                .pull_secret_lifetime_days
                .or(file.pull_secret_lifetime_days),
        }
    }
}

/// The settings in force.
#[derive(Debug)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Durability.
    pub durability: DurabilitySetting,
    /// Log format.
    pub log_format: LogFormat,
    /// Whether authentication and access control are on.
    pub auth: bool,
    /// URL clients use to reach the registry, if configured.
    pub public_url: Option<String>,
    /// Certificate and key files when serving HTTPS.
    pub tls: Option<TlsFiles>,
    /// Namespaces without managed pull secrets.
    pub ignored_namespaces: Vec<String>,
    /// Login bounds and trusted proxies.
    pub auth_limits: AuthLimits,
}

/// The PEM files of an HTTPS server.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// Certificate chain, leaf first.
    pub cert: PathBuf,
    /// Private key.
    pub key: PathBuf,
}

impl Settings {
    /// Merges flags (and their env vars) over the config file over defaults.
    pub fn load(flags: Flags) -> Result<Settings, String> {
        let file = match &flags.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| format!("config file {}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let auth_limits = AuthLimits::merge(flags.auth_limits, &file);
        let tls = match (
            flags.tls_cert.or(file.tls_cert),
            flags.tls_key.or(file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            (Some(_), None) => {
                return Err("a TLS certificate needs its key: give --tls-key FILE \
                     (REGISTRY_TLS_KEY, tls_key) too, or neither"
                    .into())
            }
            (None, Some(_)) => {
                return Err("a TLS key needs its certificate: give --tls-cert FILE \
                     (REGISTRY_TLS_CERT, tls_cert) too, or neither"
                    .into())
            }
        };
        Ok(Settings {
            auth_limits,
            listen: flags
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5000))),
            data_dir: flags
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./data")),
            durability: flags
                .durability
                .or(file.durability)
                .unwrap_or(DurabilitySetting::Fsync),
            log_format: flags
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            auth: !flags.no_auth && file.auth.unwrap_or(true),
            public_url: flags.public_url.or(file.public_url),
            tls,
            ignored_namespaces: file.ignored_namespaces,
        })
    }
}
