//! `registry-server`'s OIDC settings: flags, `REGISTRY_OIDC_*` and `oidc_*` TOML keys.

use std::path::Path;

use registry::auth::oidc::testing::TEST_CLIENT_ID;
use serde_json::json;

use crate::examples::ServerProcess;
use crate::support::{client, stand_in};

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
