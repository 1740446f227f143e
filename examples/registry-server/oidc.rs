//! The OpenID Connect identity provider's settings: kube-apiserver's
//! `--oidc-*` flags, their `REGISTRY_OIDC_*` variables and `oidc_*` TOML
//! keys.

use std::path::PathBuf;
use std::sync::Arc;

use registry::auth::oidc::{parse_prefix, OidcConfig, OidcProvider};

use crate::config::FileConfig;

/// `--oidc-*` flags (kube-apiserver's names and meanings).
#[derive(Debug, Default, clap::Args)]
pub struct OidcFlags {
    /// OpenID Connect issuer (https): ID tokens it signs are accepted as
    /// Basic passwords (any user name), as Bearer tokens and at /v2/token
    /// [default: off].
    #[arg(long, env = "REGISTRY_OIDC_ISSUER_URL", value_name = "URL")]
    pub oidc_issuer_url: Option<String>,
    /// The audience ID tokens must name (required with --oidc-issuer-url).
    #[arg(long, env = "REGISTRY_OIDC_CLIENT_ID", value_name = "ID")]
    pub oidc_client_id: Option<String>,
    /// The claim that names the user [default: sub]; with `email`, an
    /// `email_verified` claim must not be false.
    #[arg(long, env = "REGISTRY_OIDC_USERNAME_CLAIM", value_name = "CLAIM")]
    pub oidc_username_claim: Option<String>,
    /// Put before user names [default: oidc:]; `-` for none.
    #[arg(
        long,
        env = "REGISTRY_OIDC_USERNAME_PREFIX",
        value_name = "PREFIX",
        allow_hyphen_values = true
    )]
    pub oidc_username_prefix: Option<String>,
    /// The claim holding the user's groups (a string or a list) [default:
    /// groups]; `-` for none.
    #[arg(
        long,
        env = "REGISTRY_OIDC_GROUPS_CLAIM",
        value_name = "CLAIM",
        allow_hyphen_values = true
    )]
    pub oidc_groups_claim: Option<String>,
    /// Put before group names [default: oidc:]; `-` for none.
    #[arg(
        long,
        env = "REGISTRY_OIDC_GROUPS_PREFIX",
        value_name = "PREFIX",
        allow_hyphen_values = true
    )]
    pub oidc_groups_prefix: Option<String>,
    /// PEM CA certificates the issuer's TLS certificate must chain to
    /// [default: the system roots].
    #[arg(long, env = "REGISTRY_OIDC_CA_FILE", value_name = "FILE")]
    pub oidc_ca_file: Option<PathBuf>,
}

/// The provider's configuration from flags over the config file; `None`
/// when no issuer is set.
pub fn settings(flags: OidcFlags, file: &FileConfig) -> Result<Option<OidcConfig>, String> {
    let issuer = flags.oidc_issuer_url.or(file.oidc_issuer_url.clone());
    let client_id = flags.oidc_client_id.or(file.oidc_client_id.clone());
    let username_claim = flags
        .oidc_username_claim
        .or(file.oidc_username_claim.clone());
    let username_prefix = flags
        .oidc_username_prefix
        .or(file.oidc_username_prefix.clone());
    let groups_claim = flags.oidc_groups_claim.or(file.oidc_groups_claim.clone());
    let groups_prefix = flags.oidc_groups_prefix.or(file.oidc_groups_prefix.clone());
    let ca_file = flags.oidc_ca_file.or(file.oidc_ca_file.clone());
    let Some(issuer) = issuer else {
        let set = [
            client_id.is_some(),
            username_claim.is_some(),
            username_prefix.is_some(),
            groups_claim.is_some(),
            groups_prefix.is_some(),
            ca_file.is_some(),
        ];
        if set.contains(&true) {
            return Err(
                "--oidc-* settings need --oidc-issuer-url (REGISTRY_OIDC_ISSUER_URL, \
                 oidc_issuer_url)"
                    .into(),
            );
        }
        return Ok(None);
    };
    let issuer = issuer
        .parse()
        .map_err(|e| format!("--oidc-issuer-url: {e}"))?;
    let client_id = client_id.ok_or(
        "--oidc-issuer-url needs --oidc-client-id (REGISTRY_OIDC_CLIENT_ID, oidc_client_id): \
         the audience ID tokens must name",
    )?;
    let mut config =
        OidcConfig::new(issuer, client_id).map_err(|e| format!("--oidc-client-id: {e}"))?;
    if let Some(claim) = username_claim {
        config = config.with_username_claim(claim);
    }
    if let Some(prefix) = username_prefix {
        config = config.with_username_prefix(parse_prefix(&prefix));
    }
    if let Some(claim) = groups_claim {
        config = config.with_groups_claim(parse_prefix(&claim));
    }
    if let Some(prefix) = groups_prefix {
        config = config.with_groups_prefix(parse_prefix(&prefix));
    }
    if let Some(path) = ca_file {
        let pem = std::fs::read(&path)
            .map_err(|e| format!("cannot read --oidc-ca-file {}: {e}", path.display()))?;
        config = config.with_ca_pem(pem);
    }
    config.validate().map_err(|e| format!("--oidc-*: {e}"))?;
    Ok(Some(config))
}

/// The provider for `config`; its keys are fetched in the background so
/// that an issuer that is down does not stop the registry (its tokens are
/// refused until the keys arrive, and local users work throughout).
pub fn provider(config: &OidcConfig) -> Result<Arc<OidcProvider>, String> {
    let provider = Arc::new(
        OidcProvider::new(config.clone())
            .map_err(|e| format!("cannot set up the OIDC provider: {e}"))?,
    );
    let warm = provider.clone();
    tokio::spawn(async move {
        let issuer = warm.config().issuer.to_string();
        match warm.load_keys().await {
            Ok(keys) => tracing::info!(target: "auth", %issuer, keys, "OIDC issuer ready"),
            Err(e) => tracing::error!(
                target: "auth",
                %issuer,
                error = %e,
                "OIDC issuer unreachable: its tokens are refused until its keys can be fetched"
            ),
        }
    });
    Ok(provider)
}
