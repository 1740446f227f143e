//! OAuth2 form grants on `POST /v2/token` and `GET /v2/token?offline_token=true`.

use axum::http::{Method, StatusCode};
use registry_auth::{AccessToken, AuthStore};

use crate::common::{basic, PASSWORD};
use crate::support::{bearer, jwt_parts, world, SERVICE};

#[tokio::test]
async fn oauth_password_grant_with_offline_access() {
    let w = world().await;
    let r = w
        .form(&format!(
            "grant_type=password&username=alice&password={PASSWORD}&service={SERVICE}\
             &scope=repository%3Ateam%2Fapp%3Apull%2Cpush%2Cdelete&client_id=containerd-client\
             &access_type=offline"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let json = r.json();
    assert_eq!(json["scope"], "repository:team/app:pull,push");
    assert_eq!(json["expires_in"], 300);
    assert_eq!(json["token"], json["access_token"]);
    let refresh = json["refresh_token"].as_str().unwrap().to_owned();
    assert!(refresh.starts_with("rgr_"));
    let (_, claims) = jwt_parts(json["access_token"].as_str().unwrap());
    assert_eq!(claims["source"], "password");

    // The access token pushes.
    let push = w
        .request(Method::POST, "/v2/team/app/blobs/uploads/", &bearer(&r))
        .await;
    assert_eq!(push.status, StatusCode::ACCEPTED);

    // Without offline access: no refresh token, and the client id is optional.
    let r = w
        .form(&format!(
            "grant_type=password&username=bob&password={PASSWORD}&scope=repository:team/app:pull"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json().get("refresh_token").is_none());

    // Refresh grant: a new access token; the refresh token stays the same.
    let r = w
        .form(&format!(
            "grant_type=refresh_token&refresh_token={refresh}&client_id=containerd-client\
             &service={SERVICE}&scope=repository:team/app:pull"
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r.json().get("refresh_token").is_none());
    let (_, claims) = jwt_parts(r.json()["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "alice");
    assert!(claims["source"]
        .as_str()
        .unwrap()
        .starts_with("refresh-token:"));
    let pull = w.get("/v2/team/app/tags/list", &bearer(&r)).await;
    assert_eq!(
        pull.status,
        StatusCode::NOT_FOUND,
        "authorized, nothing pushed yet"
    );
}

#[tokio::test]
async fn oauth_form_refusals() {
    let w = world().await;
    let cases: &[(&str, StatusCode, &str)] = &[
        ("grant_type=password&username=alice&password=wrong", StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
        ("grant_type=password&username=ghost&password=x", StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
        ("grant_type=refresh_token&refresh_token=rgr_nope", StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
        (
            "grant_type=refresh_token&refresh_token=rgr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
        ),
        ("", StatusCode::BAD_REQUEST, "UNSUPPORTED"),
        ("grant_type=client_credentials", StatusCode::BAD_REQUEST, "UNSUPPORTED"),
        ("grant_type=password&username=alice", StatusCode::BAD_REQUEST, "UNSUPPORTED"),
        ("grant_type=refresh_token", StatusCode::BAD_REQUEST, "UNSUPPORTED"),
        ("grant_type=password&grant_type=password", StatusCode::BAD_REQUEST, "UNSUPPORTED"),
        (
            "grant_type=password&username=alice&password=password-1&access_type=offline",
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
        ),
        (
            "grant_type=password&username=alice&password=password-1&access_type=forever",
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
        ),
        (
            "grant_type=password&username=alice&password=password-1&access_type=offline&client_id=a%20b",
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
        ),
        (
            "grant_type=password&username=alice&password=password-1&service=elsewhere",
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
        ),
        (
            "grant_type=password&username=alice&password=password-1&scope=repository:Bad:pull",
            StatusCode::BAD_REQUEST,
            "UNSUPPORTED",
        ),
    ];
    for (body, status, code) in cases {
        let r = w.form(body).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (*status, *code),
            "{body}: {:?}",
            r.body
        );
        if *status == StatusCode::UNAUTHORIZED {
            assert!(
                r.header("www-authenticate").starts_with("Bearer realm="),
                "{body}"
            );
        }
    }
    // Not a form.
    let r = w
        .client
        .call(
            Method::POST,
            "/v2/token",
            &[("content-type", "application/json")],
            r#"{"grant_type":"password"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // Too many scopes.
    let scopes: Vec<String> = (0..65)
        .map(|i| format!("repository:team/a{i}:pull"))
        .collect();
    let r = w
        .form(&format!(
            "grant_type=password&username=bob&password={PASSWORD}&scope={}",
            scopes.join("+")
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&r.body).contains("at most 64 scopes"));
    // A registry token is no credential for a grant.
    let token = w
        .form(&format!(
            "grant_type=password&username=bob&password={PASSWORD}"
        ))
        .await;
    let token = token.json()["access_token"].as_str().unwrap().to_owned();
    let r = w
        .form(&format!("grant_type=password&username=x&password={token}"))
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn get_with_offline_token_returns_a_refresh_token_for_passwords_only() {
    let w = world().await;
    let offline = "/v2/token?scope=repository:team/app:pull&offline_token=true&client_id=docker";
    let r = w.get(offline, &basic("bob", PASSWORD)).await;
    assert_eq!(r.status, StatusCode::OK);
    let refresh = r.json()["refresh_token"].as_str().unwrap().to_owned();

    // An access token is the long-lived credential already: none.
    let (record, secret) =
        AccessToken::generate("bob".parse().unwrap(), "ci".parse().unwrap(), None).unwrap();
    w.store.create_token(record).await.unwrap();
    let r = w.get(offline, &basic("any", secret.expose())).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json().get("refresh_token").is_none());
    // Nor for anonymous callers.
    let r = w.get(offline, "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.json().get("refresh_token").is_none());
    // A refresh token is a credential like an access token: Basic (any
    // user name) and Bearer, here and on the admin API.
    let r = w.get(offline, &basic("docker", &refresh)).await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(
        r.json().get("refresh_token").is_none(),
        "no refresh token from a refresh token"
    );
    let who = w
        .get("/apis/admin/v1/whoami", &format!("Bearer {refresh}"))
        .await;
    assert_eq!(who.status, StatusCode::OK, "{:?}", who.body);
    assert_eq!(who.json()["subject"], "user:bob");

    for bad in [
        "/v2/token?offline_token=true",
        "/v2/token?offline_token=true&client_id=",
        "/v2/token?offline_token=true&client_id=no%20spaces",
        "/v2/token?service=elsewhere",
    ] {
        let r = w.get(bad, &basic("bob", PASSWORD)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}");
    }
}
