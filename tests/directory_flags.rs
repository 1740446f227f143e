//! The `registry-server` binary with its htpasswd and LDAP flags (and
//! their `REGISTRY_*` variables): an htpasswd line added, changed and
//! removed is picked up without a restart; LDAP users log in with StartTLS
//! against the real OpenLDAP of `.ci/services/ldap.sh` (skipped, saying
//! so, when `REGISTRY_TEST_LDAP_URL` is unset); settings that cannot work
//! stop the server at startup with a message naming them.
//!
//! The server binary is built and started by `tests/common/examples.rs`.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

#[path = "common/examples.rs"]
mod examples;

use examples::{ServerProcess, ADMIN_PASSWORD};

/// The status of `GET /v2/` with Basic credentials.
fn status(url: &str, user: &str, password: &str) -> u16 {
    // reqwest is built without a bundled crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{url}/v2/"))
            .basic_auth(user, Some(password))
            .send()
            .await
            .expect("GET /v2/")
            .status()
            .as_u16()
    })
}

/// Replaces `path` as `htpasswd` does: a new file renamed over the old.
fn write_htpasswd(path: &Path, lines: &[(&str, &str)]) {
    let mut text = String::new();
    for (user, password) in lines {
        let hash = bcrypt::hash(password, 4).unwrap();
        text.push_str(&format!("{user}:{hash}\n"));
    }
    let tmp = path.with_extension("new");
    let mut f = std::fs::File::create(&tmp).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.sync_all().unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Polls until `GET /v2/` as `user` answers `want` (the file is looked at
/// at most once a second), for at most 5 s.
fn eventually(url: &str, user: &str, password: &str, want: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = status(url, user, password);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{user}: still {got}, expected {want}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn htpasswd_changes_are_picked_up_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("htpasswd");
    // One line as Apache's `htpasswd -nbB -C 5` wrote it ($2y$).
    std::fs::write(
        &file,
        "alice:$2y$05$spAZkDbBDsRryIgEdldDgevqNrg0c1wHNBhQtACnC6li7m2UAqOqu\n\
         md5:$apr1$E.GNHqq3$y4lbbJJqqbSXADgP6dUFd/\n",
    )
    .unwrap();
    let mut command = ServerProcess::command(dir.path(), &[]);
    command.env("REGISTRY_HTPASSWD", &file);
    let (server, url) = ServerProcess::spawn(command);
    assert_eq!(status(&url, "alice", "alice-password"), 200);
    assert_eq!(status(&url, "alice", "wrong"), 401);
    assert_eq!(status(&url, "md5", "x"), 401, "an $apr1$ line is refused");
    assert_eq!(status(&url, "bob", "bob-1"), 401);
    assert_eq!(
        status(&url, "admin", ADMIN_PASSWORD),
        200,
        "local users too"
    );

    // Added.
    write_htpasswd(&file, &[("alice", "alice-password"), ("bob", "bob-1")]);
    eventually(&url, "bob", "bob-1", 200);
    // Changed: the old password stops working.
    write_htpasswd(&file, &[("alice", "alice-password"), ("bob", "bob-2")]);
    eventually(&url, "bob", "bob-1", 401);
    assert_eq!(status(&url, "bob", "bob-2"), 200);
    // Removed.
    write_htpasswd(&file, &[("bob", "bob-2")]);
    eventually(&url, "alice", "alice-password", 401);
    // Broken: the last good contents stay, with an error logged.
    std::fs::write(&file, "not an htpasswd line\n").unwrap();
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(status(&url, "bob", "bob-2"), 200);
    let printed = server.printed();
    assert!(
        printed.contains("line 2") && printed.contains("MD5 (apr1)"),
        "{printed}"
    );
    assert!(!printed.contains("E.GNHqq3"), "a hash was logged");
    assert!(
        printed.contains("keeping the previous contents"),
        "{printed}"
    );
}

#[test]
fn ldap_users_log_in_through_the_flags() {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(ldap_url) = var("REGISTRY_TEST_LDAP_URL") else {
        eprintln!(
            "SKIPPED ldap_users_log_in_through_the_flags: REGISTRY_TEST_LDAP_URL is not set \
             (eval \"$(bash .ci/services/ldap.sh start DIR)\" runs a test directory)"
        );
        return;
    };
    let need = |name: &str| var(name).unwrap_or_else(|| panic!("{name} must be set"));
    let dir = tempfile::tempdir().unwrap();
    let bind_dn = need("REGISTRY_TEST_LDAP_BIND_DN");
    let password_file = need("REGISTRY_TEST_LDAP_BIND_PASSWORD_FILE");
    let user_base = need("REGISTRY_TEST_LDAP_USER_BASE");
    let group_base = need("REGISTRY_TEST_LDAP_GROUP_BASE");
    let ca_file = need("REGISTRY_TEST_LDAP_CA_FILE");
    let (_server, url) = ServerProcess::start(
        dir.path(),
        &[
            "--ldap-url",
            &ldap_url,
            "--ldap-start-tls",
            "--ldap-ca-file",
            &ca_file,
            "--ldap-bind-dn",
            &bind_dn,
            "--ldap-bind-password-file",
            &password_file,
            "--ldap-user-base",
            &user_base,
            "--ldap-group-base",
            &group_base,
            "--ldap-timeout-secs",
            "2",
        ],
    );
    assert_eq!(status(&url, "alice", "alice-password"), 200);
    assert_eq!(status(&url, "émile", "émile-password"), 200);
    assert_eq!(status(&url, "alice", "wrong"), 401);
    assert_eq!(status(&url, "*", "alice-password"), 401);
    assert_eq!(status(&url, "admin", ADMIN_PASSWORD), 200);

    // The same through the config file's keys.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("registry.toml");
    std::fs::write(
        &config,
        format!(
            "ldap_url = {ldap_url:?}\nldap_start_tls = true\nldap_ca_file = {ca_file:?}\n\
             ldap_bind_dn = {bind_dn:?}\nldap_bind_password_file = {password_file:?}\n\
             ldap_user_base = {user_base:?}\nldap_user_filter = \"(&(objectClass=inetOrgPerson)(uid={{username}}))\"\n\
             ldap_group_base = {group_base:?}\nldap_group_filter = \"(member={{dn}})\"\n"
        ),
    )
    .unwrap();
    let config = config.to_string_lossy().into_owned();
    let (_server, url) = ServerProcess::start(dir.path(), &["--config", &config]);
    assert_eq!(status(&url, "bob", "bob-password"), 200);
    assert_eq!(status(&url, "bob", "alice-password"), 401);
}

/// Runs the server with `args` and `env`, which must make it exit at
/// startup printing `expected`.
fn refused(args: &[&str], env: &[(&str, &str)], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut command = ServerProcess::command(dir.path(), args);
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().expect("running registry-server");
    assert!(!output.status.success(), "{args:?} started");
    let text = String::from_utf8_lossy(&output.stderr).into_owned()
        + &String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(expected), "{args:?}: {text}");
}

#[test]
fn unusable_settings_stop_the_server_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    let missing = missing.to_str().unwrap();
    refused(&["--htpasswd", missing], &[], "cannot read htpasswd file");
    refused(
        &["--htpasswd", missing, "--no-auth"],
        &[],
        "cannot be combined with --no-auth",
    );
    refused(
        &["--ldap-user-base", "dc=x"],
        &[],
        "--ldap-user-base (ldap_user_base) needs --ldap-url",
    );
    refused(
        &["--ldap-url", "ldap://127.0.0.1:1"],
        &[],
        "--ldap-url needs --ldap-user-base",
    );
    refused(
        &["--ldap-user-base", "dc=x"],
        &[("REGISTRY_LDAP_URL", "http://ldap.example")],
        "scheme must be ldap or ldaps",
    );
    refused(
        &[
            "--ldap-url",
            "ldaps://127.0.0.1:1",
            "--ldap-user-base",
            "dc=x",
            "--ldap-start-tls",
        ],
        &[],
        "StartTLS is for ldap:// URLs",
    );
    refused(
        &[
            "--ldap-url",
            "ldap://127.0.0.1:1",
            "--ldap-user-base",
            "dc=x",
            "--ldap-user-filter",
            "(uid=alice)",
        ],
        &[],
        "must contain {username}",
    );
    refused(
        &[
            "--ldap-url",
            "ldap://127.0.0.1:1",
            "--ldap-user-base",
            "dc=x",
            "--ldap-bind-dn",
            "cn=r",
        ],
        &[],
        "--ldap-bind-dn needs --ldap-bind-password-file",
    );
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\n").unwrap();
    refused(
        &[
            "--ldap-url",
            "ldap://127.0.0.1:1",
            "--ldap-user-base",
            "dc=x",
            "--ldap-bind-dn",
            "cn=r",
            "--ldap-bind-password-file",
            empty.to_str().unwrap(),
        ],
        &[],
        "is empty",
    );
    refused(&["--ldaps-url-typo", "x"], &[], "unexpected argument");
}

#[test]
fn a_directory_that_is_down_at_startup_does_not_stop_local_users() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ldap_url = format!("ldap://127.0.0.1:{port}");
    let (server, url) = ServerProcess::start(
        dir.path(),
        &["--ldap-url", &ldap_url, "--ldap-user-base", "dc=example"],
    );
    assert_eq!(status(&url, "admin", ADMIN_PASSWORD), 200);
    assert_eq!(status(&url, "alice", "alice-password"), 401);
    let printed = server.printed();
    assert!(printed.contains("LDAP unavailable"), "{printed}");
    assert!(!printed.contains("alice-password"), "a password was logged");
}
