//! Turning access control on: the server secret, the first admin, and the
//! registry's auth configuration. (The keys that sign registry tokens are
//! made and rotated in the auth store by the registry itself.)

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use registry::api::{AuthConfig, Registry, RegistryBuilder};
use registry::auth::{
    ensure_admin, BootstrapOutcome, CachedAuthStore, LoginGuard, Password, PasswordHasher,
    PullSecretPolicy, SigningKey,
};
use registry::storage::Stores;

use crate::config::Settings;

/// Reads the server secret from `path`, creating it (mode 0600) on first
/// start: managed pull-secret tokens derive from it, so every replica must
/// use the same one.
fn signing_key(path: &Path) -> Result<SigningKey, String> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let bytes: [u8; 32] = bytes
                .as_slice()
                .try_into()
                .map_err(|_| format!("{} must hold exactly 32 bytes", path.display()))?;
            return Ok(SigningKey::from_bytes(bytes));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness for the signing key: {e}"))?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(SigningKey::from_bytes(bytes))
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
    let key = signing_key(&settings.data_dir.join("token-signing.key"))?;
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
