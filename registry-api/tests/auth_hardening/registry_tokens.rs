//! Registry tokens confined to the distribution API and revoked with their source; token lifetimes.

use axum::http::{Method, StatusCode};
use registry_api::AuthSettings;
use registry_auth::AuthStore;

use crate::common::{basic, PASSWORD};
use crate::support::{create_token, registry_token, tags_status, world};

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
        let r = create_token(&w.client, &bearer, r#"{"name":"x"}"#).await;
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
    let r = create_token(&w.client, &alice, r#"{"name":"ci"}"#).await;
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
        let body = format!(
            r#"{{"name":"t{}","expires_in_seconds":{seconds}}}"#,
            &seconds[..1]
        );
        let r = create_token(&w.client, &alice, body).await;
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
