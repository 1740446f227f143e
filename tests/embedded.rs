//! The `embedded` example's host application: its own authentication
//! (API keys), the registry's authorization. A push through the host is
//! recorded as the host's user, the host's users get exactly the roles the
//! host gave them, and listings are filtered for them. Driven with the
//! `oci-client` crate over real HTTP.

#[path = "../examples/embedded/app.rs"]
#[allow(dead_code)]
mod app;

use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::OciImageManifest;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use registry::api::Caller;
use registry::auth::Identity;
use registry::storage::Stores;

fn client() -> Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        read_timeout: Some(Duration::from_secs(30)),
        connect_timeout: Some(Duration::from_secs(5)),
        ..Default::default()
    })
}

fn basic(user: &str, key: &str) -> RegistryAuth {
    RegistryAuth::Basic(user.to_owned(), key.to_owned())
}

async fn start() -> (String, registry::api::Registry, tokio::task::JoinHandle<()>) {
    // reqwest and oci-client are built without a bundled crypto provider.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let users = app::Users::new(&[
        ("alice", "alice-key"),
        ("bob", "bob-key"),
        ("carol", "carol-key"),
    ]);
    let (app, registry) = app::app(Stores::in_memory(), users, &app::TEAM_GRANTS)
        .await
        .expect("host app");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let host = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (host, registry, task)
}

fn image() -> (Vec<ImageLayer>, Config) {
    let layer = ImageLayer::oci_v1(b"a layer pushed through the host".to_vec(), None);
    let config = Config::oci_v1(
        br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#
            .to_vec(),
        None,
    );
    (vec![layer], config)
}

#[tokio::test]
async fn host_users_get_exactly_the_roles_the_host_gave_them() {
    let (host, registry, task) = start().await;
    let reference: Reference = format!("{host}/team/app:v1").parse().unwrap();
    let (layers, config) = image();
    let manifest = OciImageManifest::build(&layers, &config, None);

    // alice (editor) pushes through the host's authentication.
    let pushed = client()
        .push(
            &reference,
            &layers,
            config.clone(),
            &basic("alice", "alice-key"),
            Some(manifest.clone()),
        )
        .await
        .expect("alice may push to team/");
    assert!(pushed.manifest_url.contains("/v2/team/app/manifests/"));

    // bob (viewer) pulls it, and may not push.
    let pulled = client()
        .pull(
            &reference,
            &basic("bob", "bob-key"),
            vec![oci_client::manifest::IMAGE_LAYER_MEDIA_TYPE],
        )
        .await
        .expect("bob may pull from team/");
    assert_eq!(pulled.layers[0].data, layers[0].data);
    let other: Reference = format!("{host}/team/bobs:v1").parse().unwrap();
    let refused = client()
        .push(
            &other,
            &layers,
            config.clone(),
            &basic("bob", "bob-key"),
            Some(manifest.clone()),
        )
        .await;
    assert!(refused.is_err(), "a viewer must not push");

    // carol has no role: she may neither pull nor push, and a wrong key is
    // the host's 401.
    let denied = client()
        .pull(
            &reference,
            &basic("carol", "carol-key"),
            vec![oci_client::manifest::IMAGE_LAYER_MEDIA_TYPE],
        )
        .await;
    assert!(denied.is_err(), "carol has no role in team/");
    let http = reqwest::Client::new();
    let r = http
        .get(format!("http://{host}/v2/team/app/tags/list"))
        .basic_auth("alice", Some("not-her-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["www-authenticate"],
        "Basic realm=\"embedded\"",
        "the host's challenge, not the registry's token realm"
    );

    // The catalog is filtered per host user.
    let catalog = |user: &'static str, key: &'static str| {
        let http = http.clone();
        let url = format!("http://{host}/v2/_catalog");
        async move {
            let r = http
                .get(url)
                .basic_auth(user, Some(key))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{user}");
            r.json::<serde_json::Value>().await.unwrap()["repositories"].clone()
        }
    };
    assert_eq!(
        catalog("bob", "bob-key").await,
        serde_json::json!(["team/app"])
    );
    assert_eq!(catalog("carol", "carol-key").await, serde_json::json!([]));

    // The push is recorded as the host's user: tag history through the
    // Image API, and through the service core from Rust.
    let r = http
        .get(format!(
            "http://{host}/apis/image/v1/namespaces/team/imagestreamtags/app:v1"
        ))
        .basic_auth("bob", Some("bob-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tag: serde_json::Value = r.json().await.unwrap();
    assert_eq!(tag["history"][0]["actor"], "alice");
    let repo = "team/app".parse().unwrap();
    let bob = Caller::new(Identity::user("bob".parse().unwrap()));
    let history = registry
        .image_stream_tag(&bob, &repo, "v1".parse().unwrap(), "host", None, None)
        .await
        .unwrap();
    assert_eq!(history.history[0].actor, "alice");
    task.abort();
}

#[tokio::test]
async fn the_host_keeps_its_own_routes_and_anonymous_callers_are_asked_to_log_in() {
    let (host, _registry, task) = start().await;
    let http = reqwest::Client::new();
    let r = http.get(format!("http://{host}/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("host application"));
    let r = http.get(format!("http://{host}/v2/")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"embedded\"");
    let r = http
        .get(format!("http://{host}/v2/"))
        .basic_auth("alice", Some("alice-key"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    task.abort();
}
