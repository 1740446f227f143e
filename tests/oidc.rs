//! The OIDC provider against issuers over real HTTPS.
//!
//! - Always: an issuer stand-in served here over HTTPS (a throwaway CA from
//!   rcgen, keys from `registry_auth::oidc::testing`): discovery and JWKS
//!   with `--oidc-ca-file`, and the refusals of a bad issuer (untrusted
//!   certificate, another issuer's discovery document, keys over plain
//!   HTTP, an oversized JWKS, an issuer that never answers).
//! - With `REGISTRY_TEST_OIDC_ISSUER` (`bash .ci/services/oidc.sh start
//!   DIR`: the `oidc-provider` npm package, a certified OpenID Connect
//!   implementation): `registry-server` started with the `--oidc-*` flags
//!   accepts the provider's ID tokens as Basic passwords, as Bearer tokens
//!   and at `/v2/token`, pulls through a `group:oidc:devs` binding and is
//!   refused elsewhere; `registryctl login --oidc` completes the device flow
//!   and the auth file it writes pulls.

#[path = "common/examples.rs"]
mod examples;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use examples::{binaries, scrub, ServerProcess, ADMIN_PASSWORD};
use registry::api::client::{Client, ClientError, DockerConfig};
use registry::auth::oidc::testing::{TestIssuer, TEST_CLIENT_ID};
use registry::auth::oidc::{OidcConfig, OidcError, OidcProvider};
use registry::core::{media_type, Reference, RepositoryName};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// An issuer stand-in over HTTPS
// ---------------------------------------------------------------------------

/// What the stand-in serves.
struct Served {
    discovery: Value,
    jwks: Bytes,
    /// How long `/jwks` takes to answer.
    jwks_delay: Duration,
}

struct Stand {
    url: String,
    ca_pem: String,
    issuer: Arc<TestIssuer>,
    served: Arc<Mutex<Served>>,
}

async fn discovery(State(s): State<Arc<Mutex<Served>>>) -> Json<Value> {
    Json(s.lock().unwrap().discovery.clone())
}

async fn jwks(State(s): State<Arc<Mutex<Served>>>) -> Response {
    let (body, delay) = {
        let s = s.lock().unwrap();
        (s.jwks.clone(), s.jwks_delay)
    };
    tokio::time::sleep(delay).await;
    ([("content-type", "application/json")], body).into_response()
}

