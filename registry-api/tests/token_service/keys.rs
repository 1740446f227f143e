//! The signing keys and CA at `/.well-known/`, tokens for other registries, keys kept in SQLite.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use registry_api::{AuthConfig, Registry};
use registry_auth::{Password, PasswordHasher, SigningKey, User};

use crate::common::{basic, Client, PASSWORD};
use crate::support::{bearer, jwt_parts, world, OTHER, SERVICE};

#[tokio::test]
async fn keys_and_ca_are_public_and_match_the_tokens() {
    let w = world().await;
    let jwks = w.get("/.well-known/jwks.json", "").await;
    assert_eq!(jwks.status, StatusCode::OK);
    assert_eq!(jwks.header("cache-control"), "public, max-age=300");
    let keys = jwks.json()["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kty"], "EC");
    assert_eq!(keys[0]["alg"], "ES256");
    assert_eq!(keys[0]["x5c"].as_array().unwrap().len(), 2);
    let ca = w.get("/.well-known/registry-token-ca.pem", "").await;
    assert_eq!(ca.status, StatusCode::OK);
    assert_eq!(ca.header("content-type"), "application/x-pem-file");
    let pem = String::from_utf8(ca.body.to_vec()).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    // The CA in the PEM is the last certificate of each key's chain.
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert_eq!(keys[0]["x5c"][1], b64.as_str());

    let r = w
        .get(
            "/v2/token?scope=repository:team/app:pull",
            &basic("bob", PASSWORD),
        )
        .await;
    let (header, claims) = jwt_parts(r.json()["token"].as_str().unwrap());
    assert_eq!(header["kid"], keys[0]["kid"]);
    assert_eq!(header["x5c"], keys[0]["x5c"]);
    assert_eq!(claims["aud"], SERVICE);
    assert_eq!(claims["sub"], "bob");

    // Without access control there are no tokens, hence no keys.
    let open = Client::with(Registry::in_memory());
    for path in [
        "/.well-known/jwks.json",
        "/.well-known/registry-token-ca.pem",
    ] {
        assert_eq!(open.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
}

#[tokio::test]
async fn tokens_for_another_registry_are_not_valid_here() {
    let w = world().await;
    let r = w
        .get(
            &format!("/v2/token?service={OTHER}&scope=repository:team/app:pull,push"),
            &basic("alice", PASSWORD),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let (_, claims) = jwt_parts(r.json()["token"].as_str().unwrap());
    assert_eq!(claims["aud"], OTHER);
    assert_eq!(
        claims["access"],
        serde_json::json!([{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}])
    );
    // Our own distribution API refuses it.
    let r = w
        .client
        .call(
            Method::GET,
            "/v2/team/app/tags/list",
            &[("authorization", &bearer(&r))],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // The challenge names this registry's own service.
    assert!(r
        .header("www-authenticate")
        .contains(&format!("service=\"{SERVICE}\"")));
}

#[tokio::test]
async fn keys_live_in_the_sqlite_store_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let boot = || async {
        let stores = registry_storage::Stores::data_dir(
            dir.path(),
            registry_storage::filesystem::Durability::None,
        )
        .await
        .unwrap();
        let store = stores.auth().cloned().unwrap();
        let mut config = AuthConfig::new(SigningKey::generate().unwrap()).with_store(store.clone());
        config.hasher = PasswordHasher::insecure_fast();
        let registry = Registry::builder(stores)
            .auth(config)
            .build()
            .await
            .unwrap();
        (Client::with(registry), store)
    };
    let (first, store) = boot().await;
    let user = User {
        name: "carol".parse().unwrap(),
        password_hash: Some(
            PasswordHasher::insecure_fast()
                .hash(&Password::new(PASSWORD))
                .unwrap(),
        ),
        created: time::OffsetDateTime::now_utc(),
    };
    store.create_user(user).await.unwrap();
    let r = first
        .bare(
            Method::GET,
            "/v2/token",
            &[("authorization", &basic("carol", PASSWORD))],
        )
        .await;
    let token = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    let jwks = first.get("/.well-known/jwks.json").await.json();
    drop((first, store));
    // Another process on the same data directory: same keys, same tokens.
    let (second, _) = boot().await;
    assert_eq!(second.get("/.well-known/jwks.json").await.json(), jwks);
    let r = second
        .bare(Method::GET, "/v2/", &[("authorization", &token)])
        .await;
    assert_eq!(r.status, StatusCode::OK);
}
