//! Parsing `SERVER` and the transport policy.

use super::*;

fn key(s: &str) -> String {
    Server::parse(s).unwrap().key().to_owned()
}

#[test]
fn key_is_host_and_port_without_scheme() {
    assert_eq!(key("registry.example.com"), "registry.example.com");
    assert_eq!(key("localhost:5000"), "localhost:5000");
    assert_eq!(key("http://localhost:5000"), "localhost:5000");
    assert_eq!(key("https://reg.example:8443/"), "reg.example:8443");
    assert_eq!(key("HTTPS://reg.example/v2/"), "reg.example");
    assert_eq!(key("127.0.0.1:5000"), "127.0.0.1:5000");
    assert_eq!(key("[::1]:5000"), "[::1]:5000");
    // An explicit default port stays: podman looks up `reg:443` as typed.
    assert_eq!(key("https://reg:443"), "reg:443");
}

#[test]
fn scheme_defaults_to_https() {
    let s = Server::parse("localhost:5000").unwrap();
    assert!(s.is_https());
    assert_eq!(s.base_url(), "https://localhost:5000/");
    let s = Server::parse("http://localhost:5000").unwrap();
    assert!(!s.is_https());
    assert_eq!(s.base_url(), "http://localhost:5000/");
    assert_eq!(
        s.login_command(false, None),
        "registryctl login http://localhost:5000 --insecure"
    );
    let s = Server::parse("https://reg:8443/").unwrap();
    assert_eq!(s.login_command(false, None), "registryctl login reg:8443");
}

#[test]
fn login_command_keeps_the_tls_choice() {
    let s = Server::parse("reg:8443").unwrap();
    assert_eq!(
        s.login_command(true, None),
        "registryctl login reg:8443 --insecure"
    );
    let ca = std::path::Path::new("/etc/reg/ca.pem");
    assert_eq!(
        s.login_command(false, Some(ca)),
        "registryctl login reg:8443 --ca-file /etc/reg/ca.pem"
    );
    // --insecure wins over a CA file, as it does when connecting.
    assert_eq!(
        s.login_command(true, Some(ca)),
        "registryctl login reg:8443 --insecure"
    );
    let s = Server::parse("http://reg:5000").unwrap();
    assert_eq!(
        s.login_command(false, Some(ca)),
        "registryctl login http://reg:5000 --insecure"
    );
}

#[test]
fn rejects_bad_servers() {
    for bad in [
        "",
        "ftp://host",
        "https://",
        "host/some/path",
        "user@host",
        "https://user:pw@host",
        "host:notaport",
        "host:70000",
        "ho st",
        "host:",
        "http://127.0.0.1:",
        "[::1]:",
    ] {
        assert!(Server::parse(bad).is_err(), "{bad:?} accepted");
    }
}

#[test]
fn plain_http_needs_insecure() {
    let http = Server::parse("http://localhost:5000").unwrap();
    let err = decide_transport(&http, false, false).unwrap_err();
    assert!(err.to_string().contains("--insecure"), "{err}");
    let (skip_verify, warnings) = decide_transport(&http, true, false).unwrap();
    assert!(!skip_verify);
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].starts_with("warning: --insecure: "));
    assert_eq!(decide_transport(&http, true, true).unwrap().1.len(), 2);
}

#[test]
fn https_verifies_unless_insecure() {
    let https = Server::parse("localhost:5000").unwrap();
    assert_eq!(
        decide_transport(&https, false, true).unwrap(),
        (false, vec![])
    );
    let (skip_verify, warnings) = decide_transport(&https, true, false).unwrap();
    assert!(skip_verify);
    assert!(warnings[0].starts_with("warning: --insecure: "));
}
