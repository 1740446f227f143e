//! `registryctl` contexts against the `registry-server` example binary:
//! after `login`, commands need neither `--server` nor the TLS flags;
//! `context list` marks the current server and `context use` switches;
//! `--server` and `REGISTRY_SERVER` still override; the contexts file is
//! private.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

#[path = "common/examples.rs"]
mod examples;
use examples::{binaries, scrub, ServerProcess, ADMIN_PASSWORD};

/// Runs registryctl with `--config auth_file` and `env`; its output.
fn ctl(auth_file: &Path, args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(&binaries().registryctl);
    command.arg("--config").arg(auth_file).args(args);
    scrub(&mut command, auth_file.parent().expect("a directory"));
    command.envs(env.iter().copied());
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting registryctl");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin.as_bytes()).expect("writing stdin");
    drop(input);
    child.wait_with_output().expect("waiting for registryctl")
}

/// Asserts success; the standard output.
fn ok(output: Output, what: &str) -> String {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(
        output.status.success(),
        "`{what}` failed ({}):\nstdout: {}\nstderr: {}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Asserts exit status 1; the standard error.
fn fails(output: Output, what: &str) -> String {
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(
        output.status.code(),
        Some(1),
        "`{what}` should exit 1: {err}"
    );
    err
}

fn namespaces(auth_file: &Path, server: &str) -> String {
    let args = ["--server", server, "--insecure", "namespace", "list"];
    ok(ctl(auth_file, &args, "", &[]), "namespace list")
}

#[test]
fn login_sets_the_context_and_context_use_switches() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (dir_a, dir_b) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(&dir_a).expect("dir a");
    std::fs::create_dir_all(&dir_b).expect("dir b");
    let (_a, url_a) = ServerProcess::start(&dir_a, &[]);
    let (_b, url_b) = ServerProcess::start(&dir_b, &[]);
    let key = |url: &str| url.trim_start_matches("http://").to_owned();
    let (key_a, key_b) = (key(&url_a), key(&url_b));
    let auth_file = tmp.path().join("home/config.json");
    let run = |args: &[&str]| ctl(&auth_file, args, "", &[]);

    // No context yet: a clear message, exit 1.
    let err = fails(
        run(&["namespace", "list"]),
        "namespace list without a context",
    );
    assert!(
        err.contains("no current context") && err.contains("registryctl login"),
        "{err}"
    );
    // An empty REGISTRY_SERVER is no server (before: `invalid server "": empty host`).
    let err = fails(
        ctl(
            &auth_file,
            &["namespace", "list"],
            "",
            &[("REGISTRY_SERVER", "")],
        ),
        "namespace list with an empty REGISTRY_SERVER",
    );
    assert!(err.contains("no current context"), "{err}");

    let login = |url: &str| {
        let args = [
            "login",
            url,
            "--insecure",
            "-u",
            "admin",
            "--password-stdin",
        ];
        ok(ctl(&auth_file, &args, ADMIN_PASSWORD, &[]), "login")
    };
    login(&url_a);
    // Neither --server nor --insecure: the context remembers both.
    let out = ok(
        run(&["namespace", "create", "team"]),
        "namespace create team",
    );
    assert!(out.contains("namespace/team created"), "{out}");
    assert!(ok(run(&["whoami"]), "whoami").contains("admin"));
    assert!(namespaces(&auth_file, &url_a).lines().any(|l| l == "team"));

    // The contexts file is private and says what login did.
    let contexts = tmp.path().join("home/registryctl.json");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&contexts)
            .expect("contexts file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&contexts).expect("read"))
        .expect("the contexts file is JSON");
    assert_eq!(doc["current"], key_a.as_str(), "{doc}");
    assert_eq!(doc["contexts"][&key_a]["insecure"], true, "{doc}");

    // A second login makes B current.
    login(&url_b);
    ok(
        run(&["namespace", "create", "on-b"]),
        "namespace create on-b",
    );
    assert!(namespaces(&auth_file, &url_b).lines().any(|l| l == "on-b"));
    assert!(!namespaces(&auth_file, &url_a).lines().any(|l| l == "on-b"));
    let list = ok(run(&["context", "list"]), "context list");
    let current: Vec<&str> = list.lines().filter(|l| l.starts_with('*')).collect();
    assert_eq!(current.len(), 1, "{list}");
    assert!(current[0].contains(&key_b), "{list}");
    assert!(
        list.contains(&key_a) && list.contains("plain HTTP"),
        "{list}"
    );

    // `context use` switches back; --server and REGISTRY_SERVER override.
    let out = ok(run(&["context", "use", &key_a]), "context use");
    assert!(out.contains(&key_a), "{out}");
    ok(
        run(&["namespace", "create", "on-a"]),
        "namespace create on-a",
    );
    assert!(namespaces(&auth_file, &url_a).lines().any(|l| l == "on-a"));
    let args = ["--server", &key_b, "namespace", "create", "via-flag"];
    ok(run(&args), "namespace create --server");
    assert!(namespaces(&auth_file, &url_b)
        .lines()
        .any(|l| l == "via-flag"));
    let env = [("REGISTRY_SERVER", url_b.as_str())];
    let args = ["--insecure", "namespace", "create", "via-env"];
    ok(
        ctl(&auth_file, &args, "", &env),
        "namespace create with REGISTRY_SERVER",
    );
    assert!(namespaces(&auth_file, &url_b)
        .lines()
        .any(|l| l == "via-env"));
    assert!(!namespaces(&auth_file, &url_a)
        .lines()
        .any(|l| l.starts_with("via-")));

    let err = fails(run(&["context", "use", "nowhere:1"]), "context use unknown");
    assert!(err.contains("nowhere:1") && err.contains(&key_a), "{err}");
}

#[cfg(unix)]
#[test]
fn the_context_remembers_a_private_ca() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let tmp = tempfile::tempdir().expect("temp dir");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key"))
        .expect("CA certificate");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca)
        .expect("leaf certificate");
    let path = |name: &str| tmp.path().join(name).to_str().expect("utf-8").to_owned();
    let (ca_file, cert, key) = (path("ca.pem"), path("cert.pem"), path("key.pem"));
    std::fs::write(&ca_file, ca.pem()).expect("ca.pem");
    std::fs::write(&cert, format!("{}{}", leaf.pem(), ca.pem())).expect("cert.pem");
    std::fs::write(&key, leaf_key.serialize_pem()).expect("key.pem");
    let (_server, url) =
        ServerProcess::start(tmp.path(), &["--tls-cert", &cert, "--tls-key", &key]);
    let auth_file = tmp.path().join("config.json");

    let args = [
        "login",
        &url,
        "--ca-file",
        &ca_file,
        "-u",
        "admin",
        "--password-stdin",
    ];
    ok(
        ctl(&auth_file, &args, ADMIN_PASSWORD, &[]),
        "login --ca-file",
    );
    // No --server, no --ca-file: verified against the remembered CA.
    let out = ok(ctl(&auth_file, &["whoami"], "", &[]), "whoami");
    assert!(out.contains("admin"), "{out}");
    let list = ok(
        ctl(&auth_file, &["context", "list"], "", &[]),
        "context list",
    );
    assert!(
        list.contains("--ca-file") && list.contains(&ca_file),
        "{list}"
    );
}
