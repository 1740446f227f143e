//! Server settings: defaults < TOML config file < environment < flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::flags::{AuthLimitFlags, Flags};
use crate::serve::ServeSettings;
use crate::token_config::TokenOptions;

/// The durability setting.
#[derive(Debug, Clone, Copy, Deserialize, clap::ValueEnum, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DurabilitySetting {
    /// fsync blobs and their directories before acknowledging a push.
    Fsync,
    /// Leave flushing to the OS (as CNCF Distribution does).
    None,
}

/// A PostgreSQL URL (`postgres://` or `postgresql://`), checked when read;
/// shown without its password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(url::Url);

impl DatabaseUrl {
    /// The URL, password included, for connecting.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl std::str::FromStr for DatabaseUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let url = url::Url::parse(s).map_err(|e| {
            format!("database URL is not a URL ({e}); expected postgres://user:password@host:port/database")
        })?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            return Err(format!(
                "database URL has scheme {:?}; only postgres:// (or postgresql://) is supported",
                url.scheme()
            ));
        }
        Ok(DatabaseUrl(url))
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl std::fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = self.0.clone();
        if shown.password().is_some() {
            let _ = shown.set_password(Some("***"));
        }
        f.write_str(shown.as_str())
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
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
    /// Most connections open at once.
    pub max_connections: Option<u32>,
    /// Seconds from a request's first byte until its headers are complete.
    pub header_read_timeout_secs: Option<u64>,
    /// Seconds an idle connection stays open.
    pub idle_timeout_secs: Option<u64>,
    /// Seconds a request body may go without a byte.
    pub body_idle_timeout_secs: Option<u64>,
    /// Scheduled prunes (`24h`).
    pub prune_interval: Option<registry::storage::PolicyDuration>,
    /// Seconds a TLS handshake may take.
    pub tls_handshake_timeout_secs: Option<u64>,
    /// Seconds requests in flight get to finish at shutdown.
    pub shutdown_timeout_secs: Option<u64>,
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Where blobs live: `filesystem` or `s3`.
    pub storage: Option<crate::storage_config::StorageKind>,
    /// S3 endpoint of a non-AWS server.
    pub s3_endpoint: Option<String>,
    /// S3 bucket.
    pub s3_bucket: Option<String>,
    /// S3 region.
    pub s3_region: Option<String>,
    /// Key prefix inside the bucket.
    pub s3_prefix: Option<String>,
    /// Leave request bodies out of the S3 signature.
    pub s3_unsigned_payload: Option<bool>,
    /// Durability.
    pub durability: Option<DurabilitySetting>,
    /// PostgreSQL for metadata and auth records (`postgres://…`).
    pub database_url: Option<DatabaseUrl>,
    /// Log format.
    pub log_format: Option<LogFormat>,
    /// `false` serves without authentication.
    pub auth: Option<bool>,
    /// `false` turns the web UI at `/ui/` off.
    pub ui: Option<bool>,
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
    /// Proxy namespaces: `[[proxy]]` tables.
    #[serde(default)]
    pub proxy: Vec<crate::proxy_config::FileProxy>,
    /// Cluster-wide webhook sinks: `[[webhook]]` tables.
    #[serde(default)]
    pub webhook: Vec<crate::events_config::FileWebhook>,
    /// Let webhooks reach private addresses.
    pub webhook_allow_private: Option<bool>,
    /// How long events stay in the audit trail.
    pub audit_retention: Option<registry::storage::PolicyDuration>,
    /// Most upload requests streaming in at once per user.
    pub max_uploads_per_user: Option<usize>,
    /// Most upload sessions one user may have open.
    pub max_open_uploads_per_user: Option<usize>,
    /// Seconds without a byte after which an upload session is cancelled.
    pub upload_idle_timeout_secs: Option<u64>,
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
    /// OpenID Connect issuer (https).
    pub oidc_issuer_url: Option<String>,
    /// The audience OIDC ID tokens must name.
    pub oidc_client_id: Option<String>,
    /// The claim that names OIDC users.
    pub oidc_username_claim: Option<String>,
    /// Put before OIDC user names (`-` for none).
    pub oidc_username_prefix: Option<String>,
    /// The claim holding OIDC groups (`-` for none).
    pub oidc_groups_claim: Option<String>,
    /// Put before OIDC group names (`-` for none).
    pub oidc_groups_prefix: Option<String>,
    /// PEM CA certificates for the OIDC issuer.
    pub oidc_ca_file: Option<PathBuf>,

    // Identity providers: htpasswd and LDAP (see `directory.rs`).
    /// htpasswd file (bcrypt entries).
    pub htpasswd: Option<PathBuf>,
    /// LDAP server URL (`ldap://` or `ldaps://`).
    pub ldap_url: Option<String>,
    /// DN the registry binds as to search.
    pub ldap_bind_dn: Option<String>,
    /// File holding the bind DN's password.
    pub ldap_bind_password_file: Option<PathBuf>,
    /// Base DN of the user search.
    pub ldap_user_base: Option<String>,
    /// User search filter (`{username}`).
    pub ldap_user_filter: Option<String>,
    /// Base DN of the group search.
    pub ldap_group_base: Option<String>,
    /// Group search filter (`{dn}`, `{username}`).
    pub ldap_group_filter: Option<String>,
    /// Upgrade `ldap://` with StartTLS.
    pub ldap_start_tls: Option<bool>,
    /// PEM CA certificates of the LDAP server.
    pub ldap_ca_file: Option<PathBuf>,
    /// Seconds for connecting and for each LDAP operation.
    pub ldap_timeout_secs: Option<u64>,

    /// This registry's service name (token audience).
    pub token_service: Option<String>,
    /// The `iss` of registry tokens.
    pub token_issuer: Option<String>,
    /// Services of registries that use this one as their token server.
    pub token_accepted_services: Option<Vec<String>>,
    /// Seconds a registry token lives.
    pub token_ttl_secs: Option<u64>,
    /// Days a token-signing key signs.
    pub token_key_rotation_days: Option<u64>,
    /// Days a refresh token of a local user lives.
    pub refresh_token_lifetime_days: Option<u64>,
    /// Hours a refresh token of an external identity lives.
    pub external_refresh_token_lifetime_hours: Option<u64>,
}

