//! Refresh tokens: listing, revocation, bounds, provider identities, ending with a password change.

use axum::http::{Method, StatusCode};
use registry_auth::AuthStore;

use crate::common::{basic, PASSWORD};
use crate::support::{bearer, jwt_parts, world};

#[tokio::test]
async fn refresh_tokens_are_listed_revocable_and_die_with_their_owner() {
    let w = world().await;
    let grant = |user: &'static str| {
        format!(
            "grant_type=password&username={user}&password={PASSWORD}&client_id=docker\
             &access_type=offline&scope=repository:team/app:pull"
        )
    };
    let r = w.form(&grant("bob")).await;
    let refresh = r.json()["refresh_token"].as_str().unwrap().to_owned();
    let derived = bearer(&r);
    let refreshed = w
        .form(&format!(
            "grant_type=refresh_token&refresh_token={refresh}&scope=repository:team/app:pull"
        ))
        .await;
    let from_refresh = bearer(&refreshed);
    assert_eq!(
        w.get("/v2/team/app/tags/list", &from_refresh).await.status,
        StatusCode::NOT_FOUND
    );

    let list = w
        .get("/apis/admin/v1/tokens", &basic("bob", PASSWORD))
        .await;
    assert_eq!(list.status, StatusCode::OK);
    let listed = list.json()["refresh_tokens"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["client_id"], "docker");
    assert_eq!(listed[0]["owner"], "user:bob");
    assert_eq!(listed[0]["provider"], "local");
    assert!(
        listed[0]["expires"].is_string(),
        "refresh tokens of local users expire too"
    );
    assert!(listed[0]["last_used"].is_string());
    let id = listed[0]["id"].as_str().unwrap().to_owned();

    // alice may not revoke bob's; bob may.
    let path = format!("/apis/admin/v1/tokens/{id}");
    let r = w
        .request(Method::DELETE, &path, &basic("alice", PASSWORD))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = w
        .request(Method::DELETE, &path, &basic("bob", PASSWORD))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // Gone from bob's tokens: another attempt is one at someone else's.
    let r = w
        .request(Method::DELETE, &path, &basic("bob", PASSWORD))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Gone: the refresh token, and the registry tokens obtained with it;
    // the one obtained with the password lives on.
    let r = w
        .form(&format!("grant_type=refresh_token&refresh_token={refresh}"))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        w.get("/v2/team/app/tags/list", &from_refresh).await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = w.get("/v2/team/app/tags/list", &derived).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{:?}", r.body);

    // Deleting the owner takes the rest with it.
    let r = w.form(&grant("bob")).await;
    let refresh = r.json()["refresh_token"].as_str().unwrap().to_owned();
    w.store.delete_user(&"bob".parse().unwrap()).await.unwrap();
    let r = w
        .form(&format!("grant_type=refresh_token&refresh_token={refresh}"))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(w.store.list_refresh_tokens(None).await.unwrap().is_empty());
}

#[tokio::test]
async fn refresh_tokens_per_owner_are_bounded() {
    let w = world().await;
    let body = format!(
        "grant_type=password&username=alice&password={PASSWORD}&client_id=docker&access_type=offline"
    );
    let mut last = String::new();
    for _ in 0..registry_api::service::MAX_REFRESH_TOKENS_PER_OWNER + 5 {
        let r = w.form(&body).await;
        last = r.json()["refresh_token"].as_str().unwrap().to_owned();
    }
    let kept = w.store.list_refresh_tokens(None).await.unwrap();
    assert_eq!(
        kept.len(),
        registry_api::service::MAX_REFRESH_TOKENS_PER_OWNER
    );
    // The newest is among those kept.
    let r = w
        .form(&format!("grant_type=refresh_token&refresh_token={last}"))
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn a_provider_identity_keeps_its_groups_through_a_bounded_refresh_token() {
    let w = world().await;
    let r = w
        .form(
            "grant_type=password&username=dora&password=dora-pass&client_id=docker\
             &access_type=offline&scope=repository:team/app:push,pull",
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.json()["scope"], "repository:team/app:pull,push");
    let (_, claims) = jwt_parts(r.json()["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "ldap:dora");
    assert_eq!(claims["provider"], "ldap");
    assert_eq!(claims["groups"], serde_json::json!(["ldap:ops"]));
    assert_eq!(claims["source"], "external");
    let refresh = r.json()["refresh_token"].as_str().unwrap().to_owned();

    // Recorded with the provider and groups, expiring within the bound.
    let stored = w.store.list_refresh_tokens(None).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].provider, "ldap");
    assert_eq!(stored[0].groups, ["ldap:ops".parse().unwrap()]);
    let lifetime = stored[0].expires.unwrap() - stored[0].created;
    assert!(lifetime <= time::Duration::hours(1), "{lifetime}");

    // The refresh grant rebuilds the identity without asking the
    // directory: the group binding still applies.
    let r = w
        .form(&format!(
            "grant_type=refresh_token&refresh_token={refresh}&scope=repository:team/app:push"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.json()["scope"], "repository:team/app:push");
    let push = w
        .request(Method::POST, "/v2/team/app/blobs/uploads/", &bearer(&r))
        .await;
    assert_eq!(push.status, StatusCode::ACCEPTED);
    // As a bearer credential on the admin API it is dora, from ldap.
    let who = w
        .get("/apis/admin/v1/whoami", &format!("Bearer {refresh}"))
        .await;
    assert_eq!(who.status, StatusCode::OK);
    assert_eq!(who.json()["subject"], "user:ldap:dora");
    assert!(
        String::from_utf8_lossy(&who.body).contains("ldap:ops"),
        "{:?}",
        who.body
    );
}

#[tokio::test]
async fn a_password_change_ends_the_refresh_tokens_it_began() {
    let w = world().await;
    let r = w
        .form(&format!(
            "grant_type=password&username=alice&password={PASSWORD}&client_id=docker&access_type=offline"
        ))
        .await;
    let refresh = r.json()["refresh_token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {refresh}");
    assert_eq!(
        w.get("/apis/admin/v1/whoami", &bearer).await.status,
        StatusCode::OK
    );
    // Changed with the refresh token as the credential: it ends too.
    let body = format!(r#"{{"current_password":"{PASSWORD}","password":"a-new-password-1"}}"#);
    let r = w
        .client
        .call(
            Method::PUT,
            "/apis/admin/v1/users/alice/password",
            &[
                ("authorization", &bearer),
                ("content-type", "application/json"),
            ],
            body,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(
        w.get("/apis/admin/v1/whoami", &bearer).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(w.store.list_refresh_tokens(None).await.unwrap().is_empty());
}
