//! `registry-server --database-url postgres://…` as a process: metadata and
//! auth records in PostgreSQL (a fresh database of the server
//! `REGISTRY_TEST_DATABASE_URL` names; skipped, saying so, when unset),
//! blobs under the data directory. An image pushed with `oci-client` is
//! pulled back, and again after a restart; the records are in the database
//! and no SQLite file was made. Bad and unreachable URLs stop the server at
//! start with a message naming the problem (no database needed).
//!
//!     eval "$(bash .ci/services/postgres.sh start /tmp/pg)"
//!     cargo test --test postgres_server
#![cfg(unix)]

#[path = "common/examples.rs"]
mod examples;
#[path = "common/test_database.rs"]
mod test_database;

use std::time::Duration;

use examples::{ServerProcess, ADMIN_PASSWORD};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciImageManifest, IMAGE_LAYER_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use sqlx::{ConnectOptions, Connection};
use test_database::{admin_sql, test_database};

fn client() -> Client {
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        read_timeout: Some(Duration::from_secs(30)),
        connect_timeout: Some(Duration::from_secs(5)),
        ..Default::default()
    })
}

fn admin() -> RegistryAuth {
    RegistryAuth::Basic("admin".to_owned(), ADMIN_PASSWORD.to_owned())
}

async fn pull_layer(reference: &Reference) -> Vec<u8> {
    let image = client()
        .pull(reference, &admin(), vec![IMAGE_LAYER_MEDIA_TYPE])
        .await
        .expect("pull");
    image.layers[0].data.to_vec()
}

#[tokio::test]
async fn server_keeps_metadata_in_postgres_across_restarts() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some((database_url, server, name)) = test_database("postgres_server").await else {
        return;
    };

    let dir = tempfile::tempdir().expect("tempdir");
    let args = ["--no-ui", "--database-url", database_url.as_str()];
    let (mut process, base_url) = ServerProcess::start(dir.path(), &args);
    let host = base_url.trim_start_matches("http://").to_owned();
    let reference: Reference = format!("{host}/team/app:v1").parse().expect("reference");

    let payload = b"a layer kept by PostgreSQL metadata".to_vec();
    let layers = vec![ImageLayer::oci_v1(payload.clone(), None)];
    let config = Config::oci_v1(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec(),
        None,
    );
    let manifest = OciImageManifest::build(&layers, &config, None);
    client()
        .push(&reference, &layers, config, &admin(), Some(manifest))
        .await
        .unwrap_or_else(|e| panic!("push: {e}\n{}", process.printed()));
    assert_eq!(pull_layer(&reference).await, payload);
    assert!(process.terminate().success(), "{}", process.printed());
    drop(process);

    // The records are in the database; SQLite was never used.
    assert!(
        !dir.path().join("data/registry.db").exists(),
        "metadata went to SQLite"
    );
    let mut conn = server
        .clone()
        .database(&name)
        .connect()
        .await
        .expect("connect to the test database");
    let tagged: Vec<(String, String)> = sqlx::query_as("SELECT repository, tag FROM tags")
        .fetch_all(&mut conn)
        .await
        .expect("tags");
    assert_eq!(tagged, [("team/app".to_owned(), "v1".to_owned())]);
    let admins: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE name = 'admin'")
        .fetch_one(&mut conn)
        .await
        .expect("users");
    assert_eq!(admins, 1, "the bootstrap admin is a database record");
    conn.close().await.expect("close");

    // A restart on the same database and data directory serves it still.
    let (mut process, base_url) = ServerProcess::start(dir.path(), &args);
    let host = base_url.trim_start_matches("http://");
    let reference: Reference = format!("{host}/team/app:v1").parse().expect("reference");
    assert_eq!(pull_layer(&reference).await, payload);
    assert!(process.terminate().success(), "{}", process.printed());
    drop(process);

    admin_sql(&server, &format!("DROP DATABASE {name} WITH (FORCE)")).await;
}

