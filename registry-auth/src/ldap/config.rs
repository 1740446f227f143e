//! [`LdapConfig`]: where the directory is, how to search it, and the
//! bounds on talking to it; checked once into what logins use.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use super::filter::{FilterTemplate, FilterTemplateError};
use crate::credentials::{CredentialError, Password};

/// The default user search filter.
pub const DEFAULT_USER_FILTER: &str = "(uid={username})";
/// The default group search filter.
pub const DEFAULT_GROUP_FILTER: &str = "(member={dn})";

/// How the LDAP provider reaches and searches the directory. Start from
/// [`LdapConfig::new`] and set what differs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LdapConfig {
    /// `ldap://host[:port]` or `ldaps://host[:port]`.
    pub url: String,
    /// The DN the registry binds as to search; `None`: searches are
    /// anonymous.
    pub bind_dn: Option<String>,
    /// The password of [`Self::bind_dn`].
    pub bind_password: Option<Password>,
    /// Where users are searched (whole subtree).
    pub user_base: String,
    /// The user search filter; `{username}` is the name logged in with,
    /// escaped. Exactly one entry must match. Default [`DEFAULT_USER_FILTER`].
    pub user_filter: String,
    /// Where groups are searched (whole subtree); `None`: users have no
    /// groups from the directory.
    pub group_base: Option<String>,
    /// The group search filter; `{dn}` is the user's entry, `{username}`
    /// the name logged in with, each escaped. Group names come from `cn`.
    /// Default [`DEFAULT_GROUP_FILTER`].
    pub group_filter: String,
    /// Upgrade an `ldap://` connection with StartTLS before anything is
    /// sent.
    pub start_tls: bool,
    /// PEM file of the CA certificates that verify the server (LDAPS and
    /// StartTLS); `None`: the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Bound on connecting, including the TLS handshake and StartTLS.
    pub connect_timeout: Duration,
    /// Bound on each bind and search.
    pub operation_timeout: Duration,
    /// Most connections to the directory at once (each login uses one);
    /// a login that cannot get one within [`Self::operation_timeout`] is
    /// treated like the directory being down.
    pub max_connections: usize,
    /// How long a successful login (user and groups) is remembered, so a
    /// burst of requests with the same credentials is one bind. A password
    /// changed or a group left in the directory takes this long to count.
    pub cache_ttl: Duration,
    /// Most successful logins remembered.
    pub cache_capacity: usize,
    /// Most groups a user may have; a user in more fails to log in (the
    /// group list would be cut arbitrarily otherwise).
    pub max_groups: usize,
}

impl LdapConfig {
    /// A configuration for the directory at `url` with users under
    /// `user_base`; anonymous searches, default filters, no groups, 5 s
    /// timeouts, 8 connections, logins remembered 30 s (1024 of them).
    pub fn new(url: impl Into<String>, user_base: impl Into<String>) -> Self {
        LdapConfig {
            url: url.into(),
            bind_dn: None,
            bind_password: None,
            user_base: user_base.into(),
            user_filter: DEFAULT_USER_FILTER.into(),
            group_base: None,
            group_filter: DEFAULT_GROUP_FILTER.into(),
            start_tls: false,
            ca_file: None,
            connect_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(5),
            max_connections: 8,
            cache_ttl: Duration::from_secs(30),
            cache_capacity: 1024,
            max_groups: 256,
        }
    }

    /// Searches as `dn` with `password`.
    pub fn with_bind(mut self, dn: impl Into<String>, password: Password) -> Self {
        self.bind_dn = Some(dn.into());
        self.bind_password = Some(password);
        self
    }

    /// Searches groups under `base`.
    pub fn with_group_base(mut self, base: impl Into<String>) -> Self {
        self.group_base = Some(base.into());
        self
    }
}

