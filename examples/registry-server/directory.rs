//! Identity providers from a directory the operator already has: an
//! htpasswd file and an LDAP server. Flags (and their `REGISTRY_*`
//! variables) over the TOML file; checked at startup, built into
//! providers that `auth_setup` puts before the registry's own users.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use registry::auth::htpasswd::HtpasswdProvider;
use registry::auth::ldap::{LdapConfig, LdapProvider, DEFAULT_GROUP_FILTER, DEFAULT_USER_FILTER};
use registry::auth::{Authenticate, LoginGuard, Password};

use crate::config::FileConfig;

/// Flags of the htpasswd and LDAP providers.
#[derive(Debug, Default, clap::Args)]
pub struct DirectoryFlags {
    /// htpasswd file of users (bcrypt entries, `htpasswd -B`), re-read when
    /// it changes; users are `htpasswd:<name>`.
    #[arg(long, env = "REGISTRY_HTPASSWD", value_name = "FILE")]
    pub htpasswd: Option<PathBuf>,
    /// LDAP server: `ldap://host[:port]` or `ldaps://host[:port]`; users are
    /// `ldap:<uid>`, groups `ldap:<cn>`.
    #[arg(long, env = "REGISTRY_LDAP_URL", value_name = "URL")]
    pub ldap_url: Option<String>,
    /// DN the registry binds as to search [default: anonymous searches].
    #[arg(long, env = "REGISTRY_LDAP_BIND_DN", value_name = "DN")]
    pub ldap_bind_dn: Option<String>,
    /// File holding the password of --ldap-bind-dn.
    #[arg(long, env = "REGISTRY_LDAP_BIND_PASSWORD_FILE", value_name = "FILE")]
    pub ldap_bind_password_file: Option<PathBuf>,
    /// Base DN users are searched under (required with --ldap-url).
    #[arg(long, env = "REGISTRY_LDAP_USER_BASE", value_name = "DN")]
    pub ldap_user_base: Option<String>,
    /// User search filter; `{username}` is the login name, escaped
    /// [default: (uid={username})].
    #[arg(long, env = "REGISTRY_LDAP_USER_FILTER", value_name = "FILTER")]
    pub ldap_user_filter: Option<String>,
    /// Base DN groups are searched under [default: no groups].
    #[arg(long, env = "REGISTRY_LDAP_GROUP_BASE", value_name = "DN")]
    pub ldap_group_base: Option<String>,
    /// Group search filter; `{dn}` is the user's DN, `{username}` the login
    /// name, both escaped [default: (member={dn})].
    #[arg(long, env = "REGISTRY_LDAP_GROUP_FILTER", value_name = "FILTER")]
    pub ldap_group_filter: Option<String>,
    /// Upgrade the ldap:// connection with StartTLS.
    #[arg(long, env = "REGISTRY_LDAP_START_TLS")]
    pub ldap_start_tls: bool,
    /// PEM CA certificates that verify the LDAP server (LDAPS, StartTLS)
    /// [default: the system's].
    #[arg(long, env = "REGISTRY_LDAP_CA_FILE", value_name = "FILE")]
    pub ldap_ca_file: Option<PathBuf>,
    /// Seconds for connecting to the LDAP server and for each operation
    /// [default: 5].
    #[arg(long, env = "REGISTRY_LDAP_TIMEOUT_SECS", value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=300))]
    pub ldap_timeout_secs: Option<u64>,
}

/// The LDAP settings in force.
#[derive(Debug, Clone)]
pub struct LdapSettings {
    /// The library's configuration, bind password read.
    pub config: LdapConfig,
}

/// The directory providers configured.
#[derive(Debug, Clone, Default)]
pub struct DirectorySettings {
    /// The htpasswd file.
    pub htpasswd: Option<PathBuf>,
    /// The LDAP server.
    pub ldap: Option<LdapSettings>,
}

impl DirectorySettings {
    /// Whether any provider is configured.
    pub fn any(&self) -> bool {
        self.htpasswd.is_some() || self.ldap.is_some()
    }
}

/// Reads a password file: its contents less one trailing line end.
fn read_password_file(path: &std::path::Path) -> Result<Password, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read LDAP bind password file {}: {e}",
            path.display()
        )
    })?;
    let password = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    if password.is_empty() {
        return Err(format!(
            "LDAP bind password file {} is empty (an empty password is an anonymous bind)",
            path.display()
        ));
    }
    Ok(Password::new(password))
}

