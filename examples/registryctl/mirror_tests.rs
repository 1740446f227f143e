//! `registryctl mirror sync` against a proxy registry (access control on,
//! `admin` a cluster-admin) whose namespace `cache` stands for an upstream
//! registry (access control off), both served on 127.0.0.1.

use std::sync::Arc;

use clap::Parser;
use registry::api::proxy::ProxyConfig;
use registry::api::{router, AuthConfig, Registry};
use registry::auth::{
    AuthStore, ClusterRole, ClusterRoleBinding, MemoryAuthStore, Password, PasswordHasher,
    PullSecretPolicy, SigningKey, User,
};
use registry::core::Digest;
use registry::storage::Stores;

use crate::cli::Cli;
use crate::{run, Env, Io};

const PASSWORD: &str = "s3cret-pass";

async fn serve(app: axum::Router) -> String {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}")
}

/// The upstream with `team/app:v1` and `:v2` (one layer each) and `:other`.
async fn upstream() -> String {
    let base = serve(router(&Registry::in_memory())).await;
    let http = reqwest::Client::new();
    for tag in ["v1", "v2", "other"] {
        let mut descriptors = Vec::new();
        for blob in [
            format!("{{\"os\":\"linux\",\"tag\":\"{tag}\"}}"),
            format!("layer {tag}"),
        ] {
            let digest = Digest::sha256_of(blob.as_bytes());
            let r = http
                .post(format!("{base}/v2/team/app/blobs/uploads/?digest={digest}"))
                .body(blob.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            descriptors.push((digest, blob.len()));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": descriptors[0].0, "size": descriptors[0].1},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                        "digest": descriptors[1].0, "size": descriptors[1].1}],
        });
        let r = http
            .put(format!("{base}/v2/team/app/manifests/{tag}"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(serde_json::to_vec(&manifest).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    base
}

async fn proxy(upstream: &str) -> String {
    let store = Arc::new(MemoryAuthStore::new());
    let hasher = PasswordHasher::insecure_fast();
    let user = User {
        name: "admin".parse().unwrap(),
        password_hash: Some(hasher.hash(&Password::new(PASSWORD)).unwrap()),
        created: time::OffsetDateTime::now_utc(),
    };
    store.create_user(user).await.unwrap();
    let binding = ClusterRoleBinding {
        role: ClusterRole::ClusterAdmin,
        subject: "admin".parse().unwrap(),
    };
    store.add_cluster_role_binding(binding).await.unwrap();
    let mut config =
        AuthConfig::new(SigningKey::generate().unwrap()).with_store(store as Arc<dyn AuthStore>);
    config.hasher = hasher;
    config.pull_secrets = PullSecretPolicy::new(Vec::<String>::new());
    let registry = Registry::builder(Stores::in_memory())
        .auth(config)
        .proxy(ProxyConfig::new(
            "cache".parse().unwrap(),
            upstream.parse().unwrap(),
        ))
        .build()
        .await
        .unwrap();
    serve(router(&registry)).await
}

/// Runs registryctl with `config` as its auth file; (result, stdout).
async fn exec(config: &str, args: &[&str], stdin: &str) -> (Result<(), String>, String) {
    let mut all = vec!["registryctl", "--config", config];
    all.extend_from_slice(args);
    let cli = Cli::try_parse_from(all).expect("valid command line");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut input = stdin.as_bytes();
    let mut io = Io {
        stdin: &mut input,
        out: &mut out,
        err: &mut err,
        env: Env::default(),
    };
    let result = run(cli, &mut io).await.map_err(|e| e.to_string());
    (result, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn mirror_sync_prints_progress_and_resumes() {
    let base = proxy(&upstream().await).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    let config = config.to_str().unwrap();
    let login = [
        "login",
        &base,
        "--insecure",
        "-u",
        "admin",
        "--password-stdin",
    ];
    let (result, _) = exec(config, &login, PASSWORD).await;
    result.unwrap();

    let sync = ["mirror", "sync", "cache/team/app", "--tags", "v*"];
    let (result, out) = exec(config, &sync, "").await;
    result.unwrap();
    assert!(out.contains("syncing 2 tags of 127.0.0.1:"), "{out}");
    assert!(out.contains("  v1: sha256:"), "{out}");
    assert!(out.contains("2 blobs fetched"), "{out}");
    assert!(
        out.contains("done: 2 tags synced, 0 failed; 4 blobs fetched"),
        "{out}"
    );
    // Again: all stored, nothing fetched.
    let (result, out) = exec(config, &sync, "").await;
    result.unwrap();
    assert!(
        out.contains("0 blobs fetched (0 B), 4 already stored"),
        "{out}"
    );

    // Bad input and a namespace that is not a proxy: clear refusals.
    let (result, _) = exec(
        config,
        &["mirror", "sync", "cache/team/app", "--tags", "v/1"],
        "",
    )
    .await;
    assert!(result.unwrap_err().contains("tags"));
    let (result, _) = exec(config, &["mirror", "sync", "team/app"], "").await;
    assert!(result.unwrap_err().contains("not a proxy namespace"));
    assert!(Cli::try_parse_from(["registryctl", "mirror", "sync", "Cache/App"]).is_err());
}
