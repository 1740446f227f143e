//! End-to-end tests of the `registryctl` example against the real registry.
//!
//! - `admin_workflow_over_plain_http`: the registry with access control,
//!   served in-process on an ephemeral loopback port over plain HTTP, driven
//!   by the `registryctl` binary: login (auth file), whoami, namespaces,
//!   users, role bindings, service accounts, pull secrets, access tokens,
//!   logout, and the failures a user meets first.
//! - `https_with_a_private_ca`: the `registry-server` example binary serving
//!   HTTPS with a certificate from a throwaway CA (rcgen); `registryctl`
//!   trusts it with `--ca-file` only; SIGTERM still shuts down cleanly.
//! - `server_rejects_bad_tls_settings`: half or broken TLS settings.
//!
//! The example binaries are built by running `cargo build --example ...`
//! once per run of this test binary (a quick no-op when they are up to
//! date): `cargo test` builds an example with `test = true`, as registryctl
//! is, only as a test harness, never as the real program.

use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use base64::Engine as _;
use registry::api::{router, AuthConfig, Registry};
use registry::auth::{ensure_admin, MemoryAuthStore, Password, PasswordHasher, SigningKey};
use registry::storage::filesystem::Durability;
use registry::storage::Stores;
use serde_json::{json, Value};

const ALICE_PASSWORD: &str = "alice-pass-1";

#[path = "../common/examples.rs"]
mod examples;
mod https;
use examples::{binaries, scrub, ADMIN_PASSWORD};

// ---------------------------------------------------------------------------
// The example binaries
// ---------------------------------------------------------------------------

// ---------------------------------------------------------------------------
// registryctl
// ---------------------------------------------------------------------------

/// What one registryctl run did.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Asserts success; the standard output.
    fn ok(self, what: &str) -> String {
        assert!(
            self.status.success(),
            "`{what}` failed ({}):\nstdout: {}\nstderr: {}",
            self.status,
            self.stdout,
            self.stderr
        );
        self.stdout
    }

    /// Asserts exit status 1 and that stderr mentions `needle`.
    fn fails_with(self, what: &str, needle: &str) {
        assert_eq!(
            self.status.code(),
            Some(1),
            "`{what}` should exit 1:\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        assert!(
            self.stderr.contains("registryctl: ") && self.stderr.contains(needle),
            "`{what}`: stderr should mention {needle:?}: {}",
            self.stderr
        );
    }
}

/// Runs registryctl with `args` after `--config auth_file`, `stdin` as its
/// standard input.
fn registryctl(auth_file: &Path, args: &[&str], stdin: &str) -> Run {
    let home = auth_file.parent().expect("auth file in a directory");
    let mut command = Command::new(&binaries().registryctl);
    command
        .arg("--config")
        .arg(auth_file)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    scrub(&mut command, home);
    let mut child = command.spawn().expect("starting registryctl");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("writing stdin");
    drop(input);
    let output = child.wait_with_output().expect("waiting for registryctl");
    Run {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).expect("reading the auth file");
    serde_json::from_str(&text).expect("the auth file is JSON")
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// An HTTP client of the test itself (reqwest: rustls with ring).
fn http_client(ca_pem: Option<&str>) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut builder = reqwest::Client::builder().timeout(Duration::from_secs(10));
    if let Some(pem) = ca_pem {
        let ca = reqwest::Certificate::from_pem(pem.as_bytes()).expect("CA certificate");
        builder = builder.add_root_certificate(ca);
    }
    builder.build().expect("building the test's HTTP client")
}

/// `GET url` (Basic credentials if given): status and `WWW-Authenticate`.
fn get(client: &reqwest::Client, url: &str, basic: Option<(&str, &str)>) -> (u16, String) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut request = client.get(url);
        if let Some((user, password)) = basic {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.expect("GET");
        let challenge = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        (response.status().as_u16(), challenge)
    })
}

// ---------------------------------------------------------------------------
// In-process server (plain HTTP)
// ---------------------------------------------------------------------------

