//! What the OIDC provider is configured with: kube-apiserver's `--oidc-*`
//! settings and the bounds on its work.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// Why an OIDC setting is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OidcConfigError {
    /// The issuer URL does not parse.
    #[error("OIDC issuer URL {url:?} is not a URL: {reason}")]
    InvalidIssuerUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The issuer URL is not `https://` (tokens would be verified with keys
    /// anyone on the path could replace).
    #[error("OIDC issuer URL {0:?} must use https")]
    IssuerNotHttps(String),
    /// The issuer URL has a query or a fragment, which an issuer
    /// identifier must not have (OpenID Connect Discovery, section 2).
    #[error("OIDC issuer URL {0:?} must not have a query or a fragment")]
    IssuerQueryOrFragment(String),
    /// The client id (the audience ID tokens must name) is empty.
    #[error("OIDC client id is empty")]
    EmptyClientId,
    /// The username claim is empty.
    #[error("OIDC username claim is empty")]
    EmptyUsernameClaim,
    /// The groups claim is empty (leave it unset for no groups).
    #[error("OIDC groups claim is empty")]
    EmptyGroupsClaim,
    /// The CA file holds no PEM certificate.
    #[error("OIDC CA bundle holds no PEM certificate")]
    EmptyCaBundle,
}

/// An issuer identifier: an `https` URL without query or fragment,
/// compared with the `iss` claim exactly, as its text (no normalisation:
/// `https://idp.example` and `https://idp.example/` are different issuers).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct IssuerUrl {
    repr: Box<str>,
}

impl IssuerUrl {
    /// The issuer as configured.
    pub fn as_str(&self) -> &str {
        &self.repr
    }

    /// Where its discovery document is:
    /// `<issuer without trailing slash>/.well-known/openid-configuration`.
    pub fn discovery_url(&self) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            self.repr.trim_end_matches('/')
        )
    }
}

impl FromStr for IssuerUrl {
    type Err = OidcConfigError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = reqwest::Url::parse(s).map_err(|e| OidcConfigError::InvalidIssuerUrl {
            url: s.to_owned(),
            reason: e.to_string(),
        })?;
        if url.scheme() != "https" {
            return Err(OidcConfigError::IssuerNotHttps(s.to_owned()));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(OidcConfigError::IssuerQueryOrFragment(s.to_owned()));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(OidcConfigError::InvalidIssuerUrl {
                url: s.to_owned(),
                reason: "no host".to_owned(),
            });
        }
        Ok(IssuerUrl { repr: s.into() })
    }
}

impl fmt::Display for IssuerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repr)
    }
}

impl fmt::Debug for IssuerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IssuerUrl({})", self.repr)
    }
}

/// A name prefix as kube-apiserver's `--oidc-username-prefix` takes it:
/// `-` turns prefixing off.
pub fn parse_prefix(text: &str) -> Option<String> {
    match text {
        "-" => None,
        other => Some(other.to_owned()),
    }
}

/// The default of `--oidc-username-prefix` and `--oidc-groups-prefix`.
pub const DEFAULT_PREFIX: &str = "oidc:";

/// How the OIDC provider verifies ID tokens and names their users, with
/// kube-apiserver's flag semantics. Start from [`OidcConfig::new`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OidcConfig {
    /// `--oidc-issuer-url`: tokens whose `iss` is exactly this are ours;
    /// discovery and keys come from it.
    pub issuer: IssuerUrl,
    /// `--oidc-client-id`: the audience every accepted token must name.
    pub client_id: String,
    /// `--oidc-username-claim` (default `sub`): the claim that names the
    /// user. With `email`, an `email_verified` claim that is present must be
    /// `true`.
    pub username_claim: String,
    /// `--oidc-username-prefix` (default `oidc:`; `None`, written `-`, for
    /// none): put before the claim's value. Without a prefix a user can be
    /// named like a local user, so leave it on unless names cannot clash.
    pub username_prefix: Option<String>,
    /// `--oidc-groups-claim` (default `groups`; `None` for no groups): a
    /// string or a list of strings. Values starting with `system:` are
    /// dropped, so an issuer cannot hand out built-in groups.
    pub groups_claim: Option<String>,
    /// `--oidc-groups-prefix` (default `oidc:`; `None` for none).
    pub groups_prefix: Option<String>,
    /// `--oidc-ca-file`'s PEM certificates: when set, the issuer's TLS
    /// certificate must chain to one of them (instead of the system roots).
    pub ca_pem: Option<Vec<u8>>,
    /// Bounds on the provider's work.
    pub limits: OidcLimits,
}

