//! A real OIDC provider (`REGISTRY_TEST_OIDC_ISSUER`): server logins and `registryctl login --oidc`.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use registry::api::client::{Client, ClientError, DockerConfig};
use registry::core::{media_type, Reference, RepositoryName};
use serde_json::{json, Value};

use crate::examples::{binaries, scrub, ServerProcess, ADMIN_PASSWORD};
use crate::support::client;

/// The provider's settings, or `None` (and a line saying so) when unset.
struct RealIssuer {
    issuer: String,
    ca_file: String,
    client_id: String,
}

fn real_issuer(test: &str) -> Option<RealIssuer> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (
        var("REGISTRY_TEST_OIDC_ISSUER"),
        var("REGISTRY_TEST_OIDC_CA_FILE"),
    ) {
        (Some(issuer), Some(ca_file)) => Some(RealIssuer {
            issuer,
            ca_file,
            client_id: var("REGISTRY_TEST_OIDC_CLIENT_ID").unwrap_or_else(|| "registry".into()),
        }),
        _ => {
            eprintln!(
                "SKIPPED {test}: REGISTRY_TEST_OIDC_ISSUER / REGISTRY_TEST_OIDC_CA_FILE are not set \
                 (eval \"$(bash .ci/services/oidc.sh start DIR)\" starts a real OIDC provider)"
            );
            None
        }
    }
}

