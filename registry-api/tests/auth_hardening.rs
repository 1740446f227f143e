//! Hardening of authentication (issue 8): bounded password checks and
//! failed-login limits, registry tokens confined to the distribution API
//! and revoked with their source, token lifetimes in range, forwarded
//! headers only from trusted proxies, and pull secrets that a read does not
//! rotate.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use base64::Engine as _;
use common::{basic, Client, Reply, PASSWORD};
use registry_api::auth::SecureListener;
use registry_api::{AuthConfig, AuthSettings, Registry};
use registry_auth::{
    new_managed_token, AuthStore, ClusterRole, ClusterRoleBinding, LoginLimits, MemoryAuthStore,
    Password, PasswordHasher, PullSecretPolicy, Role, RoleBinding, ServiceAccount,
    ServiceAccountRef, SigningKey, Subject, User,
};

struct World {
    client: Client,
    store: Arc<MemoryAuthStore>,
    key: SigningKey,
}

/// `root` (cluster-admin), `alice` (editor of `team`), `bob` (viewer of
/// `team`), all with [`PASSWORD`]; `team/app` pushed.
async fn world(settings: AuthSettings) -> World {
    let store = Arc::new(MemoryAuthStore::new());
    let hasher = PasswordHasher::insecure_fast();
    let hash = hasher.hash(&Password::new(PASSWORD)).unwrap();
    for name in ["root", "alice", "bob", "carol"] {
        store
            .create_user(User {
                name: name.parse().unwrap(),
                password_hash: Some(hash.clone()),
                created: time::OffsetDateTime::now_utc(),
            })
            .await
            .unwrap();
    }
    for (role, subject) in [(Role::Editor, "alice"), (Role::Viewer, "bob")] {
        store
            .add_role_binding(RoleBinding {
                namespace: "team".parse().unwrap(),
                role,
                subject: subject.parse::<Subject>().unwrap(),
            })
            .await
            .unwrap();
    }
    store
        .add_cluster_role_binding(ClusterRoleBinding {
            role: ClusterRole::ClusterAdmin,
            subject: "root".parse().unwrap(),
        })
        .await
        .unwrap();
    let key = SigningKey::from_bytes([42; 32]);
    let mut config = AuthConfig::new(key.clone()).with_store(store.clone() as Arc<dyn AuthStore>);
    config.hasher = hasher;
    config.service = "registry.test".into();
    config.pull_secrets = PullSecretPolicy::new(Vec::<String>::new());
    config.settings = settings;
    let registry = Registry::builder(registry_storage::Stores::in_memory())
        .auth(config)
        .build()
        .await
        .unwrap();
    let client = Client::with(registry);
    let root = basic("root", PASSWORD);
    let data = b"layer";
    let d = registry_core::Digest::sha256_of(data);
    let r = client
        .call(
            Method::POST,
            &format!("/v2/team/app/blobs/uploads/?digest={d}"),
            &[("authorization", &root)],
            data.to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    World { client, store, key }
}

fn peer(addr: &str) -> ConnectInfo<SocketAddr> {
    ConnectInfo(addr.parse().unwrap())
}

/// A request from `from` (the peer address the server recorded).
async fn from(
    client: &Client,
    from: &str,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .extension(peer(from));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    client
        .send(b.body(Body::from(body.to_owned())).unwrap())
        .await
}

/// A registry token from `/v2/token` for `scope` (empty: none).
async fn registry_token(client: &Client, auth: &str, scope: &str) -> String {
    let uri = if scope.is_empty() {
        "/v2/token?service=registry.test".to_owned()
    } else {
        format!("/v2/token?service=registry.test&scope={scope}")
    };
    let r = client
        .bare(Method::GET, &uri, &[("authorization", auth)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.json()["token"].as_str().unwrap().to_owned()
}

async fn tags_status(client: &Client, auth: &str) -> StatusCode {
    client
        .bare(
            Method::GET,
            "/v2/team/app/tags/list",
            &[("authorization", auth)],
        )
        .await
        .status
}

// Fails before: a root registry token scoped to pull team/app minted an
// access token and created a user on the admin API, and was swapped at
// /v2/token for one with push.
#[tokio::test]
async fn registry_tokens_work_only_on_the_distribution_api() {
    let w = world(AuthSettings::default()).await;
    let root = basic("root", PASSWORD);
    for scope in ["repository:team/app:pull", ""] {
        let bearer = format!("Bearer {}", registry_token(&w.client, &root, scope).await);
        let json = [
            ("authorization", bearer.as_str()),
            ("content-type", "application/json"),
        ];
        let r = w
            .client
            .call(
                Method::POST,
                "/apis/admin/v1/tokens",
                &json,
                r#"{"name":"x"}"#,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{scope}: {:?}", r.body);
        let r = w
            .client
            .call(
                Method::POST,
                "/apis/admin/v1/users",
                &json,
                r#"{"name":"mallory","password":"long-enough"}"#,
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{scope}");
        for uri in [
            "/apis/admin/v1/whoami",
            "/apis/image/v1/repositories",
            "/apis/image/v1/namespaces/team/imagestreams",
            "/v2/token?service=registry.test&scope=repository:team/app:pull,push",
        ] {
            let r = w
                .client
                .bare(Method::GET, uri, &[("authorization", &bearer)])
                .await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{scope} {uri}");
        }
        assert!(w
            .store
            .get_user(&"mallory".parse().unwrap())
            .await
            .unwrap()
            .is_none());
    }
    // On /v2/ the token works, within its scope only.
    let bearer = format!(
        "Bearer {}",
        registry_token(&w.client, &root, "repository:team/app:pull").await
    );
    assert_eq!(tags_status(&w.client, &bearer).await, StatusCode::OK);
    let r = w
        .client
        .bare(
            Method::POST,
            "/v2/team/app/blobs/uploads/",
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

// Fails before: a registry token obtained with an access token kept
// working (and minting) after the access token was deleted.
#[tokio::test]
async fn deleting_a_credential_revokes_the_registry_tokens_derived_from_it() {
    let w = world(AuthSettings::default()).await;
    let alice = basic("alice", PASSWORD);
    let r = w
        .client
        .call(
            Method::POST,
            "/apis/admin/v1/tokens",
            &[
                ("authorization", &alice),
                ("content-type", "application/json"),
            ],
            r#"{"name":"ci"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let (secret, id) = (
        r.json()["token"].as_str().unwrap().to_owned(),
        r.json()["id"].as_str().unwrap().to_owned(),
    );
    let via_token = basic("ci", &secret);
    let scope = "repository:team/app:pull";
    let derived = format!(
        "Bearer {}",
        registry_token(&w.client, &via_token, scope).await
    );
    let from_password = format!("Bearer {}", registry_token(&w.client, &alice, scope).await);
    assert_eq!(tags_status(&w.client, &derived).await, StatusCode::OK);
    let r = w
        .client
        .bare(
            Method::DELETE,
            &format!("/apis/admin/v1/tokens/{id}"),
            &[("authorization", &alice)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        tags_status(&w.client, &derived).await,
        StatusCode::UNAUTHORIZED
    );
    // The password-derived one lives on until its user is deleted.
    assert_eq!(tags_status(&w.client, &from_password).await, StatusCode::OK);
    let r = w
        .client
        .bare(
            Method::DELETE,
            "/apis/admin/v1/users/alice",
            &[("authorization", &basic("root", PASSWORD))],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        tags_status(&w.client, &from_password).await,
        StatusCode::UNAUTHORIZED
    );
}

// Fails before: 1e12 seconds panicked (time overflow), 1e11 was a 500.
#[tokio::test]
async fn token_lifetimes_out_of_range_are_400_naming_the_field() {
    let w = world(AuthSettings::default()).await;
    let alice = basic("alice", PASSWORD);
    for (seconds, expected) in [
        ("1000000000000", StatusCode::BAD_REQUEST),
        ("100000000000", StatusCode::BAD_REQUEST),
        ("0", StatusCode::BAD_REQUEST),
        ("-5", StatusCode::BAD_REQUEST),
        ("3600", StatusCode::CREATED),
    ] {
        let r = w
            .client
            .call(
                Method::POST,
                "/apis/admin/v1/tokens",
                &[
                    ("authorization", &alice),
                    ("content-type", "application/json"),
                ],
                format!(
                    r#"{{"name":"t{}","expires_in_seconds":{seconds}}}"#,
                    &seconds[..1]
                ),
            )
            .await;
        assert_eq!(r.status, expected, "{seconds}: {:?}", r.body);
        if expected == StatusCode::BAD_REQUEST {
            let message = r.json()["errors"][0]["message"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(
                message.contains("expires_in_seconds") && message.contains("between 1 and"),
                "{message}"
            );
        }
    }
}

fn realm(r: &Reply) -> String {
    let challenge = r.header("www-authenticate");
    let start = challenge.find("realm=\"").unwrap() + 7;
    let end = challenge[start..].find('"').unwrap();
    challenge[start..start + end].to_owned()
}

// Fails before: any client's X-Forwarded-Proto (and Host) chose the realm;
// a TLS listener's requests were marked by a header a client could forge.
#[tokio::test]
async fn forwarded_headers_count_only_from_trusted_proxies() {
    let mut settings = AuthSettings::default();
    settings.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
    let w = world(settings).await;
    let forged = [
        ("host", "registry.example"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil.example"),
    ];
    let r = from(
        &w.client,
        "192.0.2.7:4000",
        Method::GET,
        "/v2/",
        &forged,
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(realm(&r), "http://registry.example/v2/token");
    // No peer recorded at all (an embedder's own server): nothing trusted.
    let r = w.client.bare(Method::GET, "/v2/", &forged).await;
    assert_eq!(realm(&r), "http://registry.example/v2/token");
    // From the proxy the forwarded headers hold, RFC 7239 first.
    let r = from(&w.client, "10.1.2.3:4000", Method::GET, "/v2/", &forged, "").await;
    assert_eq!(realm(&r), "https://evil.example/v2/token");
    let mut rfc = forged.to_vec();
    rfc.push(("forwarded", "for=192.0.2.1;proto=https;host=public.example"));
    let r = from(&w.client, "10.1.2.3:4000", Method::GET, "/v2/", &rfc, "").await;
    assert_eq!(realm(&r), "https://public.example/v2/token");
    // The TLS listener's own scheme comes as an extension.
    let req = Request::get("/v2/")
        .header("host", "registry.example")
        .extension(SecureListener)
        .extension(peer("192.0.2.7:4000"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(
        realm(&w.client.send(req).await),
        "https://registry.example/v2/token"
    );
    // A Host that cannot be a host is not echoed into the challenge.
    let r = from(
        &w.client,
        "192.0.2.7:4000",
        Method::GET,
        "/v2/",
        &[("host", "a\",error=\"x")],
        "",
    )
    .await;
    assert_eq!(realm(&r), "http://localhost/v2/token");
    // The Image API's pull host is decided the same way (it echoed `Host`).
    let root = basic("root", PASSWORD);
    let push = "/v2/team/app/blobs/uploads/?digest=sha256:2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881";
    let r = from(
        &w.client,
        "192.0.2.7:4000",
        Method::POST,
        push,
        &[("authorization", &root)],
        "x",
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let stream = "/apis/image/v1/namespaces/team/imagestreams/app";
    for (peer, host) in [
        ("192.0.2.7:4000", "registry.example"),
        ("10.1.2.3:4000", "evil.example"),
    ] {
        let mut headers = forged.to_vec();
        headers.push(("authorization", &root));
        let r = from(&w.client, peer, Method::GET, stream, &headers, "").await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        assert_eq!(
            r.json()["status"]["dockerImageRepository"],
            format!("{host}/team/app")
        );
    }
}

fn secret_password(r: &Reply) -> String {
    let config = base64::engine::general_purpose::STANDARD
        .decode(r.json()["data"][".dockerconfigjson"].as_str().unwrap())
        .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    let (_, entry) = config["auths"].as_object().unwrap().iter().next().unwrap();
    entry["password"].as_str().unwrap().to_owned()
}

// Fails before: every GET deleted and recreated the managed token, so each
// secret handed out stopped working at the next read; there was no rotate.
#[tokio::test]
async fn reading_a_pull_secret_does_not_rotate_it() {
    let w = world(AuthSettings::default()).await;
    let root = basic("root", PASSWORD);
    let sa = ServiceAccountRef::new("team".parse().unwrap(), "deployer".parse().unwrap());
    w.store
        .create_service_account(ServiceAccount {
            account: sa.clone(),
            created: time::OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();
    // Through the API, so the authorizer reloads.
    let r = w
        .client
        .call(
            Method::POST,
            "/apis/admin/v1/namespaces/team/rolebindings",
            &[
                ("authorization", &root),
                ("content-type", "application/json"),
            ],
            r#"{"role":"registry-viewer","subject":"serviceaccount:team:deployer"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let path = "/apis/admin/v1/namespaces/team/serviceaccounts/deployer/pull-secret";
    let auth = [("authorization", root.as_str())];
    let first = w.client.bare(Method::GET, path, &auth).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let first = secret_password(&first);
    let second = secret_password(&w.client.bare(Method::GET, path, &auth).await);
    assert_eq!(first, second, "a read must not rotate the secret");
    let before = basic("serviceaccount", &first);
    assert_eq!(tags_status(&w.client, &before).await, StatusCode::OK);
    let derived = format!(
        "Bearer {}",
        registry_token(&w.client, &before, "repository:team/app:pull").await
    );

    let rotated = w
        .client
        .bare(Method::POST, &format!("{path}/rotate"), &auth)
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    let rotated = secret_password(&rotated);
    assert_ne!(rotated, first);
    assert_eq!(
        tags_status(&w.client, &before).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        tags_status(&w.client, &derived).await,
        StatusCode::UNAUTHORIZED
    );
    let after = basic("serviceaccount", &rotated);
    assert_eq!(tags_status(&w.client, &after).await, StatusCode::OK);
    assert_eq!(
        secret_password(&w.client.bare(Method::GET, path, &auth).await),
        rotated
    );
    let tokens = w
        .store
        .list_tokens(Some(&Subject::ServiceAccount(sa.clone())))
        .await
        .unwrap();
    assert_eq!(tokens.len(), 1, "rotation retires the earlier token");
    assert!(tokens[0].expires.is_some(), "managed tokens expire");

    // A managed token with less than a third of its life left is renewed
    // by the next read; the old one keeps working until it expires.
    let lifetime = time::Duration::days(90);
    let aged_at = time::OffsetDateTime::now_utc() - time::Duration::days(70);
    let (aged, aged_secret) = new_managed_token(&w.key, &sa, lifetime, aged_at);
    for t in tokens {
        w.store.delete_token(&t.id).await.unwrap();
    }
    w.store.create_token(aged).await.unwrap();
    let renewed = secret_password(&w.client.bare(Method::GET, path, &auth).await);
    assert_ne!(renewed, aged_secret.expose());
    let old = basic("serviceaccount", aged_secret.expose());
    assert_eq!(tags_status(&w.client, &old).await, StatusCode::OK);
    let new = basic("serviceaccount", &renewed);
    assert_eq!(tags_status(&w.client, &new).await, StatusCode::OK);
    assert_eq!(
        secret_password(&w.client.bare(Method::GET, path, &auth).await),
        renewed
    );
}

// Fails before: wrong passwords were checked without limit, each one a full
// argon2 run, however many came from one name or address.
#[tokio::test]
async fn failed_logins_lock_the_name_and_the_address() {
    let mut settings = AuthSettings::default();
    settings.login = LoginLimits {
        failures_per_user: 3,
        failures_per_peer: 6,
        ..LoginLimits::default()
    };
    let w = world(settings).await;
    let attacker = "192.0.2.66:5555";
    let get = |auth: String, addr: &'static str| {
        let client = &w.client;
        async move {
            from(
                client,
                addr,
                Method::GET,
                "/v2/",
                &[("authorization", &auth)],
                "",
            )
            .await
        }
    };
    // bob logs in once: his credentials are remembered.
    assert_eq!(
        get(basic("bob", PASSWORD), attacker).await.status,
        StatusCode::OK
    );
    for _ in 0..3 {
        let r = get(basic("alice", "wrong"), attacker).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // alice's name is locked, even with the right password, from anywhere.
    let r = get(basic("alice", PASSWORD), "198.51.100.1:1").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.code(), "TOOMANYREQUESTS");
    let retry: u64 = r.header("retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    for user in ["carol", "nobody", "Not A Name"] {
        let r = get(basic(user, "wrong"), attacker).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{user}");
    }
    // Six failures from the address: it is locked for new logins…
    let r = get(basic("carol", PASSWORD), attacker).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    // …but not elsewhere, and remembered logins still get in.
    let r = get(basic("carol", PASSWORD), "198.51.100.1:1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        get(basic("bob", PASSWORD), attacker).await.status,
        StatusCode::OK
    );
}

// Fails before: there was no bound; every wrong password ran argon2 at
// once on the blocking pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn saturated_password_checks_answer_429() {
    let mut settings = AuthSettings::default();
    settings.login = LoginLimits {
        password_checks: 1,
        password_check_wait: Duration::from_millis(20),
        failures_per_user: 0,
        failures_per_peer: 0,
        ..LoginLimits::default()
    };
    let w = world(settings).await;
    // A user whose stored hash has the real (slow) parameters.
    let slow = PasswordHasher::new()
        .hash(&Password::new(PASSWORD))
        .unwrap();
    w.store
        .set_password(&"carol".parse().unwrap(), Some(slow))
        .await
        .unwrap();
    let client = Arc::new(w.client);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let auth = basic("carol", &format!("wrong-{i}"));
            from(
                &client,
                "192.0.2.1:1",
                Method::GET,
                "/v2/",
                &[("authorization", &auth)],
                "",
            )
            .await
        }));
    }
    let mut busy = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(r.code(), "TOOMANYREQUESTS");
                assert!(!r.header("retry-after").is_empty());
                busy += 1;
            }
            other => assert_eq!(other, StatusCode::UNAUTHORIZED),
        }
    }
    assert!(
        busy > 0,
        "one slot and a 20 ms wait: some of 8 must be refused"
    );
}