impl OidcConfig {
    /// kube-apiserver's defaults for `issuer` and `client_id`: username
    /// from `sub`, groups from `groups`, both prefixed `oidc:`, the system
    /// roots.
    pub fn new(issuer: IssuerUrl, client_id: impl Into<String>) -> Result<Self, OidcConfigError> {
        let client_id = client_id.into();
        if client_id.is_empty() {
            return Err(OidcConfigError::EmptyClientId);
        }
        Ok(OidcConfig {
            issuer,
            client_id,
            username_claim: "sub".to_owned(),
            username_prefix: Some(DEFAULT_PREFIX.to_owned()),
            groups_claim: Some("groups".to_owned()),
            groups_prefix: Some(DEFAULT_PREFIX.to_owned()),
            ca_pem: None,
            limits: OidcLimits::default(),
        })
    }

    /// Names users from `claim`.
    pub fn with_username_claim(mut self, claim: impl Into<String>) -> Self {
        self.username_claim = claim.into();
        self
    }

    /// Prefixes user names with `prefix` (`None`: no prefix).
    pub fn with_username_prefix(mut self, prefix: Option<String>) -> Self {
        self.username_prefix = prefix;
        self
    }

    /// Reads groups from `claim` (`None`: no groups).
    pub fn with_groups_claim(mut self, claim: Option<String>) -> Self {
        self.groups_claim = claim;
        self
    }

    /// Prefixes group names with `prefix` (`None`: no prefix).
    pub fn with_groups_prefix(mut self, prefix: Option<String>) -> Self {
        self.groups_prefix = prefix;
        self
    }

    /// Trusts only the CA certificates of this PEM bundle for the issuer.
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem = Some(pem.into());
        self
    }

    /// Checks what [`OidcConfig::new`] cannot (the fields are public).
    pub fn validate(&self) -> Result<(), OidcConfigError> {
        if self.client_id.is_empty() {
            return Err(OidcConfigError::EmptyClientId);
        }
        if self.username_claim.is_empty() {
            return Err(OidcConfigError::EmptyUsernameClaim);
        }
        if self.groups_claim.as_deref() == Some("") {
            return Err(OidcConfigError::EmptyGroupsClaim);
        }
        Ok(())
    }
}

/// Bounds on what the OIDC provider spends: time on the issuer, key
/// refreshes, memory for verified tokens.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct OidcLimits {
    /// Longest a call to the issuer (discovery or keys) may take, connect
    /// included (default 10 s).
    pub request_timeout: Duration,
    /// Least time between two key fetches, so that tokens naming unknown
    /// `kid`s cannot make the registry hammer the issuer (default 10 s).
    pub min_refresh_interval: Duration,
    /// Keys older than this are fetched again on next use, so a key the
    /// issuer withdrew stops working (default 1 h).
    pub keys_max_age: Duration,
    /// How many verified tokens are remembered until they expire (default
    /// 1024).
    pub verified_capacity: usize,
    /// Longest token considered, in bytes (default 32 KiB).
    pub max_token_bytes: usize,
    /// Most groups a token may carry (default 256); more fails the login.
    pub max_groups: usize,
    /// Clock skew allowed on `exp` and `nbf` (default 30 s).
    pub leeway: Duration,
}

impl Default for OidcLimits {
    fn default() -> Self {
        OidcLimits {
            request_timeout: Duration::from_secs(10),
            min_refresh_interval: Duration::from_secs(10),
            keys_max_age: Duration::from_secs(3600),
            verified_capacity: 1024,
            max_token_bytes: 32 * 1024,
            max_groups: 256,
            leeway: Duration::from_secs(30),
        }
    }
}
