//! Pull secrets: a read does not rotate them, a rotation retires the old token, aged ones renew.

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use registry_api::AuthSettings;
use registry_auth::{new_managed_token, AuthStore, ServiceAccount, ServiceAccountRef, Subject};

use crate::common::{basic, Reply, PASSWORD};
use crate::support::{registry_token, tags_status, world};

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