/// The library's auth settings: flags over the config file over the
/// library's defaults.
fn auth_settings(
    flags: AuthLimitFlags,
    file: &FileConfig,
) -> Result<registry::api::AuthSettings, String> {
    let mut out = registry::api::AuthSettings::default();
    out.trusted_proxies = flags
        .trusted_proxies
        .or_else(|| file.trusted_proxies.clone())
        .unwrap_or_default()
        .iter()
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            p.parse()
                .map_err(|e| format!("trusted proxies: {e} (expected CIDR like 10.0.0.0/8)"))
        })
        .collect::<Result<_, _>>()?;
    let login = &mut out.login;
    if let Some(n) = flags.password_checks.or(file.password_checks) {
        if n == 0 {
            return Err("password checks must be at least 1".into());
        }
        login.password_checks = n;
    }
    if let Some(ms) = flags.password_check_wait_ms.or(file.password_check_wait_ms) {
        login.password_check_wait = Duration::from_millis(ms);
    }
    if let Some(n) = flags
        .login_failures_per_user
        .or(file.login_failures_per_user)
    {
        login.failures_per_user = n;
    }
    if let Some(n) = flags
        .login_failures_per_peer
        .or(file.login_failures_per_peer)
    {
        login.failures_per_peer = n;
    }
    if let Some(s) = flags.login_lockout_seconds.or(file.login_lockout_seconds) {
        login.lockout = Duration::from_secs(s);
    }
    if let Some(days) = flags
        .pull_secret_lifetime_days
        .or(file.pull_secret_lifetime_days)
    {
        if !(1..=3650).contains(&days) {
            return Err(format!(
                "pull secret lifetime must be between 1 and 3650 days, not {days}"
            ));
        }
        out.pull_secret_lifetime = Duration::from_secs(days * 24 * 3600);
    }
    Ok(out)
}

/// The settings in force.
#[derive(Debug)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Connection cap and timeouts.
    pub serve: ServeSettings,
    /// How long a request body may go without a byte.
    pub body_idle_timeout: Duration,
    /// How often a scheduled prune runs, if at all.
    pub prune_interval: Option<Duration>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Where blobs live.
    pub storage: crate::storage_config::StorageSetting,
    /// Durability.
    pub durability: DurabilitySetting,
    /// PostgreSQL for metadata and auth records, if not SQLite.
    pub database_url: Option<DatabaseUrl>,
    /// Log format.
    pub log_format: LogFormat,
    /// Whether authentication and access control are on.
    pub auth: bool,
    /// Whether the web UI is served at `/ui/`.
    pub ui: bool,
    /// URL clients use to reach the registry, if configured.
    pub public_url: Option<String>,
    /// Certificate and key files when serving HTTPS.
    pub tls: Option<TlsFiles>,
    /// Namespaces without managed pull secrets.
    pub ignored_namespaces: Vec<String>,
    /// Login bounds, trusted proxies and pull-secret lifetime.
    pub auth_settings: registry::api::AuthSettings,
    /// Registry-token names, lifetimes and key rotation.
    pub tokens: TokenOptions,
    /// Upload limits (the rest of the library's defaults stay).
    pub upload_limits: UploadLimits,
    /// The OpenID Connect identity provider, when an issuer is set.
    pub oidc: Option<registry::auth::oidc::OidcConfig>,
    /// The htpasswd and LDAP providers configured.
    pub directory: crate::directory::DirectorySettings,
    /// Proxy namespaces.
    pub proxies: Vec<registry::api::proxy::ProxyConfig>,
    /// Events and webhooks (`source` is set when the listener is known).
    pub events: registry::api::EventsConfig,
}

/// The upload limits an operator can set.
#[derive(Debug, Clone, Copy)]
pub struct UploadLimits {
    /// Upload requests streaming in at once per user.
    pub per_user: usize,
    /// Open upload sessions per user.
    pub open_per_user: usize,
    /// Cancel a session after this long without a byte.
    pub idle_timeout: std::time::Duration,
}

