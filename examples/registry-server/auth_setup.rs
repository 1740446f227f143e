//! Turning access control on: the server secret, the first admin, and the
//! registry's auth configuration. (The keys that sign registry tokens are
//! made and rotated in the auth store by the registry itself.)

use std::path::Path;
use std::sync::Arc;

use registry::api::{AuthConfig, Registry, RegistryBuilder};
use registry::auth::{
    ensure_admin, AuthStore, BootstrapOutcome, CachedAuthStore, LoginGuard, Password,
    PasswordHasher, PullSecretPolicy, SigningKey,
};
use registry::storage::Stores;

use crate::config::Settings;

/// The server secret pull-secret tokens derive from: the auth store's, so
/// every replica on the database agrees without a key file. An install
/// from before kept it in `<data-dir>/token-signing.key`: that key becomes
/// the store's when the store has none yet (its pull secrets stay valid).
async fn signing_key(store: &dyn AuthStore, legacy: &Path) -> Result<SigningKey, String> {
    let file = match std::fs::read(legacy) {
        Ok(bytes) => Some(
            <[u8; 32]>::try_from(bytes.as_slice())
                .map_err(|_| format!("{} must hold exactly 32 bytes", legacy.display()))?,
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(format!("cannot read {}: {e}", legacy.display())),
    };
    let candidate = match file {
        Some(bytes) => bytes,
        None => {
            let mut bytes = [0u8; 32];
            getrandom::fill(&mut bytes)
                .map_err(|e| format!("no randomness for the server secret: {e}"))?;
            bytes
        }
    };
    let stored = store
        .server_secret(candidate)
        .await
        .map_err(|e| format!("cannot read the server secret from the database: {e}"))?;
    if file.is_some_and(|file| file != stored) {
        tracing::warn!(path = %legacy.display(), "ignoring the key file: the database holds another server secret (from another replica); pull secrets derive from the database's");
    }
    Ok(SigningKey::from_bytes(stored))
}

/// Creates the `admin` user on first start and turns access control on.
/// `server_url` (`http://addr` or `https://addr`) goes in the login hint.
pub async fn enable(
    builder: RegistryBuilder,
    stores: &Stores,
    settings: &Settings,
    server_url: &str,
) -> Result<Registry, String> {
    let store = stores
        .auth()
        .cloned()
        .ok_or("the data directory has no auth store")?;
    let hasher = PasswordHasher::new();
    let password = std::env::var("REGISTRY_ADMIN_PASSWORD")
        .ok()
        .map(Password::new);
    match ensure_admin(store.as_ref(), &hasher, password)
        .await
        .map_err(|e| format!("cannot create the admin user: {e}"))?
    {
        BootstrapOutcome::Created {
            generated_password: Some(p),
            ..
        } => {
            // Shown once, on the terminal only: never logged.
            println!(
                "created user `admin` (cluster-admin) with password: {}",
                p.expose()
            );
            // Plain HTTP needs --insecure; HTTPS with a private CA needs --ca-file.
            let extra = if settings.tls.is_some() {
                " [--ca-file CA.pem]"
            } else {
                " --insecure"
            };
            println!(
                "log in with: registryctl login {server_url}{extra} -u admin --password-stdin"
            );
        }
        BootstrapOutcome::Created { .. } => {
            println!("created user `admin` (cluster-admin) with the password from REGISTRY_ADMIN_PASSWORD");
        }
        _ => {}
    }
    let key = signing_key(store.as_ref(), &settings.data_dir.join("token-signing.key")).await?;
    let mut config = AuthConfig::new(key)
        // Every authenticated request looks its user or token up: served
        // from memory, written through.
        .with_store(Arc::new(CachedAuthStore::new(store)));
    config.hasher = hasher;
    config.public_url = settings.public_url.clone();
    config.pull_secrets =
        PullSecretPolicy::new(settings.ignored_namespaces.iter().map(String::as_str));
    config.settings = settings.auth_settings.clone();
    if let Some(oidc) = &settings.oidc {
        config.providers.push(crate::oidc::provider(oidc)?);
    }
    // One password-check pool and failed-login limiter for the registry's
    // own users and the htpasswd and LDAP providers.
    let guard = Arc::new(LoginGuard::new(settings.auth_settings.login.clone()));
    config
        .providers
        .extend(crate::directory::providers(&settings.directory, &guard)?);
    config.login_guard = Some(guard);
    settings.tokens.apply(&mut config);
    builder
        .auth(config)
        .build()
        .await
        .map_err(|e| format!("cannot turn access control on: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry::auth::MemoryAuthStore;

    /// Two keys agree when they derive the same pull-secret token.
    fn bytes(key: &SigningKey) -> String {
        use std::sync::LazyLock;
        static PROBE: LazyLock<(
            registry::auth::ServiceAccountRef,
            registry::auth::AccessTokenId,
        )> = LazyLock::new(|| {
            let sa = registry::auth::ServiceAccountRef::new(
                "ns".parse().unwrap(),
                "sa".parse().unwrap(),
            );
            (sa, registry::auth::AccessTokenId::generate())
        });
        registry::auth::managed_token(key, &PROBE.0, &PROBE.1)
            .expose()
            .to_owned()
    }

    #[tokio::test]
    async fn the_database_holds_the_secret_and_a_legacy_file_seeds_it() {
        let dir = tempfile::tempdir().unwrap();
        let legacy = dir.path().join("token-signing.key");
        // No file: a fresh secret, the same on every start.
        let store = MemoryAuthStore::new();
        let first = signing_key(&store, &legacy).await.unwrap();
        assert_eq!(
            bytes(&first),
            bytes(&signing_key(&store, &legacy).await.unwrap())
        );
        assert!(!legacy.exists(), "no key file is written any more");

        // A legacy file seeds an empty store; a store that has one wins.
        std::fs::write(&legacy, [5u8; 32]).unwrap();
        let seeded = MemoryAuthStore::new();
        let from_file = signing_key(&seeded, &legacy).await.unwrap();
        assert_eq!(bytes(&from_file), bytes(&SigningKey::from_bytes([5; 32])));
        assert_eq!(
            bytes(&signing_key(&store, &legacy).await.unwrap()),
            bytes(&first)
        );

        std::fs::write(&legacy, [5u8; 3]).unwrap();
        let err = signing_key(&seeded, &legacy).await.unwrap_err();
        assert!(err.contains("exactly 32 bytes"), "{err}");
    }
}
