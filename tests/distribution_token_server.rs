//! Our registry as the token server of CNCF Distribution (Debian's
//! `docker-registry` 2.8): Distribution configured with `auth.token`
//! (realm: our `/v2/token`, its own service name, our issuer, our token CA
//! as `rootcertbundle`) accepts the tokens we issue, so our users, groups
//! and role bindings decide who pushes and pulls there.
//!
//! Needs `REGISTRY_TEST_DISTRIBUTION` (the `docker-registry` binary; set by
//! `.ci/services/distribution.sh`, which `.ci/run` runs); without it the
//! test says that it skipped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use bytes::Bytes;
use registry::api::client::{Client, ClientError, Credentials};
use registry::api::{router, AuthConfig, Registry};
use registry::auth::{
    AuthStore, MemoryAuthStore, Password, PasswordHasher, Role, RoleBinding, SigningKey,
    TokenSigningKey, User,
};
use registry::core::{media_type, Reference, RepositoryName};
use tower::ServiceExt;

const SERVICE: &str = "registry.test";
const ISSUER: &str = "registry-token-issuer.test";
const DISTRIBUTION_SERVICE: &str = "distribution.test";
const PASSWORD: &str = "password-1";

/// `docker-registry`, killed on drop.
struct Distribution {
    child: Child,
    base: String,
    log: PathBuf,
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Distribution {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Starts Distribution trusting `ca_pem` for tokens from `realm`.
async fn start_distribution(binary: &Path, dir: &Path, realm: &str, ca_pem: &str) -> Distribution {
    let port = free_port();
    let bundle = dir.join("token-ca.pem");
    std::fs::write(&bundle, ca_pem).expect("writing the rootcertbundle");
    let config = dir.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\n\
             log:\n  level: info\n\
             storage:\n  filesystem:\n    rootdirectory: {store}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n\
             auth:\n  token:\n    realm: {realm}\n    service: {DISTRIBUTION_SERVICE}\n    \
             issuer: {ISSUER}\n    rootcertbundle: {bundle}\n",
            store = dir.join("store").display(),
            bundle = bundle.display(),
        ),
    )
    .expect("writing the Distribution config");
    let log = dir.join("distribution.log");
    let out = std::fs::File::create(&log).expect("log file");
    // Distribution reads every REGISTRY_* variable as configuration.
    let child = Command::new(binary)
        .args(["serve", &config.to_string_lossy()])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .stdout(Stdio::from(out.try_clone().expect("log file")))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("starting docker-registry");
    let d = Distribution {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log,
    };
    let http = reqwest::Client::new();
    for _ in 0..150 {
        if let Ok(r) = http.get(format!("{}/v2/", d.base)).send().await {
            assert_eq!(r.status(), 401, "Distribution must ask for a token");
            let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
            assert!(challenge.contains(realm), "{challenge}");
            return d;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("docker-registry did not answer:\n{}", d.log());
}

/// Our registry, served in process; the router can be replaced (a new
/// replica over the same store) while the address stays.
struct Ours {
    base: String,
    app: Arc<Mutex<axum::Router>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Ours {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn replica(store: &Arc<MemoryAuthStore>) -> Registry {
    let mut config = AuthConfig::new(SigningKey::generate().expect("key"))
        .with_store(store.clone() as Arc<dyn AuthStore>);
    config.hasher = PasswordHasher::insecure_fast();
    config.service = SERVICE.to_owned();
    config.tokens.issuer = Some(ISSUER.to_owned());
    config.tokens.accepted_services = vec![DISTRIBUTION_SERVICE.to_owned()];
    Registry::builder(registry::storage::Stores::in_memory())
        .auth(config)
        .build()
        .await
        .expect("registry with access control")
}

async fn serve(registry: &Registry) -> Ours {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port");
    let base = format!("http://{}", listener.local_addr().expect("address"));
    let app = Arc::new(Mutex::new(router(registry)));
    let current = app.clone();
    let front = axum::Router::new().fallback(move |request: Request| {
        let app = current.lock().expect("router").clone();
        async move { app.oneshot(request).await }
    });
    let task = tokio::spawn(async move {
        axum::serve(listener, front).await.expect("axum::serve");
    });
    Ours { base, app, task }
}

/// alice edits `team`, bob views it; carol has no role there.
async fn store() -> Arc<MemoryAuthStore> {
    let store = Arc::new(MemoryAuthStore::new());
    let hasher = PasswordHasher::insecure_fast();
    for name in ["alice", "bob", "carol"] {
        let user = User {
            name: name.parse().expect("user name"),
            password_hash: Some(hasher.hash(&Password::new(PASSWORD)).expect("hash")),
            created: time::OffsetDateTime::now_utc(),
        };
        store.create_user(user).await.expect("user");
    }
    for (role, who) in [(Role::Editor, "alice"), (Role::Viewer, "bob")] {
        let binding = RoleBinding {
            namespace: "team".parse().expect("namespace"),
            role,
            subject: who.parse().expect("subject"),
        };
        store.add_role_binding(binding).await.expect("binding");
    }
    store
}

fn client(base: &str, user: Option<&str>) -> Client {
    let mut builder = Client::builder(base).timeout(Duration::from_secs(30));
    if let Some(user) = user {
        builder = builder.credentials(Credentials::basic(user, PASSWORD));
    }
    builder.build().expect("client")
}

/// Pushes a one-layer image to `repo:tag` as `who`; the manifest digest.
async fn push_image(
    c: &Client,
    repo: &RepositoryName,
    tag: &str,
    seed: &str,
) -> Result<String, ClientError> {
    let config = Bytes::from(format!(
        r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#
    ));
    let layer = Bytes::from(format!("layer {seed}"));
    let (config_len, layer_len) = (config.len(), layer.len());
    // The config in one POST (Distribution 2.8 opens a session instead,
    // which the client finishes), the layer streamed through a session.
    let config_digest = c.push_blob(repo, config).await?;
    let layer_digest = registry::core::Digest::sha256_of(&layer);
    let body = futures::stream::iter([Ok::<_, std::io::Error>(layer)]);
    c.push_blob_stream(repo, &layer_digest, body).await?;
    // Both are really there.
    for (digest, len) in [(&config_digest, config_len), (&layer_digest, layer_len)] {
        assert_eq!(
            c.blob_size(repo, digest).await?,
            Some(len as u64),
            "{digest}"
        );
    }
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": {"mediaType": media_type::OCI_CONFIG, "digest": config_digest, "size": config_len},
        "layers": [{"mediaType": media_type::OCI_LAYER_GZIP, "digest": layer_digest, "size": layer_len}],
    });
    let reference: Reference = tag.parse().expect("tag");
    let digest = c
        .put_manifest(
            repo,
            &reference,
            media_type::OCI_MANIFEST,
            Bytes::from(serde_json::to_vec(&manifest).expect("json")),
        )
        .await?;
    Ok(digest.to_string())
}

/// The `kid` of a token our registry issues for Distribution to `user`.
async fn kid_of_token(ours: &Ours, user: &str) -> String {
    use base64::Engine as _;
    let answer: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{}/v2/token?service={DISTRIBUTION_SERVICE}&scope=repository:team/app:pull",
            ours.base
        ))
        .basic_auth(user, Some(PASSWORD))
        .send()
        .await
        .expect("token request")
        .json()
        .await
        .expect("token answer");
    let token = answer["token"].as_str().expect("a token");
    let header = token.split('.').next().expect("JWT header");
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .expect("base64url"),
    )
    .expect("JSON header");
    header["kid"].as_str().expect("kid").to_owned()
}

