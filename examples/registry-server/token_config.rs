//! Registry-token settings: the service and issuer names, the services of
//! registries that use this one as their token server, token and refresh
//! token lifetimes, key rotation. Flags over the config file over defaults.

use std::time::Duration;

use registry::auth::TokenSettings;

use crate::config::FileConfig;

/// Flags of the token service; each also reads an environment variable.
#[derive(Debug, Default, clap::Args)]
pub struct TokenFlags {
    /// The service name of this registry: the `service` of its Bearer
    /// challenge and the audience of the tokens it accepts [default: registry].
    #[arg(long, env = "REGISTRY_TOKEN_SERVICE", value_name = "NAME")]
    pub token_service: Option<String>,
    /// The `iss` of registry tokens (what a trusting registry's `issuer`
    /// names) [default: the service name].
    #[arg(long, env = "REGISTRY_TOKEN_ISSUER", value_name = "NAME")]
    pub token_issuer: Option<String>,
    /// Services of other registries (CNCF Distribution's `auth.token.service`)
    /// that use this one as their token server, comma-separated: /v2/token
    /// issues tokens for them too [default: none].
    #[arg(
        long,
        env = "REGISTRY_TOKEN_ACCEPTED_SERVICES",
        value_delimiter = ',',
        value_name = "NAME,…"
    )]
    pub token_accepted_services: Option<Vec<String>>,
    /// Seconds a registry token lives [default: 300].
    #[arg(long, env = "REGISTRY_TOKEN_TTL_SECS", value_name = "SECONDS")]
    pub token_ttl_secs: Option<u64>,
    /// Days a token-signing key signs before the next one takes over
    /// [default: 30].
    #[arg(long, env = "REGISTRY_TOKEN_KEY_ROTATION_DAYS", value_name = "DAYS")]
    pub token_key_rotation_days: Option<u64>,
    /// Days a refresh token (`docker login`'s identity token) of a local
    /// user lives [default: 30].
    #[arg(
        long,
        env = "REGISTRY_REFRESH_TOKEN_LIFETIME_DAYS",
        value_name = "DAYS"
    )]
    pub refresh_token_lifetime_days: Option<u64>,
    /// Hours a refresh token of an identity from LDAP, OIDC or htpasswd
    /// lives [default: 12].
    #[arg(
        long,
        env = "REGISTRY_EXTERNAL_REFRESH_TOKEN_LIFETIME_HOURS",
        value_name = "HOURS"
    )]
    pub external_refresh_token_lifetime_hours: Option<u64>,
}

/// The token settings in force.
#[derive(Debug, Clone)]
pub struct TokenOptions {
    /// This registry's service name.
    pub service: String,
    /// The library's token settings.
    pub settings: TokenSettings,
    /// Refresh-token lifetime of local users.
    pub refresh_token_lifetime: Duration,
    /// Refresh-token lifetime of external identities.
    pub external_refresh_token_lifetime: Duration,
}

const DAY: u64 = 24 * 3600;

fn in_range(value: u64, range: std::ops::RangeInclusive<u64>, what: &str) -> Result<u64, String> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{what} must be between {} and {}, not {value}",
            range.start(),
            range.end()
        ))
    }
}