impl RealIssuer {
    fn http(&self) -> reqwest::Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let ca = std::fs::read(&self.ca_file).expect("CA file");
        reqwest::Client::builder()
            .tls_certs_only(reqwest::Certificate::from_pem_bundle(&ca).unwrap())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }

    /// The fixture's test-only endpoints (`.ci/services/oidc/provider.mjs`).
    async fn fixture(&self, path: &str, body: Value) -> Value {
        let r = self
            .http()
            .post(format!("{}{path}", self.issuer))
            .json(&body)
            .send()
            .await
            .expect("the OIDC test provider answers");
        let status = r.status();
        let body: Value = r.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// An ID token for `login` (password `<login>-password`) from `client`.
    async fn id_token(&self, login: &str, client: &str) -> String {
        let body = json!({"login": login, "password": format!("{login}-password"),
                          "client_id": client, "scope": "openid email groups"});
        let answer = self.fixture("/test/id-token", body).await;
        answer["id_token"].as_str().expect("an ID token").to_owned()
    }

    fn server_flags(&self) -> Vec<String> {
        [
            "--oidc-issuer-url",
            &self.issuer,
            "--oidc-client-id",
            &self.client_id,
            "--oidc-ca-file",
            &self.ca_file,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}

/// As the admin: namespace `devs` viewable by group `oidc:devs`, with
/// `devs/app:v1` in it.
async fn seed(url: &str) -> RepositoryName {
    let admin = client(url, "admin", ADMIN_PASSWORD);
    let devs = "devs".parse().unwrap();
    admin.create_namespace(&devs).await.unwrap();
    let binding =
        registry::api::model::admin::BindingRequest::new("registry-viewer", "group:oidc:devs");
    admin.add_role_binding(&devs, &binding).await.unwrap();
    let repo: RepositoryName = "devs/app".parse().unwrap();
    let config = Bytes::from_static(br#"{"architecture":"amd64","os":"linux"}"#);
    let digest = admin.push_blob(&repo, config.clone()).await.unwrap();
    let manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":{}}},"layers":[]}}"#,
        media_type::OCI_MANIFEST,
        media_type::OCI_CONFIG,
        digest,
        config.len()
    );
    admin
        .put_manifest(
            &repo,
            &tag(),
            media_type::OCI_MANIFEST,
            Bytes::from(manifest),
        )
        .await
        .unwrap();
    repo
}

fn tag() -> Reference {
    Reference::Tag("v1".parse().unwrap())
}

fn is_refused(e: &ClientError) -> bool {
    matches!(
        e,
        ClientError::Unauthorized { .. } | ClientError::Denied { .. }
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_issuer_tokens_log_in_and_pull_through_group_bindings() {
    let Some(real) = real_issuer("real_issuer_tokens_log_in_and_pull_through_group_bindings")
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let flags = real.server_flags();
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (server, url) = ServerProcess::start(tmp.path(), &args);
    let repo = seed(&url).await;

    // alice (groups devs, qa): Basic with any user name, Bearer, and the
    // token flow (the client trades its Basic credentials at /v2/token).
    let alice = real.id_token("alice", &real.client_id).await;
    let as_alice = client(&url, "x", &alice);
    as_alice.ping().await.unwrap();
    let bearer = Client::builder(&url).access_token(&alice).build().unwrap();
    bearer.ping().await.unwrap();
    let me = bearer.whoami().await.unwrap();
    let me = serde_json::to_value(&me).unwrap();
    assert_eq!(me["provider"], "oidc", "{me}");
    assert_eq!(me["subject"], "user:oidc:alice", "{me}");
    assert_eq!(
        me["groups"],
        json!(["system:authenticated", "oidc:devs", "oidc:qa"]),
        "{me}"
    );
    let pulled = as_alice.get_manifest(&repo, &tag()).await.unwrap();
    assert!(!pulled.bytes.is_empty());
    let refused = as_alice
        .push_blob(&"devs/other".parse().unwrap(), Bytes::from_static(b"x"))
        .await
        .unwrap_err();
    assert!(is_refused(&refused), "{refused}");

    // bob (groups ops and system:masters, which is dropped): not in devs.
    let bob = real.id_token("bob", &real.client_id).await;
    let as_bob = client(&url, "bob", &bob);
    as_bob.ping().await.unwrap();
    let refused = as_bob.get_manifest(&repo, &tag()).await.unwrap_err();
    assert!(is_refused(&refused), "{refused}");
    let bob_me = serde_json::to_value(as_bob.whoami().await.unwrap()).unwrap();
    assert_eq!(
        bob_me["groups"],
        json!(["system:authenticated", "oidc:ops"])
    );

    // A real token for another audience (client `other`, signed ES256).
    let other = real.id_token("alice", "other").await;
    let refused = client(&url, "x", &other).ping().await.unwrap_err();
    assert!(
        matches!(refused, ClientError::Unauthorized { .. }),
        "{refused}"
    );
    // A tampered one.
    let mut parts: Vec<String> = alice.split('.').map(str::to_owned).collect();
    parts[2] = parts[2].chars().rev().collect();
    let refused = client(&url, "x", &parts.join("."))
        .ping()
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ClientError::Unauthorized { .. }),
        "{refused}"
    );
    // The local admin still works.
    client(&url, "admin", ADMIN_PASSWORD).ping().await.unwrap();
    let log = server.printed();
    assert!(log.contains("OIDC issuer ready"), "{log}");
    assert!(log.contains("OIDC token refused"), "{log}");
}

/// Runs `registryctl login --oidc` against `url`; `act` gets the user code
/// once it is printed. The exit status and what it printed.
async fn login_oidc(
    real: &RealIssuer,
    url: &str,
    auth_file: &Path,
    home: &Path,
    act: impl FnOnce(String) -> tokio::task::JoinHandle<()>,
) -> (bool, String) {
    let mut command = Command::new(&binaries().registryctl);
    scrub(&mut command, home);
    command
        .args(["login", url, "--insecure", "--to"])
        .arg(auth_file)
        .args(["--oidc", "--oidc-issuer-url", &real.issuer])
        .args(["--oidc-client-id", &real.client_id])
        .args([
            "--oidc-ca-file",
            &real.ca_file,
            "--oidc-scope",
            "groups,email",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("registryctl");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if let Some(rest) = line.split("enter the code ").nth(1) {
                let code = rest.split_whitespace().next().unwrap_or_default();
                let _ = tx.send(code.to_owned());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let code = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("registryctl prints a user code");
    act(code).await.unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let err = reader.join().unwrap();
    let out = String::from_utf8_lossy(&status.stdout).into_owned();
    (status.status.success(), format!("{out}{err}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registryctl_login_oidc_completes_the_device_flow_and_the_auth_file_pulls() {
    let Some(real) =
        real_issuer("registryctl_login_oidc_completes_the_device_flow_and_the_auth_file_pulls")
    else {
        return;
    };
    let real = Arc::new(real);
    let tmp = tempfile::tempdir().unwrap();
    let flags = real.server_flags();
    let args: Vec<&str> = flags.iter().map(String::as_str).collect();
    let (_server, url) = ServerProcess::start(tmp.path(), &args);
    let repo = seed(&url).await;
    let auth_file = tmp.path().join("auth/config.json");

    // The user signs in as alice at the verification URI.
    let approver = real.clone();
    let (ok, printed) = login_oidc(&real, &url, &auth_file, tmp.path(), move |code| {
        tokio::spawn(async move {
            let body = json!({"user_code": code, "login": "alice", "password": "alice-password"});
            let answer = approver.fixture("/test/approve", body).await;
            assert_eq!(answer["approved"], true, "{answer}");
        })
    })
    .await;
    assert!(ok, "{printed}");
    assert!(printed.contains("Login Succeeded"), "{printed}");
    assert!(
        printed.contains("the password stored is the ID token"),
        "{printed}"
    );

    // What it wrote pulls, as podman or skopeo would use it.
    let host = url.trim_start_matches("http://");
    let stored = DockerConfig::load(&auth_file)
        .unwrap()
        .credentials(host)
        .unwrap()
        .expect("credentials for the registry");
    let from_file = Client::builder(&url).credentials(stored).build().unwrap();
    assert!(from_file.get_manifest(&repo, &tag()).await.is_ok());

    // The user declines: access_denied, and the stored login stays.
    let before = std::fs::read(&auth_file).unwrap();
    let denier = real.clone();
    let (ok, printed) = login_oidc(&real, &url, &auth_file, tmp.path(), move |code| {
        tokio::spawn(async move {
            let answer = denier
                .fixture("/test/approve", json!({"user_code": code, "deny": true}))
                .await;
            assert_eq!(answer["denied"], true, "{answer}");
        })
    })
    .await;
    assert!(!ok, "{printed}");
    assert!(printed.contains("access_denied"), "{printed}");
    assert_eq!(std::fs::read(&auth_file).unwrap(), before);
}