/// Flags over the config file; LDAP settings without `--ldap-url` are an
/// error rather than silently unused.
pub fn resolve(flags: DirectoryFlags, file: &FileConfig) -> Result<DirectorySettings, String> {
    let htpasswd = flags.htpasswd.or_else(|| file.htpasswd.clone());
    let url = flags.ldap_url.or_else(|| file.ldap_url.clone());
    let bind_dn = flags.ldap_bind_dn.or_else(|| file.ldap_bind_dn.clone());
    let bind_password_file = flags
        .ldap_bind_password_file
        .or_else(|| file.ldap_bind_password_file.clone());
    let user_base = flags.ldap_user_base.or_else(|| file.ldap_user_base.clone());
    let user_filter = flags
        .ldap_user_filter
        .or_else(|| file.ldap_user_filter.clone());
    let group_base = flags
        .ldap_group_base
        .or_else(|| file.ldap_group_base.clone());
    let group_filter = flags
        .ldap_group_filter
        .or_else(|| file.ldap_group_filter.clone());
    let start_tls = flags.ldap_start_tls || file.ldap_start_tls.unwrap_or(false);
    let ca_file = flags.ldap_ca_file.or_else(|| file.ldap_ca_file.clone());
    let timeout = flags.ldap_timeout_secs.or(file.ldap_timeout_secs);
    let Some(url) = url else {
        let stray = [
            ("--ldap-bind-dn (ldap_bind_dn)", bind_dn.is_some()),
            (
                "--ldap-bind-password-file (ldap_bind_password_file)",
                bind_password_file.is_some(),
            ),
            ("--ldap-user-base (ldap_user_base)", user_base.is_some()),
            (
                "--ldap-user-filter (ldap_user_filter)",
                user_filter.is_some(),
            ),
            ("--ldap-group-base (ldap_group_base)", group_base.is_some()),
            (
                "--ldap-group-filter (ldap_group_filter)",
                group_filter.is_some(),
            ),
            ("--ldap-start-tls (ldap_start_tls)", start_tls),
            ("--ldap-ca-file (ldap_ca_file)", ca_file.is_some()),
            ("--ldap-timeout-secs (ldap_timeout_secs)", timeout.is_some()),
        ];
        if let Some((name, _)) = stray.iter().find(|(_, set)| *set) {
            return Err(format!(
                "{name} needs --ldap-url (REGISTRY_LDAP_URL, ldap_url)"
            ));
        }
        return Ok(DirectorySettings {
            htpasswd,
            ldap: None,
        });
    };
    let user_base = user_base.ok_or(
        "--ldap-url needs --ldap-user-base (REGISTRY_LDAP_USER_BASE, ldap_user_base): \
         the DN users are searched under",
    )?;
    let mut config = LdapConfig::new(url, user_base);
    match (bind_dn, bind_password_file) {
        (Some(dn), Some(path)) => config = config.with_bind(dn, read_password_file(&path)?),
        (None, None) => {}
        (Some(_), None) => {
            return Err("--ldap-bind-dn needs --ldap-bind-password-file \
                        (REGISTRY_LDAP_BIND_PASSWORD_FILE, ldap_bind_password_file)"
                .into())
        }
        (None, Some(_)) => {
            return Err("--ldap-bind-password-file needs --ldap-bind-dn \
                        (REGISTRY_LDAP_BIND_DN, ldap_bind_dn)"
                .into())
        }
    }
    config.user_filter = user_filter.unwrap_or_else(|| DEFAULT_USER_FILTER.into());
    config.group_base = group_base;
    config.group_filter = group_filter.unwrap_or_else(|| DEFAULT_GROUP_FILTER.into());
    config.start_tls = start_tls;
    config.ca_file = ca_file;
    if let Some(secs) = timeout {
        if !(1..=300).contains(&secs) {
            return Err(format!(
                "config file: ldap_timeout_secs must be between 1 and 300, not {secs}"
            ));
        }
        config.connect_timeout = Duration::from_secs(secs);
        config.operation_timeout = Duration::from_secs(secs);
    }
    Ok(DirectorySettings {
        htpasswd,
        ldap: Some(LdapSettings { config }),
    })
}

/// The providers, in the order they are asked: the htpasswd file, then
/// LDAP (the registry's own users and tokens come after them).
pub fn providers(
    settings: &DirectorySettings,
    guard: &Arc<LoginGuard>,
) -> Result<Vec<Arc<dyn Authenticate>>, String> {
    let mut out: Vec<Arc<dyn Authenticate>> = Vec::new();
    if let Some(path) = &settings.htpasswd {
        let provider = HtpasswdProvider::open(path, guard.clone()).map_err(|e| e.to_string())?;
        out.push(Arc::new(provider));
    }
    if let Some(ldap) = &settings.ldap {
        let provider =
            LdapProvider::new(ldap.config.clone(), guard.clone()).map_err(|e| e.to_string())?;
        out.push(Arc::new(provider));
    }
    Ok(out)
}