/// The registry with access control on its own thread and runtime (the test
/// body blocks on registryctl processes), stopped gracefully on drop.
struct InProcessServer {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl InProcessServer {
    fn start() -> Self {
        let dir = tempfile::tempdir().expect("temp data dir");
        let data = dir.path().to_owned();
        let (addr_tx, addr_rx) = mpsc::channel();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("server runtime");
            runtime.block_on(async move {
                let store = Arc::new(MemoryAuthStore::new());
                let hasher = PasswordHasher::insecure_fast();
                ensure_admin(store.as_ref(), &hasher, Some(Password::new(ADMIN_PASSWORD)))
                    .await
                    .expect("bootstrapping admin");
                let stores = Stores::data_dir(&data, Durability::None)
                    .await
                    .expect("Stores::data_dir");
                let mut config = AuthConfig::new(SigningKey::from_bytes([7; 32])).with_store(store);
                config.hasher = hasher;
                let registry = Registry::builder(stores)
                    .auth(config)
                    .build()
                    .await
                    .expect("building the registry");
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                    .await
                    .expect("binding a loopback port");
                addr_tx
                    .send(listener.local_addr().expect("local addr"))
                    .expect("sending the address");
                axum::serve(listener, router(&registry))
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await
                    .expect("axum::serve");
            });
        });
        let addr = addr_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the in-process server did not start");
        InProcessServer {
            addr,
            stop: Some(stop),
            thread: Some(thread),
            _dir: dir,
        }
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn admin_workflow_over_plain_http() {
    let server = InProcessServer::start();
    let addr = server.addr.to_string();
    let url = format!("http://{addr}");
    let tmp = tempfile::tempdir().expect("temp dir");
    let auth_file = tmp.path().join("config.json");
    // Other servers' entries and keys registryctl does not know must survive.
    let other = json!({"auth": b64("someone:else")});
    let seeded = json!({
        "auths": {"other.example": other},
        "credHelpers": {"gcr.io": "gcloud"},
    });
    std::fs::write(&auth_file, seeded.to_string()).expect("seeding the auth file");
    let ctl = |args: &[&str], stdin: &str| registryctl(&auth_file, args, stdin);
    let admin = |args: &[&str]| {
        let mut all = vec!["--server", url.as_str()];
        all.extend_from_slice(args);
        let what = args.join(" ");
        ctl(&all, "").ok(&what)
    };

    // Plain HTTP only with --insecure.
    ctl(
        &["login", &url, "-u", "admin", "--password-stdin"],
        ADMIN_PASSWORD,
    )
    .fails_with("login http:// without --insecure", "--insecure");
    // Wrong password: exit 1, nothing stored.
    ctl(
        &[
            "login",
            &url,
            "--insecure",
            "-u",
            "admin",
            "--password-stdin",
        ],
        "wrong-password\n",
    )
    .fails_with("login with a wrong password", "wrong username or password");
    assert_eq!(read_json(&auth_file), seeded);

    let out = ctl(
        &[
            "login",
            &url,
            "--insecure",
            "-u",
            "admin",
            "--password-stdin",
        ],
        &format!("{ADMIN_PASSWORD}\n"),
    )
    .ok("login");
    assert!(out.contains("Login Succeeded"), "{out}");
    // An identity token (an OAuth2 refresh token), not the password.
    let doc = read_json(&auth_file);
    assert_eq!(doc["auths"][&addr]["auth"], json!(b64("admin:")), "{doc}");
    let identity_token = doc["auths"][&addr]["identitytoken"].as_str().unwrap_or("");
    assert!(identity_token.starts_with("rgr_"), "{doc}");
    assert!(!doc.to_string().contains(ADMIN_PASSWORD), "{doc}");
    assert_eq!(doc["auths"]["other.example"], other, "{doc}");
    assert_eq!(doc["credHelpers"], seeded["credHelpers"], "{doc}");

    let out = admin(&["--insecure", "whoami"]);
    assert!(out.contains("admin"), "whoami: {out}");
    // The login's identity token is listed (a refresh token issued to
    // registryctl); the token CA needs no login.
    let out = admin(&["--insecure", "token", "list"]);
    assert!(
        out.lines()
            .any(|l| l.contains(" refresh ") && l.contains("registryctl")),
        "token list: {out}"
    );
    let pem = ctl(&["--server", &url, "--insecure", "token-ca"], "").ok("token-ca");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
    let out = admin(&["--insecure", "namespace", "create", "team"]);
    assert!(out.contains("namespace/team created"), "{out}");
    // A namespace policy: flags replace their fields, --unset clears one.
    let out = admin(&[
        "--insecure",
        "namespace",
        "policy",
        "set",
        "team",
        "--immutable-tags",
        "v*",
        "--immutable-tags",
        "release-*",
        "--keep-tag-revisions",
        "3",
        "--keep-younger-than",
        "14d",
    ]);
    assert!(out.contains("immutable-tags:       v*, release-*"), "{out}");
    assert!(out.contains("keep-younger-than:    2w"), "{out}");
    let out = admin(&[
        "--insecure",
        "namespace",
        "policy",
        "set",
        "team",
        "--unset",
        "keep-tag-revisions",
        "--quota-bytes",
        "1000000",
    ]);
    assert!(out.contains("keep-tag-revisions:   -"), "{out}");
    assert!(out.contains("quota-bytes:          1000000"), "{out}");
    // Usage against the quota: shown, recomputed, refused for a missing
    // namespace.
    let out = admin(&["--insecure", "namespace", "show", "team"]);
    assert!(
        out.contains("quota:        976.6 KiB (1000000 bytes)"),
        "{out}"
    );
    assert!(
        out.contains("bytes:        0 B (0 bytes, 0% of the quota)"),
        "{out}"
    );
    let out = admin(&["--insecure", "namespace", "usage", "team", "--recompute"]);
    assert!(
        out.contains("usage of namespace team recomputed: the counters were exact"),
        "{out}"
    );
    assert!(out.contains("imagestreams: 0"), "{out}");
    ctl(
        &[
            "--server",
            &url,
            "--insecure",
            "namespace",
            "usage",
            "missing",
        ],
        "",
    )
    .fails_with(
        "usage of a missing namespace",
        "namespace missing does not exist",
    );
    let out = admin(&[
        "--insecure",
        "--json",
        "namespace",
        "policy",
        "show",
        "team",
    ]);
    let shown: serde_json::Value = serde_json::from_str(&out).expect("policy JSON");
    assert_eq!(shown["immutable_tags"], json!(["v*", "release-*"]), "{out}");
    // A malformed duration is a usage error (exit 2) naming the grammar.
    let run = ctl(
        &[
            "--server",
            &url,
            "--insecure",
            "namespace",
            "policy",
            "set",
            "team",
            "--keep-younger-than",
            "2 weeks",
        ],
        "",
    );
    assert_eq!(run.status.code(), Some(2), "{}", run.stderr);
    assert!(
        run.stderr.contains("unit s, m, h, d or w"),
        "{}",
        run.stderr
    );
    let out = admin(&["--insecure", "namespace", "list"]);
    assert!(out.lines().any(|l| l.trim() == "team"), "{out}");
    let out = ctl(
        &["--server", &url, "--insecure", "user", "create", "alice"],
        "",
    );
    // `user create` insists on --password-stdin (usage error, exit 2).
    assert_eq!(out.status.code(), Some(2), "{}", out.stderr);
    let out = ctl(
        &[
            "--server",
            &url,
            "--insecure",
            "user",
            "create",
            "alice",
            "--password-stdin",
        ],
        ALICE_PASSWORD,
    )
    .ok("user create alice");
    assert!(out.contains("user/alice created"), "{out}");
    let out = admin(&[
        "--insecure",
        "rolebinding",
        "add",
        "team",
        "registry-editor",
        "user:alice",
    ]);
    assert!(out.contains("rolebinding added"), "{out}");
    let out = admin(&["--insecure", "rolebinding", "list", "team"]);
    assert!(
        out.lines()
            .any(|l| l.contains("registry-editor") && l.contains("user:alice")),
        "rolebinding list: {out}"
    );
    let out = admin(&["--insecure", "serviceaccount", "create", "team", "deployer"]);
    assert!(out.contains("deployer"), "{out}");
    let out = admin(&[
        "--insecure",
        "serviceaccount",
        "pull-secret",
        "team",
        "deployer",
    ]);
    let secret: Value = serde_json::from_str(&out).expect("pull secret is JSON");
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson", "{secret}");
    let encoded = secret["data"][".dockerconfigjson"]
        .as_str()
        .unwrap_or_else(|| panic!("no data..dockerconfigjson: {secret}"));
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .expect(".dockerconfigjson is base64");
    let config: Value = serde_json::from_slice(&decoded).expect(".dockerconfigjson is JSON");
    let auths = config["auths"].as_object().expect("auths");
    assert!(auths.keys().any(|k| k.contains(&addr)), "{config}");
    // Reading again shows the same secret; --rotate replaces it.
    let secret_password = |out: &str| -> String {
        let secret: Value = serde_json::from_str(out).expect("pull secret is JSON");
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(secret["data"][".dockerconfigjson"].as_str().unwrap_or(""))
            .expect(".dockerconfigjson is base64");
        let config: Value = serde_json::from_slice(&decoded).expect("JSON");
        let (_, entry) = config["auths"]
            .as_object()
            .expect("auths")
            .iter()
            .next()
            .expect("one");
        entry["password"].as_str().unwrap_or("").to_owned()
    };
    let pull_secret = [
        "--insecure",
        "serviceaccount",
        "pull-secret",
        "team",
        "deployer",
    ];
    let first = secret_password(&out);
    assert_eq!(
        secret_password(&admin(&pull_secret)),
        first,
        "a read rotated"
    );
    let mut rotate = pull_secret.to_vec();
    rotate.push("--rotate");
    let rotated = secret_password(&admin(&rotate));
    assert_ne!(rotated, first, "--rotate kept the secret");
    assert_eq!(secret_password(&admin(&pull_secret)), rotated);

    // Alice logs in (her own auth file) with the password given on stdin.
    let alice_file = tmp.path().join("alice.json");
    registryctl(
        &alice_file,
        &[
            "login",
            &url,
            "--insecure",
            "-u",
            "alice",
            "--password-stdin",
        ],
        ALICE_PASSWORD,
    )
    .ok("login as alice");
    let out = registryctl(&alice_file, &["--server", &url, "--insecure", "whoami"], "")
        .ok("whoami as alice");
    assert!(out.contains("alice"), "{out}");
    registryctl(
        &alice_file,
        &[
            "--server",
            &url,
            "--insecure",
            "namespace",
            "create",
            "mine",
        ],
        "",
    )
    .fails_with("namespace create as a non-admin", "");

    // Alice changes her password: the stored credentials follow, the old
    // password stops working; then the admin resets it.
    let alice_ctl = |args: &[&str], stdin: &str| {
        let mut all = vec!["--server", url.as_str(), "--insecure"];
        all.extend_from_slice(args);
        registryctl(&alice_file, &all, stdin)
    };
    alice_ctl(
        &["passwd", "--password-stdin"],
        "wrong-current\nalice-new-pass\n",
    )
    .fails_with("passwd with a wrong current password", "current password");
    alice_ctl(&["passwd", "--password-stdin"], "only-one-line\n")
        .fails_with("passwd with one line", "two lines");
    let out = alice_ctl(
        &["passwd", "--password-stdin"],
        &format!("{ALICE_PASSWORD}\nalice-new-pass\n"),
    )
    .ok("passwd");
    assert!(out.contains("updated"), "{out}");
    let client = http_client(None);
    let v2 = format!("{url}/v2/");
    assert_eq!(get(&client, &v2, Some(("alice", ALICE_PASSWORD))).0, 401);
    assert_eq!(get(&client, &v2, Some(("alice", "alice-new-pass"))).0, 200);
    let out = alice_ctl(&["whoami"], "").ok("whoami after passwd");
    assert!(out.contains("provider: local"), "{out}");
    ctl(
        &[
            "--server",
            &url,
            "--insecure",
            "user",
            "set-password",
            "alice",
            "--password-stdin",
        ],
        "alice-reset-pass\n",
    )
    .ok("user set-password");
    assert_eq!(get(&client, &v2, Some(("alice", "alice-new-pass"))).0, 401);
    alice_ctl(&["whoami"], "").fails_with("whoami after the reset", "rejected");

    // An access token works as a password with HTTP Basic.
    let token = admin(&[
        "--insecure",
        "token",
        "create",
        "--name",
        "ci",
        "--expires",
        "1h",
    ]);
    let token = token.trim();
    assert!(!token.is_empty() && !token.contains(char::is_whitespace));
    assert_eq!(get(&client, &v2, None).0, 401);
    assert_eq!(get(&client, &v2, Some(("ci", token))).0, 200);
    assert_eq!(get(&client, &v2, Some(("ci", "not-a-token"))).0, 401);

    let out = ctl(&["logout", &url], "").ok("logout");
    assert!(out.contains("Removed login credentials"), "{out}");
    let doc = read_json(&auth_file);
    assert!(doc["auths"].get(&addr).is_none(), "{doc}");
    assert_eq!(doc["auths"]["other.example"], other, "{doc}");
    ctl(&["--server", &url, "--insecure", "whoami"], "")
        .fails_with("whoami after logout", "no credentials");
}
