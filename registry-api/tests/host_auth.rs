//! Bring your own authentication: a host layer puts a `Caller` in the
//! request extensions and the registry trusts it, keeping its roles, layer
//! authorization, catalog filtering and audit (tag history and the audit
//! log record the host's user).

mod common;

use axum::http::{Method, StatusCode};
use common::{as_user, team};
use registry_api::Caller;
use registry_auth::Identity;

#[tokio::test]
async fn a_push_through_host_auth_is_in_tag_history_as_the_hosts_user() {
    let registry = team().await;
    let alice = as_user(&registry, Some("alice"));
    let (digest, _, _) = alice.push_image("team/app", "v1", "host").await;
    // Tag history says alice, read through the Image API as bob (the audit
    // log line is checked in audit_log.rs, a binary of its own).
    let bob = as_user(&registry, Some("bob"));
    let r = bob
        .bare(
            Method::GET,
            "/apis/image/v1/namespaces/team/imagestreamtags/app:v1",
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.json()["history"][0]["actor"], "alice");
    assert_eq!(r.json()["image"], digest.to_string());
}

#[tokio::test]
async fn host_users_get_the_roles_bound_to_them_and_a_filtered_catalog() {
    let registry = team().await;
    let alice = as_user(&registry, Some("alice"));
    alice.push_image("team/app", "v1", "roles").await;

    // bob may pull, not push.
    let bob = as_user(&registry, Some("bob"));
    let r = bob
        .bare(Method::GET, "/v2/team/app/manifests/v1", &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = bob.try_push_blob("team/app", b"bob's layer").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "DENIED");

    // carol has no binding: the catalog is empty for her and pulls are denied.
    let carol = as_user(&registry, Some("carol"));
    let r = carol.bare(Method::GET, "/v2/_catalog", &[]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["repositories"], serde_json::json!([]));
    let r = bob.bare(Method::GET, "/v2/_catalog", &[]).await;
    assert_eq!(r.json()["repositories"], serde_json::json!(["team/app"]));
    let r = carol
        .bare(Method::GET, "/v2/team/app/manifests/v1", &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // An anonymous caller the host let through is asked to log in, with no
    // Bearer challenge of the registry's: the host owns the scheme.
    let anonymous = as_user(&registry, None);
    let r = anonymous
        .bare(Method::GET, "/v2/team/app/manifests/v1", &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.header("www-authenticate"), "");

    // The registry's own credentials are not consulted behind the host:
    // a Basic header for a registry user changes nothing for carol.
    let r = carol
        .bare(
            Method::GET,
            "/v2/team/app/manifests/v1",
            &[("authorization", &common::basic("alice", common::PASSWORD))],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn the_service_core_takes_the_same_callers_without_http() {
    let registry = team().await;
    let alice = as_user(&registry, Some("alice"));
    alice.push_image("team/app", "v1", "rust").await;
    let repo = "team/app".parse().unwrap();
    let bob = Caller::new(Identity::user("bob".parse().unwrap()));
    let carol = Caller::new(Identity::user("carol".parse().unwrap()));
    let tags = registry.list_tags(&bob, &repo, None, None).await.unwrap();
    assert_eq!(tags.items.len(), 1);
    let err = registry
        .list_tags(&carol, &repo, None, None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, registry_api::RegistryError::Denied { .. }),
        "{err:?}"
    );
    let err = registry
        .delete_manifest(&bob, &repo, &"v1".parse().unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, registry_api::RegistryError::Denied { .. }));
    let anonymous = registry
        .catalog(&Caller::anonymous(), None, None)
        .await
        .unwrap();
    assert!(anonymous.items.is_empty());
}

#[tokio::test]
async fn no_registry_token_is_issued_for_a_caller_the_host_authenticated() {
    let registry = team().await;
    let alice = as_user(&registry, Some("alice"));
    let r = alice
        .bare(Method::GET, "/v2/token?scope=repository:team/app:pull", &[])
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "UNSUPPORTED");
    assert!(r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("host application"));
}