/// Why an [`LdapConfig`] cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LdapConfigError {
    /// The URL does not parse.
    #[error("LDAP URL {url:?}: {source}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why it does not parse.
        #[source]
        source: url::ParseError,
    },
    /// Not `ldap://` or `ldaps://`.
    #[error("LDAP URL {url:?}: scheme must be ldap or ldaps")]
    UnsupportedScheme {
        /// The URL as given.
        url: String,
    },
    /// No host in the URL.
    #[error("LDAP URL {url:?} names no host")]
    MissingHost {
        /// The URL as given.
        url: String,
    },
    /// StartTLS was asked for on an `ldaps://` URL, which is TLS already.
    #[error("StartTLS is for ldap:// URLs; {url:?} is LDAPS already")]
    StartTlsOverLdaps {
        /// The URL as given.
        url: String,
    },
    /// A CA file was given for a connection without TLS.
    #[error("an LDAP CA file needs ldaps:// or StartTLS")]
    CaFileWithoutTls,
    /// A bind DN without a password, or a password without a DN.
    #[error("the LDAP bind DN and bind password go together: give both or neither")]
    IncompleteBind,
    /// The user search base is empty.
    #[error("the LDAP user search base is empty")]
    EmptyUserBase,
    /// The user filter is unusable.
    #[error("LDAP user filter: {0}")]
    UserFilter(#[source] FilterTemplateError),
    /// The group filter is unusable.
    #[error("LDAP group filter: {0}")]
    GroupFilter(#[source] FilterTemplateError),
    /// The CA file could not be read.
    #[error("cannot read LDAP CA file {path}: {source}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The CA file holds no usable PEM certificate.
    #[error("LDAP CA file {path} holds no usable PEM certificate{}", reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    CaFileCertificates {
        /// The file.
        path: PathBuf,
        /// What was wrong, when something was.
        reason: Option<String>,
    },
    /// rustls refused the TLS settings.
    #[error("LDAP TLS settings: {0}")]
    Tls(#[source] rustls::Error),
    /// No randomness for the login cache's key.
    #[error(transparent)]
    Random(#[from] CredentialError),
}

/// What a login needs, checked.
#[derive(Debug)]
pub(super) struct Checked {
    pub(super) url: url::Url,
    pub(super) tls: Option<Arc<rustls::ClientConfig>>,
    pub(super) user_filter: FilterTemplate,
    pub(super) group_filter: FilterTemplate,
}

impl LdapConfig {
    /// Checks the URL, the filters, the bind and the TLS settings.
    pub(super) fn check(&self) -> Result<Checked, LdapConfigError> {
        let url = url::Url::parse(&self.url).map_err(|source| LdapConfigError::InvalidUrl {
            url: self.url.clone(),
            source,
        })?;
        let ldaps = match url.scheme() {
            "ldap" => false,
            "ldaps" => true,
            _ => {
                return Err(LdapConfigError::UnsupportedScheme {
                    url: self.url.clone(),
                })
            }
        };
        if url.host_str().is_none_or(str::is_empty) {
            return Err(LdapConfigError::MissingHost {
                url: self.url.clone(),
            });
        }
        if ldaps && self.start_tls {
            return Err(LdapConfigError::StartTlsOverLdaps {
                url: self.url.clone(),
            });
        }
        let uses_tls = ldaps || self.start_tls;
        if self.ca_file.is_some() && !uses_tls {
            return Err(LdapConfigError::CaFileWithoutTls);
        }
        if self.bind_dn.is_some() != self.bind_password.is_some() {
            return Err(LdapConfigError::IncompleteBind);
        }
        if self.user_base.trim().is_empty() {
            return Err(LdapConfigError::EmptyUserBase);
        }
        let user_filter =
            FilterTemplate::user(&self.user_filter).map_err(LdapConfigError::UserFilter)?;
        let group_filter =
            FilterTemplate::group(&self.group_filter).map_err(LdapConfigError::GroupFilter)?;
        let tls = if uses_tls {
            Some(self.tls_config()?)
        } else {
            None
        };
        Ok(Checked {
            url,
            tls,
            user_filter,
            group_filter,
        })
    }

    /// rustls with ring, trusting the CA file or the system's roots.
    fn tls_config(&self) -> Result<Arc<rustls::ClientConfig>, LdapConfigError> {
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca_file {
            Some(path) => {
                let pem = std::fs::read(path).map_err(|source| LdapConfigError::CaFile {
                    path: path.clone(),
                    source,
                })?;
                let bad = |reason: Option<String>| LdapConfigError::CaFileCertificates {
                    path: path.clone(),
                    reason,
                };
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    let cert = cert.map_err(|e| bad(Some(e.to_string())))?;
                    roots.add(cert).map_err(|e| bad(Some(e.to_string())))?;
                }
                if roots.is_empty() {
                    return Err(bad(None));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    tracing::warn!(target: "auth", provider = super::PROVIDER, "no system CA certificates found: LDAP TLS will fail; give an LDAP CA file");
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(LdapConfigError::Tls)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str) -> LdapConfig {
        LdapConfig::new(url, "ou=people,dc=example")
    }

    #[test]
    fn urls_and_tls_settings_are_checked() {
        assert!(config("ldap://127.0.0.1:389")
            .check()
            .unwrap()
            .tls
            .is_none());
        assert!(config("ldaps://ldap.example")
            .check()
            .unwrap()
            .tls
            .is_some());
        let mut c = config("ldap://ldap.example");
        c.start_tls = true;
        assert!(c.check().unwrap().tls.is_some());
        c.url = "ldaps://ldap.example".into();
        assert!(matches!(
            c.check(),
            Err(LdapConfigError::StartTlsOverLdaps { .. })
        ));
        assert!(matches!(
            config("http://ldap.example").check(),
            Err(LdapConfigError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            config("ldap://").check(),
            Err(LdapConfigError::MissingHost { .. })
        ));
        assert!(matches!(
            config("not a url").check(),
            Err(LdapConfigError::InvalidUrl { .. })
        ));
        let mut c = config("ldap://ldap.example");
        c.ca_file = Some("/nonexistent".into());
        assert!(matches!(c.check(), Err(LdapConfigError::CaFileWithoutTls)));
    }

    #[test]
    fn binds_filters_and_ca_files_are_checked() {
        let mut c = config("ldap://ldap.example");
        c.bind_dn = Some("cn=registry".into());
        assert!(matches!(c.check(), Err(LdapConfigError::IncompleteBind)));
        let c = config("ldap://ldap.example").with_bind("cn=registry", Password::new("pw"));
        assert!(c.check().is_ok());
        let mut c = config("ldap://ldap.example");
        c.user_filter = "(uid=alice)".into();
        assert!(matches!(c.check(), Err(LdapConfigError::UserFilter(_))));
        let mut c = config("ldap://ldap.example");
        c.group_filter = "(member={dn}".into();
        assert!(matches!(c.check(), Err(LdapConfigError::GroupFilter(_))));
        let mut c = config("ldap://ldap.example");
        c.user_base = " ".into();
        assert!(matches!(c.check(), Err(LdapConfigError::EmptyUserBase)));

        let dir = tempfile::tempdir().unwrap();
        let mut c = config("ldaps://ldap.example");
        c.ca_file = Some(dir.path().join("missing.pem"));
        assert!(matches!(c.check(), Err(LdapConfigError::CaFile { .. })));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        c.ca_file = Some(empty);
        let e = c.check().unwrap_err();
        assert!(
            matches!(e, LdapConfigError::CaFileCertificates { .. }),
            "{e}"
        );
    }
}