impl UploadLimits {
    /// Applies these over `limits`.
    pub fn apply(self, mut limits: registry::api::Limits) -> registry::api::Limits {
        limits.max_concurrent_uploads_per_user = self.per_user;
        limits.max_open_uploads_per_user = self.open_per_user;
        limits.upload_idle_timeout = self.idle_timeout;
        limits
    }
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
        let mut file = match &flags.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
                toml::from_str::<FileConfig>(&text)
                    .map_err(|e| format!("config file {}: {e}", path.display()))?
            }
            None => FileConfig::default(),
        };
        let auth_settings = auth_settings(flags.auth_limits, &file)?;
        let oidc = crate::oidc::settings(flags.oidc, &file)?;
        let directory = crate::directory::resolve(flags.directory, &file)?;
        let auth = !flags.no_auth && file.auth.unwrap_or(true);
        if !auth && directory.any() {
            return Err(
                "htpasswd and LDAP users need access control: they cannot be \
                        combined with --no-auth (REGISTRY_NO_AUTH, auth = false)"
                    .into(),
            );
        }
        let tokens = TokenOptions::load(flags.tokens, &file)?;
        let proxies = crate::proxy_config::resolve(flags.proxy, std::mem::take(&mut file.proxy))?;
        let events = crate::events_config::resolve(
            flags.events,
            file.webhook_allow_private,
            file.audit_retention,
            std::mem::take(&mut file.webhook),
        )?;
        let storage = crate::storage_config::StorageSetting::load(flags.storage, &file)?;
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
        let serve = ServeSettings {
            max_connections: positive(
                flags.max_connections,
                file.max_connections,
                1024,
                "max_connections",
            )? as usize,
            header_read_timeout: seconds(
                flags.header_read_timeout_secs,
                file.header_read_timeout_secs,
                30,
                "header_read_timeout_secs",
            )?,
            idle_timeout: seconds(
                flags.idle_timeout_secs,
                file.idle_timeout_secs,
                75,
                "idle_timeout_secs",
            )?,
            tls_handshake_timeout: seconds(
                flags.tls_handshake_timeout_secs,
                file.tls_handshake_timeout_secs,
                10,
                "tls_handshake_timeout_secs",
            )?,
            shutdown_timeout: seconds(
                flags.shutdown_timeout_secs,
                file.shutdown_timeout_secs,
                30,
                "shutdown_timeout_secs",
            )?,
        };
        let body_idle_timeout = seconds(
            flags.body_idle_timeout_secs,
            file.body_idle_timeout_secs,
            60,
            "body_idle_timeout_secs",
        )?;
        let prune_interval =
            match flags.prune_interval.or(file.prune_interval) {
                Some(d) if d.get().is_zero() => return Err(
                    "prune_interval must be longer than 0s (leave it unset for no scheduled prune)"
                        .into(),
                ),
                d => d.map(|d| d.get()),
            };
        let limits = registry::api::Limits::default();
        Ok(Settings {
            prune_interval,
            auth_settings,
            oidc,
            tokens,
            storage,
            listen: flags
                .listen
                .or(file.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 5000))),
            serve,
            body_idle_timeout,
            data_dir: flags
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./data")),
            durability: flags
                .durability
                .or(file.durability)
                .unwrap_or(DurabilitySetting::Fsync),
            database_url: flags.database_url.or(file.database_url),
            log_format: flags
                .log_format
                .or(file.log_format)
                .unwrap_or(LogFormat::Text),
            auth,
            ui: !flags.no_ui && file.ui.unwrap_or(true),
            public_url: flags.public_url.or(file.public_url),
            tls,
            ignored_namespaces: file.ignored_namespaces,
            upload_limits: UploadLimits {
                per_user: positive(
                    flags.max_uploads_per_user,
                    file.max_uploads_per_user,
                    limits.max_concurrent_uploads_per_user,
                    "max_uploads_per_user",
                )?,
                open_per_user: positive(
                    flags.max_open_uploads_per_user,
                    file.max_open_uploads_per_user,
                    limits.max_open_uploads_per_user,
                    "max_open_uploads_per_user",
                )?,
                idle_timeout: seconds(
                    flags.upload_idle_timeout_secs,
                    file.upload_idle_timeout_secs,
                    limits.upload_idle_timeout.as_secs(),
                    "upload_idle_timeout_secs",
                )?,
            },
            directory,
            proxies,
            events,
        })
    }
}

/// A flag (or its env var) over the config file over `default`; zero is
/// refused (flags and env vars are range-checked by clap already).
fn positive<T: Copy + Default + PartialEq>(
    flag: Option<T>,
    file: Option<T>,
    default: T,
    field: &str,
) -> Result<T, String> {
    let value = flag.or(file).unwrap_or(default);
    if value == T::default() {
        return Err(format!("config file: {field} must be at least 1"));
    }
    Ok(value)
}

/// [`positive`] in seconds.
fn seconds(
    flag: Option<u64>,
    file: Option<u64>,
    default: u64,
    field: &str,
) -> Result<Duration, String> {
    positive(flag, file, default, field).map(Duration::from_secs)
}
