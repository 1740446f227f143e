//! The `registry-server` example binary over HTTPS with a private CA, and
//! the TLS settings it refuses.

use std::path::Path;

use serde_json::json;

use crate::examples::{ServerProcess, ADMIN_PASSWORD};
use crate::{b64, get, http_client, read_json, registryctl};

/// A throwaway CA and a certificate for `localhost` / 127.0.0.1 it signed.
struct TestPki {
    ca_pem: String,
    /// Leaf then CA.
    chain_pem: String,
    /// PKCS#8.
    key_pem: String,
}

fn test_pki() -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "registryctl e2e test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("CA key"))
        .expect("CA certificate");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca)
        .expect("leaf certificate");
    TestPki {
        ca_pem: ca.pem(),
        chain_pem: format!("{}{}", leaf.pem(), ca.pem()),
        key_pem: leaf_key.serialize_pem(),
    }
}

#[cfg(unix)]
#[test]
fn https_with_a_private_ca() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let pki = test_pki();
    let ca_file = tmp.path().join("ca.pem");
    let cert_file = tmp.path().join("cert.pem");
    let key_file = tmp.path().join("key.pem");
    std::fs::write(&ca_file, &pki.ca_pem).expect("writing ca.pem");
    std::fs::write(&cert_file, &pki.chain_pem).expect("writing cert.pem");
    std::fs::write(&key_file, &pki.key_pem).expect("writing key.pem");
    let (mut server, url) = ServerProcess::start(
        tmp.path(),
        &[
            "--tls-cert",
            cert_file.to_str().expect("utf-8 path"),
            "--tls-key",
            key_file.to_str().expect("utf-8 path"),
        ],
    );
    let addr = url
        .strip_prefix("https://")
        .unwrap_or_else(|| panic!("startup line should show https://: {url}"))
        .to_owned();
    let auth_file = tmp.path().join("config.json");
    let ca = ca_file.to_str().expect("utf-8 path");
    let login = |extra: &[&str]| {
        let mut args = vec!["login", url.as_str(), "-u", "admin", "--password-stdin"];
        args.extend_from_slice(extra);
        registryctl(&auth_file, &args, ADMIN_PASSWORD)
    };

    // A client that does not trust the CA fails its handshake...
    login(&[]).fails_with("login without --ca-file", "certificate");
    // ... and so does one that speaks plain HTTP to the TLS port.
    let plain = http_client(None);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let plain_http =
        runtime.block_on(async { plain.get(format!("http://{addr}/v2/")).send().await });
    assert!(
        plain_http.is_err(),
        "plain HTTP to the TLS port: {plain_http:?}"
    );
    // Neither stops the server.
    let out = login(&["--ca-file", ca]).ok("login --ca-file");
    assert!(out.contains("Login Succeeded"), "{out}");
    let doc = read_json(&auth_file);
    assert_eq!(doc["auths"][&addr]["auth"], json!(b64("admin:")), "{doc}");
    assert!(doc["auths"][&addr]["identitytoken"].is_string(), "{doc}");
    let out = registryctl(
        &auth_file,
        &["--server", &url, "--ca-file", ca, "whoami"],
        "",
    )
    .ok("whoami over https");
    assert!(out.contains("admin"), "{out}");

    // Without a public URL the token realm follows the request, as https.
    let client = http_client(Some(&pki.ca_pem));
    let (status, challenge) = get(&client, &format!("{url}/v2/"), None);
    assert_eq!(status, 401);
    assert!(
        challenge.contains(&format!("realm=\"https://{addr}/")),
        "challenge: {challenge}"
    );
    let basic = Some(("admin", ADMIN_PASSWORD));
    assert_eq!(get(&client, &format!("{url}/v2/"), basic).0, 200);

    let status = server.terminate();
    assert!(
        status.success(),
        "registry-server after SIGTERM: {status}\n{}",
        server.printed()
    );
    assert!(
        server.printed().contains("shutting down"),
        "{}",
        server.printed()
    );
}

/// Runs the server binary expecting it to refuse to start.
fn server_refuses(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let output = ServerProcess::command(dir, args)
        .output()
        .expect("running registry-server");
    assert!(!output.status.success(), "registry-server {args:?} started");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn server_rejects_bad_tls_settings() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let pki = test_pki();
    let path = |name: &str| tmp.path().join(name).to_str().expect("utf-8").to_owned();
    let (cert, key, missing) = (path("cert.pem"), path("key.pem"), path("missing.pem"));
    std::fs::write(&cert, &pki.chain_pem).expect("writing cert.pem");
    std::fs::write(&key, &pki.key_pem).expect("writing key.pem");
    let other_key = path("other-key.pem");
    let other = rcgen::KeyPair::generate().expect("key");
    std::fs::write(&other_key, other.serialize_pem()).expect("writing other-key.pem");

    let (code, err) = server_refuses(tmp.path(), &["--tls-cert", &cert]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--tls-key"), "{err}");
    let (code, err) = server_refuses(tmp.path(), &["--tls-key", &key]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--tls-cert"), "{err}");

    let cases: [(&str, &str, &[&str]); 4] = [
        (
            &missing,
            &key,
            &["cannot read TLS certificate", "missing.pem"],
        ),
        (&cert, &missing, &["cannot read TLS key", "missing.pem"]),
        (&key, &key, &["key.pem", "holds no PEM certificate"]),
        (&cert, &other_key, &["cert.pem", "other-key.pem"]),
    ];
    for (cert, key, needles) in cases {
        let (code, err) = server_refuses(tmp.path(), &["--tls-cert", cert, "--tls-key", key]);
        assert_eq!(code, Some(1), "{err}");
        for needle in needles {
            assert!(
                err.contains(needle),
                "{cert} {key}: {needle:?} not in {err}"
            );
        }
    }
    let (_, err) = server_refuses(tmp.path(), &["--tls-cert", &cert, "--tls-key", &cert]);
    assert!(err.contains("holds no PEM private key"), "{err}");
    // Refused before the data directory was made.
    assert!(!tmp.path().join("data").exists());
}