/// Two servers started at the same moment on one new database: the schema
/// is made once, `admin` is bootstrapped once (both accept its password),
/// and what is pushed through one is listed by the other.
#[tokio::test]
async fn two_servers_start_at_once_on_one_database() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some((database_url, server, name)) = test_database("two_servers_start_at_once").await
    else {
        return;
    };
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let args = ["--no-ui", "--database-url", database_url.as_str()];
    let starts: Vec<_> = dirs
        .iter()
        .map(|dir| {
            let command = ServerProcess::command(dir.path(), &args);
            std::thread::spawn(move || ServerProcess::spawn(command))
        })
        .collect();
    let servers: Vec<(ServerProcess, String)> = starts
        .into_iter()
        .map(|s| s.join().expect("server start"))
        .collect();
    let http = reqwest::Client::new();
    for (process, url) in &servers {
        let status = http
            .get(format!("{url}/v2/"))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
            .send()
            .await
            .expect("GET /v2/")
            .status();
        assert_eq!(status, 200, "{}", process.printed());
    }
    let host = servers[0].1.trim_start_matches("http://");
    let reference: Reference = format!("{host}/team/app:v1").parse().unwrap();
    let layers = vec![ImageLayer::oci_v1(b"pushed through one".to_vec(), None)];
    let config = Config::oci_v1(b"{}".to_vec(), None);
    let manifest = OciImageManifest::build(&layers, &config, None);
    client()
        .push(&reference, &layers, config, &admin(), Some(manifest))
        .await
        .expect("push through the first");
    let listed: serde_json::Value = http
        .get(format!("{}/v2/team/app/tags/list", servers[1].1))
        .basic_auth("admin", Some(ADMIN_PASSWORD))
        .send()
        .await
        .expect("tags through the second")
        .json()
        .await
        .expect("JSON");
    assert_eq!(listed["tags"], serde_json::json!(["v1"]));
    drop(servers);

    let mut conn = server.clone().database(&name).connect().await.unwrap();
    let admins: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(admins, 1, "admin is bootstrapped once");
    conn.close().await.unwrap();
    admin_sql(&server, &format!("DROP DATABASE {name} WITH (FORCE)")).await;
}

/// The server's exit and what it printed, started with `args`.
fn start_fails(args: &[&str]) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let output = ServerProcess::command(dir.path(), args)
        .output()
        .expect("run registry-server");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_bad_database_url_is_refused_naming_the_problem() {
    let (status, stderr) = start_fails(&["--database-url", "mysql://db/registry"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("only postgres://"), "{stderr}");
    let (status, stderr) = start_fails(&["--database-url", "not a url"]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("database URL is not a URL"), "{stderr}");

    // The environment variable and the config file key are read too.
    let dir = tempfile::tempdir().expect("tempdir");
    let output = ServerProcess::command(dir.path(), &[])
        .env("REGISTRY_DATABASE_URL", "mysql://db/registry")
        .output()
        .expect("run registry-server");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("only postgres://"), "{stderr}");
    let config = dir.path().join("registry.toml");
    std::fs::write(&config, "database_url = \"redis://cache/0\"\n").expect("config");
    let (status, stderr) = start_fails(&["--config", config.to_str().expect("utf-8")]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("config file") && stderr.contains("only postgres://"),
        "{stderr}"
    );
}

#[test]
fn an_unreachable_database_stops_the_start_and_hides_the_password() {
    // Nothing listens on port 1: refused at once.
    let (status, stderr) = start_fails(&[
        "--database-url",
        "postgres://registry:s3cret-pw@127.0.0.1:1/registry",
    ]);
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("cannot use the database"), "{stderr}");
    assert!(stderr.contains("127.0.0.1:1"), "{stderr}");
    assert!(
        !stderr.contains("s3cret-pw"),
        "the password is printed: {stderr}"
    );
}
