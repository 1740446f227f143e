//! The admin API under the same roles: bindings, tokens and pull secrets
//! managed by a cluster admin, and bad input answered in the OCI error
//! envelope.

use axum::http::{Method, StatusCode};
use base64::Engine as _;

use crate::common::{basic, Client};
use crate::{push_as, world};

#[tokio::test]
async fn admin_api_manages_bindings_tokens_and_pull_secrets() {
    let w = world().await;
    let root = w.creds[5].1.clone();
    let call = |method: Method, uri: &str, body: &str| {
        let app = w.client.app.clone();
        let (uri, body, auth) = (uri.to_owned(), body.to_owned(), root.clone());
        async move {
            Client { app }
                .call(
                    method,
                    &uri,
                    &[
                        ("authorization", auth.as_str()),
                        ("content-type", "application/json"),
                    ],
                    body,
                )
                .await
        }
    };
    let r = call(
        Method::POST,
        "/apis/admin/v1/namespaces",
        r#"{"name":"team"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = call(
        Method::POST,
        "/apis/admin/v1/namespaces",
        r#"{"name":"team"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    let r = call(
        Method::POST,
        "/apis/admin/v1/users",
        r#"{"name":"carol","password":"carol-password"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = call(
        Method::POST,
        "/apis/admin/v1/namespaces/team/rolebindings",
        r#"{"role":"registry-editor","subject":"user:carol"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = call(
        Method::POST,
        "/apis/admin/v1/namespaces/team/rolebindings",
        r#"{"role":"registry-boss","subject":"user:carol"}"#,
    )
    .await;
    assert_eq!(r.code(), "NAME_INVALID");
    // carol may now push into team.
    let carol = basic("carol", "carol-password");
    push_as(&w.client, &carol, "team/app", b"carol's layer").await;
    // Service account + pull secret whose token works as a password.
    let r = call(
        Method::POST,
        "/apis/admin/v1/namespaces/team/serviceaccounts",
        r#"{"name":"deployer"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = call(
        Method::GET,
        "/apis/admin/v1/namespaces/team/serviceaccounts/deployer/pull-secret",
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let secret = r.json();
    assert_eq!(secret["type"], "kubernetes.io/dockerconfigjson");
    let config = base64::engine::general_purpose::STANDARD
        .decode(secret["data"][".dockerconfigjson"].as_str().unwrap())
        .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
    let (_, entry) = config["auths"].as_object().unwrap().iter().next().unwrap();
    let password = entry["password"].as_str().unwrap();
    let r = call(
        Method::POST,
        "/apis/admin/v1/namespaces/team/rolebindings",
        r#"{"role":"registry-viewer","subject":"serviceaccount:team:deployer"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let sa = basic("serviceaccount", password);
    let r = w
        .client
        .bare(
            Method::GET,
            "/v2/team/app/tags/list",
            &[("authorization", &sa)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    // A personal access token works as a password and can be revoked.
    let r = w
        .client
        .call(
            Method::POST,
            "/apis/admin/v1/tokens",
            &[
                ("authorization", &carol),
                ("content-type", "application/json"),
            ],
            r#"{"name":"ci","expires_in_seconds":600}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let token = r.json()["token"].as_str().unwrap().to_owned();
    let id = r.json()["id"].as_str().unwrap().to_owned();
    let via_token = basic("whatever", &token);
    let r = w
        .client
        .bare(
            Method::GET,
            "/apis/admin/v1/whoami",
            &[("authorization", &via_token)],
        )
        .await;
    assert_eq!(r.json()["subject"], "user:carol");
    let r = w
        .client
        .bare(
            Method::DELETE,
            &format!("/apis/admin/v1/tokens/{id}"),
            &[("authorization", &carol)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = w
        .client
        .bare(
            Method::GET,
            "/apis/admin/v1/whoami",
            &[("authorization", &via_token)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Removing the binding takes carol's push away.
    let r = call(
        Method::DELETE,
        "/apis/admin/v1/namespaces/team/rolebindings?role=registry-editor&subject=user:carol",
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = w
        .client
        .bare(
            Method::POST,
            "/v2/team/app/blobs/uploads/",
            &[("authorization", &carol)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

/// A refusal says what was refused in words, the operation asked for
/// rather than the permission it needs.
#[tokio::test]
async fn refusals_name_what_was_refused() {
    let w = world().await;
    let viewer = w.creds[2].1.clone();
    for (uri, expected) in [
        (
            "/apis/admin/v1/namespaces",
            "viewer may not list namespaces here",
        ),
        (
            "/apis/admin/v1/namespaces/a/webhooks",
            "viewer may not manage webhooks in namespace a",
        ),
        (
            "/apis/admin/v1/namespaces/a/rolebindings",
            "viewer may not manage role bindings in namespace a",
        ),
    ] {
        let r = w
            .client
            .bare(Method::GET, uri, &[("authorization", &viewer)])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}");
        let message = r.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .to_owned();
        // Before: "viewer may not CreateNamespace here" and the like.
        assert_eq!(message, expected, "{uri}");
    }
    let r = w
        .client
        .bare(
            Method::POST,
            "/v2/a/app/blobs/uploads/",
            &[("authorization", &viewer)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let message = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(message, "viewer may not push in a/app");
}

/// Listing what a namespace that does not exist holds is 404, as adding to
/// it is, for the cluster admin; others learn nothing (403).
#[tokio::test]
async fn lists_of_a_missing_namespace_are_not_found() {
    let w = world().await;
    let (root, viewer) = (w.creds[5].1.clone(), w.creds[2].1.clone());
    for what in ["rolebindings", "serviceaccounts", "webhooks"] {
        let uri = format!("/apis/admin/v1/namespaces/nope/{what}");
        // Before: 200 with an empty list.
        let r = w
            .client
            .bare(Method::GET, &uri, &[("authorization", &root)])
            .await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(r.code(), "NAME_UNKNOWN", "{uri}");
        let r = w
            .client
            .bare(Method::GET, &uri, &[("authorization", &viewer)])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}");
        let existing = format!("/apis/admin/v1/namespaces/a/{what}");
        let r = w
            .client
            .bare(Method::GET, &existing, &[("authorization", &root)])
            .await;
        assert_eq!(r.status, StatusCode::OK, "{existing}");
    }
}

#[tokio::test]
async fn admin_api_answers_bad_input_in_the_oci_envelope() {
    let w = world().await;
    let root = w.creds[5].1.clone();
    let send = |method: Method, uri: &'static str, body: &'static str| {
        let app = w.client.app.clone();
        let auth = root.clone();
        async move {
            Client { app }
                .call(
                    method,
                    uri,
                    &[
                        ("authorization", auth.as_str()),
                        ("content-type", "application/json"),
                    ],
                    body,
                )
                .await
        }
    };
    for (method, uri, body) in [
        (Method::POST, "/apis/admin/v1/namespaces", "{not json"),
        (
            Method::POST,
            "/apis/admin/v1/namespaces",
            r#"{"nmae":"typo"}"#,
        ),
        (Method::POST, "/apis/admin/v1/users", r#"{"name":"x"}"#),
        (
            Method::POST,
            "/apis/admin/v1/tokens",
            r#"{"name":"ci","expires_in":60}"#,
        ),
        (
            Method::DELETE,
            "/apis/admin/v1/namespaces/a/rolebindings?role=registry-viewer",
            "",
        ),
    ] {
        let r = send(method.clone(), uri, body).await;
        assert_eq!(
            r.status,
            StatusCode::BAD_REQUEST,
            "{method} {uri} {body}: {:?}",
            r.body
        );
        assert_eq!(r.code(), "UNSUPPORTED", "{method} {uri} {body}");
        assert!(r.json()["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid "));
    }
    // An empty body still creates a token with defaults, twice in the same
    // second too (before: the second was a 409, the default name taken).
    for _ in 0..2 {
        let r = send(Method::POST, "/apis/admin/v1/tokens", "").await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.json());
    }
    // Four characters are too few, whatever their bytes (before: "éééé",
    // eight bytes, was accepted).
    let r = send(
        Method::POST,
        "/apis/admin/v1/users",
        r#"{"name":"eve","password":"éééé"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.json());
    // A body past the limit: 413 (before: 400).
    let huge: &'static str =
        Box::leak(format!(r#"{{"name":"{}"}}"#, "a".repeat(3 << 20)).into_boxed_str());
    let r = send(Method::POST, "/apis/admin/v1/namespaces", huge).await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(r.code(), "UNSUPPORTED");
}