#[tokio::test]
async fn distribution_trusts_our_tokens_and_our_bindings_decide() {
    let Some(binary) = std::env::var_os("REGISTRY_TEST_DISTRIBUTION").map(PathBuf::from) else {
        eprintln!(
            "distribution_trusts_our_tokens_and_our_bindings_decide skipped: set \
             REGISTRY_TEST_DISTRIBUTION to Debian's docker-registry (bash .ci/services.sh start)"
        );
        return;
    };
    // reqwest is built without a bundled TLS provider (plain HTTP here).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = store().await;
    let ours = serve(&replica(&store).await).await;
    let ca_pem = reqwest::get(format!("{}/.well-known/registry-token-ca.pem", ours.base))
        .await
        .expect("GET the token CA")
        .text()
        .await
        .expect("PEM");
    let realm = format!("{}/v2/token", ours.base);
    let dist = start_distribution(&binary, dir.path(), &realm, &ca_pem).await;
    let repo: RepositoryName = "team/app".parse().expect("repository");

    // The editor pushes; the viewer pulls; the viewer's push is refused.
    let alice = client(&dist.base, Some("alice"));
    let pushed = push_image(&alice, &repo, "v1", "one")
        .await
        .unwrap_or_else(|e| panic!("alice's push: {e}\n{}", dist.log()));
    let bob = client(&dist.base, Some("bob"));
    let pulled = bob
        .get_manifest(&repo, &"v1".parse().expect("tag"))
        .await
        .unwrap_or_else(|e| panic!("bob's pull: {e}\n{}", dist.log()));
    assert_eq!(pulled.digest.to_string(), pushed);
    match push_image(&bob, &repo, "v2", "bob").await {
        Err(ClientError::Denied { .. } | ClientError::Unauthorized { .. }) => {}
        other => panic!("a viewer's push must be refused, got {other:?}"),
    }
    // No role, no password, a wrong password: nothing.
    let carol = client(&dist.base, Some("carol"));
    assert!(carol
        .get_manifest(&repo, &"v1".parse().expect("tag"))
        .await
        .is_err());
    let anonymous = client(&dist.base, None);
    assert!(anonymous
        .get_manifest(&repo, &"v1".parse().expect("tag"))
        .await
        .is_err());
    let wrong = Client::builder(&dist.base)
        .credentials(Credentials::basic("alice", "wrong"))
        .build()
        .expect("client");
    assert!(matches!(
        wrong.get_manifest(&repo, &"v1".parse().expect("tag")).await,
        Err(ClientError::Unauthorized { .. })
    ));

    // A binding made here takes effect there at once: carol becomes an
    // editor of `team`.
    store
        .add_role_binding(RoleBinding {
            namespace: "team".parse().expect("namespace"),
            role: Role::Editor,
            subject: "carol".parse().expect("subject"),
        })
        .await
        .expect("binding");
    let registry = replica(&store).await; // reloads the bindings
    *ours.app.lock().expect("router") = router(&registry);
    let carol = client(&dist.base, Some("carol"));
    push_image(&carol, &repo, "v3", "carol")
        .await
        .unwrap_or_else(|e| panic!("carol's push after the binding: {e}\n{}", dist.log()));

    // Key rotation: a new key signs, certified by the same CA; Distribution,
    // configured once with the CA, accepts its tokens.
    let before = kid_of_token(&ours, "alice").await;
    let ca = store.token_ca().await.expect("store").expect("a CA");
    let now = time::OffsetDateTime::now_utc();
    let key = TokenSigningKey::generate(&ca, now, now, now + time::Duration::days(40))
        .expect("signing key");
    store.add_token_signing_key(key.clone()).await.expect("key");
    let registry = replica(&store).await; // a replica loading the keys
    *ours.app.lock().expect("router") = router(&registry);
    let after = kid_of_token(&ours, "alice").await;
    assert_ne!(before, after);
    assert_eq!(after, key.kid.as_str());
    let alice = client(&dist.base, Some("alice"));
    push_image(&alice, &repo, "v4", "rotated")
        .await
        .unwrap_or_else(|e| panic!("a push with the rotated key: {e}\n{}", dist.log()));
}
