//! The server's command-line flags; each also reads a `REGISTRY_*`
//! environment variable. [`Settings::load`](crate::config::Settings::load)
//! lays them over the config file and the defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

use crate::config::{DatabaseUrl, DurabilitySetting, LogFormat};
use crate::token_config::TokenFlags;

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
    /// Most connections open at once; more wait in the kernel's listen
    /// backlog until one closes [default: 1024].
    #[arg(long, env = "REGISTRY_MAX_CONNECTIONS", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: Option<u32>,
    /// Seconds from a request's first byte until its headers must be
    /// complete [default: 30].
    #[arg(long, env = "REGISTRY_HEADER_READ_TIMEOUT_SECS", value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds a connection may stay open with no request in progress and
    /// no response byte written (idle keep-alive, a client that stopped
    /// reading) [default: 75].
    #[arg(long, env = "REGISTRY_IDLE_TIMEOUT_SECS", value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout_secs: Option<u64>,
    /// Prune on a schedule: every DURATION (`30m`, `24h`, `7d`), apply the
    /// namespaces' retention rules and sweep the blobs nothing references
    /// [default: off; `registryctl prune` runs one now].
    #[arg(long, env = "REGISTRY_PRUNE_INTERVAL", value_name = "DURATION")]
    pub prune_interval: Option<registry::storage::PolicyDuration>,
    /// Seconds a request body may go without a byte before the request ends
    /// (408) and its upload rolls back [default: 60].
    #[arg(long, env = "REGISTRY_BODY_IDLE_TIMEOUT_SECS", value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub body_idle_timeout_secs: Option<u64>,
    /// Seconds a client may take for its TLS handshake [default: 10].
    #[arg(long, env = "REGISTRY_TLS_HANDSHAKE_TIMEOUT_SECS", value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub tls_handshake_timeout_secs: Option<u64>,
    /// Seconds requests in flight get to finish after SIGINT or SIGTERM
    /// [default: 30].
    #[arg(long, env = "REGISTRY_SHUTDOWN_TIMEOUT_SECS", value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    pub shutdown_timeout_secs: Option<u64>,
    /// Data directory for blobs, uploads and the SQLite database [default: ./data].
    #[arg(long, env = "REGISTRY_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `fsync` (default: a pushed blob survives power loss) or `none`.
    #[arg(long, env = "REGISTRY_DURABILITY")]
    pub durability: Option<DurabilitySetting>,
    /// Keep metadata and auth records in PostgreSQL
    /// (`postgres://user:password@host:port/database`) instead of SQLite in
    /// the data directory; replicas share the database [default: SQLite].
    #[arg(long, env = "REGISTRY_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<DatabaseUrl>,
    /// Log format: `text` (default) or `json`.
    #[arg(long, env = "REGISTRY_LOG_FORMAT")]
    pub log_format: Option<LogFormat>,
    /// Serve without authentication: anyone may pull, push and delete.
    /// Only for throwaway local registries.
    #[arg(long, env = "REGISTRY_NO_AUTH")]
    pub no_auth: bool,
    /// Do not serve the web UI at `/ui/`.
    #[arg(long, env = "REGISTRY_NO_UI")]
    pub no_ui: bool,
    /// URL clients use to reach the registry (token realm, pull secrets).
    #[arg(long, env = "REGISTRY_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// PEM certificate chain (leaf first): serve HTTPS. Needs --tls-key.
    #[arg(long, env = "REGISTRY_TLS_CERT", value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, RSA or EC) of --tls-cert.
    #[arg(long, env = "REGISTRY_TLS_KEY", value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Most upload requests streaming in at once per user [default: 32].
    #[arg(long, env = "REGISTRY_MAX_UPLOADS_PER_USER", value_name = "N")]
    pub max_uploads_per_user: Option<usize>,
    /// Most upload sessions one user may have open [default: 1000].
    #[arg(long, env = "REGISTRY_MAX_OPEN_UPLOADS_PER_USER", value_name = "N")]
    pub max_open_uploads_per_user: Option<usize>,
    /// Seconds without a byte after which an upload session is cancelled
    /// [default: 3600].
    #[arg(
        long,
        env = "REGISTRY_UPLOAD_IDLE_TIMEOUT_SECS",
        value_name = "SECONDS"
    )]
    pub upload_idle_timeout_secs: Option<u64>,
    /// Bounds on logins and what to trust from proxies.
    #[command(flatten)]
    pub auth_limits: AuthLimitFlags,
    /// The OpenID Connect identity provider.
    #[command(flatten)]
    pub oidc: crate::oidc::OidcFlags,
    /// Identity providers: an htpasswd file, an LDAP server.
    #[command(flatten)]
    pub directory: crate::directory::DirectoryFlags,
    /// Registry tokens: names, lifetimes, key rotation.
    #[command(flatten)]
    pub tokens: TokenFlags,
    /// Where blobs live: the data directory or an S3 bucket.
    #[command(flatten)]
    pub storage: crate::storage_config::StorageFlags,
    /// Proxy namespaces (pull-through caches of upstream registries).
    #[command(flatten)]
    pub proxy: crate::proxy_config::ProxyFlags,
    /// Events, webhooks and the audit trail.
    #[command(flatten)]
    pub events: crate::events_config::EventFlags,
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