/// Serves discovery and JWKS over HTTPS on 127.0.0.1 with a fresh CA.
async fn stand_in() -> Stand {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let tls = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let issuer = Arc::new(TestIssuer::new(&url, "stand-in"));
    let served = Arc::new(Mutex::new(Served {
        discovery: json!({"issuer": url, "jwks_uri": format!("{url}/jwks")}),
        jwks: Bytes::from(issuer.jwks().to_string()),
        jwks_delay: Duration::ZERO,
    }));
    let app = Router::new()
        .route("/.well-known/openid-configuration", get(discovery))
        .route("/jwks", get(jwks))
        .with_state(served.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(app);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    Stand {
        url,
        ca_pem: ca.pem(),
        issuer,
        served,
    }
}

impl Stand {
    fn config(&self) -> OidcConfig {
        OidcConfig::new(self.url.parse().unwrap(), TEST_CLIENT_ID)
            .unwrap()
            .with_ca_pem(self.ca_pem.clone())
    }
}

#[tokio::test]
async fn discovery_and_keys_over_https_with_the_ca_file() {
    let stand = stand_in().await;
    let provider = OidcProvider::new(stand.config()).unwrap();
    assert_eq!(provider.load_keys().await.unwrap(), 1);
    let token = stand.issuer.id_token("alice", &["devs"]);
    assert!(provider.recognises(&token));
    let identity = provider.verify(&token).await.unwrap();
    assert_eq!(identity.subject().to_string(), "oidc:alice");
    assert_eq!(identity.provider_groups()[0].as_str(), "oidc:devs");
    // Keys fetched on first use, too, without load_keys.
    let lazy = OidcProvider::new(stand.config()).unwrap();
    assert!(lazy.verify(&token).await.is_ok());
}

#[tokio::test]
async fn an_issuer_certificate_outside_the_ca_file_is_refused() {
    let stand = stand_in().await;
    // The system roots do not know the stand-in's CA...
    let no_ca = OidcConfig::new(stand.url.parse().unwrap(), TEST_CLIENT_ID).unwrap();
    let error = OidcProvider::new(no_ca)
        .unwrap()
        .load_keys()
        .await
        .unwrap_err();
    assert!(matches!(error, OidcError::Fetch { .. }), "{error}");
    // ... and another CA file does not either.
    let other = stand_in().await;
    let wrong_ca = OidcConfig::new(stand.url.parse().unwrap(), TEST_CLIENT_ID)
        .unwrap()
        .with_ca_pem(other.ca_pem.clone());
    let error = OidcProvider::new(wrong_ca)
        .unwrap()
        .load_keys()
        .await
        .unwrap_err();
    assert!(matches!(error, OidcError::Fetch { .. }), "{error}");
    let garbage = OidcConfig::new(stand.url.parse().unwrap(), TEST_CLIENT_ID)
        .unwrap()
        .with_ca_pem("not a certificate");
    assert!(OidcProvider::new(garbage).is_err());
}

/// A way an issuer can be wrong, and whether the error says so.
struct BadIssuer {
    what: &'static str,
    change: fn(&mut Served),
    expected: fn(&OidcError) -> bool,
}

#[tokio::test]
async fn a_bad_issuer_is_refused() {
    let stand = stand_in().await;
    let url = stand.url.clone();
    let cases = [
        BadIssuer {
            what: "another issuer's document",
            change: |s| s.discovery["issuer"] = json!("https://elsewhere.test"),
            expected: |e| matches!(e, OidcError::IssuerMismatch { .. }),
        },
        BadIssuer {
            what: "keys over plain HTTP",
            change: |s| s.discovery["jwks_uri"] = json!("http://127.0.0.1:1/jwks"),
            expected: |e| matches!(e, OidcError::NotHttps(_)),
        },
        BadIssuer {
            what: "an oversized JWKS",
            change: |s| s.jwks = Bytes::from(vec![b' '; 2 * 1024 * 1024]),
            expected: |e| matches!(e, OidcError::TooLarge { .. }),
        },
        BadIssuer {
            what: "a JWKS that is not JSON",
            change: |s| s.jwks = Bytes::from_static(b"<html>"),
            expected: |e| matches!(e, OidcError::InvalidDocument { .. }),
        },
        BadIssuer {
            what: "a JWKS without a usable key",
            change: |s| s.jwks = Bytes::from_static(br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#),
            expected: |e| matches!(e, OidcError::NoUsableKeys),
        },
    ];
    for case in cases {
        {
            let mut served = stand.served.lock().unwrap();
            served.discovery = json!({"issuer": url, "jwks_uri": format!("{url}/jwks")});
            served.jwks = Bytes::from(stand.issuer.jwks().to_string());
            (case.change)(&mut served);
        }
        let provider = OidcProvider::new(stand.config()).unwrap();
        let error = provider.load_keys().await.unwrap_err();
        assert!((case.expected)(&error), "{}: {error}", case.what);
        // Its tokens are refused.
        let token = stand.issuer.id_token("alice", &[]);
        assert!(provider.verify(&token).await.is_err(), "{}", case.what);
    }
}

#[tokio::test]
async fn an_issuer_that_never_answers_times_out() {
    let stand = stand_in().await;
    stand.served.lock().unwrap().jwks_delay = Duration::from_secs(30);
    let mut config = stand.config();
    config.limits.request_timeout = Duration::from_millis(500);
    let provider = OidcProvider::new(config).unwrap();
    let started = Instant::now();
    let token = stand.issuer.id_token("alice", &[]);
    assert!(provider.verify(&token).await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// registry-server's settings: flags, REGISTRY_OIDC_* and oidc_* TOML keys
// ---------------------------------------------------------------------------

/// `registry-server ARGS` must refuse to start (exit 2) saying `expected`.
fn refuses_to_start(dir: &Path, args: &[&str], expected: &str) {
    let output = ServerProcess::command(dir, args)
        .output()
        .expect("running registry-server");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(expected), "{args:?}: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_settings_from_flags_environment_and_config_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    refuses_to_start(
        dir,
        &[
            "--oidc-issuer-url",
            "http://idp.test",
            "--oidc-client-id",
            "c",
        ],
        "must use https",
    );
    refuses_to_start(
        dir,
        &["--oidc-issuer-url", "https://idp.test"],
        "needs --oidc-client-id",
    );
    refuses_to_start(dir, &["--oidc-client-id", "c"], "need --oidc-issuer-url");
    refuses_to_start(
        dir,
        &[
            "--oidc-issuer-url",
            "https://idp.test",
            "--oidc-client-id",
            "c",
            "--oidc-ca-file",
            "/nonexistent/ca.pem",
        ],
        "cannot read --oidc-ca-file",
    );

    // The config file names the issuer, the environment the groups prefix.
    let stand = stand_in().await;
    let ca_file = dir.join("issuer-ca.pem");
    std::fs::write(&ca_file, &stand.ca_pem).unwrap();
    let config = dir.join("registry.toml");
    let toml = format!(
        "oidc_issuer_url = \"{}\"\noidc_client_id = \"{TEST_CLIENT_ID}\"\n\
         oidc_ca_file = \"{}\"\noidc_username_prefix = \"corp:\"\n",
        stand.url,
        ca_file.display()
    );
    std::fs::write(&config, toml).unwrap();
    let mut command = ServerProcess::command(dir, &["--config", config.to_str().unwrap()]);
    command.env("REGISTRY_OIDC_GROUPS_PREFIX", "team-");
    let (server, url) = ServerProcess::spawn(command);
    let token = stand.issuer.id_token("alice", &["devs"]);
    let me = client(&url, "x", &token).whoami().await.unwrap();
    let me = serde_json::to_value(me).unwrap();
    assert_eq!(me["subject"], "user:corp:alice", "{me}");
    assert_eq!(
        me["groups"],
        json!(["system:authenticated", "team-devs"]),
        "{me}"
    );
    let log = server.printed();
    assert!(log.contains("OIDC issuer ready"), "{log}");
}

// ---------------------------------------------------------------------------
// The real provider (REGISTRY_TEST_OIDC_ISSUER)
// ---------------------------------------------------------------------------

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

fn client(url: &str, user: &str, password: &str) -> Client {
    Client::builder(url)
        .basic_auth(user, password)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
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