impl TokenOptions {
    /// Flags over the config file over the defaults; names are checked
    /// when the registry starts.
    pub fn load(flags: TokenFlags, file: &FileConfig) -> Result<Self, String> {
        let mut settings = TokenSettings::default();
        settings.issuer = flags.token_issuer.or_else(|| file.token_issuer.clone());
        settings.accepted_services = flags
            .token_accepted_services
            .or_else(|| file.token_accepted_services.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if let Some(s) = flags.token_ttl_secs.or(file.token_ttl_secs) {
            settings.ttl = Duration::from_secs(in_range(s, 1..=DAY, "token_ttl_secs")?);
        }
        if let Some(d) = flags
            .token_key_rotation_days
            .or(file.token_key_rotation_days)
        {
            let d = in_range(d, 1..=3650, "token_key_rotation_days")?;
            settings.rotation_period = Duration::from_secs(d * DAY);
        }
        let defaults = registry::api::AuthSettings::default();
        let refresh_token_lifetime = match flags
            .refresh_token_lifetime_days
            .or(file.refresh_token_lifetime_days)
        {
            Some(d) => {
                Duration::from_secs(in_range(d, 1..=3650, "refresh_token_lifetime_days")? * DAY)
            }
            None => defaults.refresh_token_lifetime,
        };
        let external_refresh_token_lifetime = match flags
            .external_refresh_token_lifetime_hours
            .or(file.external_refresh_token_lifetime_hours)
        {
            Some(h) => Duration::from_secs(
                in_range(h, 1..=24 * 90, "external_refresh_token_lifetime_hours")? * 3600,
            ),
            None => defaults.external_refresh_token_lifetime,
        };
        Ok(TokenOptions {
            service: flags
                .token_service
                .or_else(|| file.token_service.clone())
                .unwrap_or_else(|| "registry".to_owned()),
            settings,
            refresh_token_lifetime,
            external_refresh_token_lifetime,
        })
    }

    /// Puts these into the registry's auth configuration.
    pub fn apply(&self, config: &mut registry::api::AuthConfig) {
        config.service = self.service.clone();
        config.tokens = self.settings.clone();
        config.settings.refresh_token_lifetime = self.refresh_token_lifetime;
        config.settings.external_refresh_token_lifetime = self.external_refresh_token_lifetime;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_over_file_over_defaults_and_ranges() {
        let none = TokenOptions::load(TokenFlags::default(), &FileConfig::default()).unwrap();
        assert_eq!(none.service, "registry");
        assert_eq!(none.settings, TokenSettings::default());
        let file: FileConfig = toml::from_str(
            r#"
            token_service = "registry.example"
            token_issuer = "issuer.example"
            token_accepted_services = ["dist-a", " ", "dist-b"]
            token_ttl_secs = 600
            token_key_rotation_days = 7
            refresh_token_lifetime_days = 2
            external_refresh_token_lifetime_hours = 3
            "#,
        )
        .unwrap();
        let from_file = TokenOptions::load(TokenFlags::default(), &file).unwrap();
        assert_eq!(from_file.service, "registry.example");
        assert_eq!(from_file.settings.issuer.as_deref(), Some("issuer.example"));
        assert_eq!(from_file.settings.accepted_services, ["dist-a", "dist-b"]);
        assert_eq!(from_file.settings.ttl, Duration::from_secs(600));
        assert_eq!(
            from_file.settings.rotation_period,
            Duration::from_secs(7 * DAY)
        );
        assert_eq!(
            from_file.refresh_token_lifetime,
            Duration::from_secs(2 * DAY)
        );
        assert_eq!(
            from_file.external_refresh_token_lifetime,
            Duration::from_secs(3 * 3600)
        );
        let flags = TokenFlags {
            token_accepted_services: Some(vec!["flag".into()]),
            token_ttl_secs: Some(60),
            ..TokenFlags::default()
        };
        let both = TokenOptions::load(flags, &file).unwrap();
        assert_eq!(both.settings.accepted_services, ["flag"]);
        assert_eq!(both.settings.ttl, Duration::from_secs(60));
        for bad in [
            "token_ttl_secs = 0",
            "token_ttl_secs = 86401",
            "token_key_rotation_days = 0",
            "refresh_token_lifetime_days = 0",
            "external_refresh_token_lifetime_hours = 10000",
        ] {
            let file: FileConfig = toml::from_str(bad).unwrap();
            let e = TokenOptions::load(TokenFlags::default(), &file).unwrap_err();
            assert!(e.contains(bad.split(' ').next().unwrap()), "{bad}: {e}");
        }
    }
}
