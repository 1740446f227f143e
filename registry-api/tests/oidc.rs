//! The OIDC identity provider behind the HTTP layer: an ID token from the
//! configured issuer (here an issuer in memory, `registry_auth::oidc::testing`)
//! as a Basic password, as a Bearer token and at `/v2/token`; group
//! bindings to `group:oidc:<group>`; every kind of bad token refused with
//! 401; an issuer that is down refuses its tokens while local users work.

mod common;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use common::{basic, Client, PASSWORD};
use proptest::prelude::*;
use registry_api::{AuthConfig, Registry};
use registry_auth::oidc::testing::{TestIssuer, TEST_CLIENT_ID, TEST_ISSUER};
use registry_auth::oidc::{OidcConfig, OidcProvider};
use registry_auth::{
    AuthStore, ClusterRole, ClusterRoleBinding, MemoryAuthStore, Password, PasswordHasher, Role,
    RoleBinding, SigningKey, Subject, User,
};
use serde_json::json;

struct Setup {
    client: Client,
    issuer: Arc<TestIssuer>,
    provider: Arc<OidcProvider>,
}

/// A registry that trusts `issuer`: local `admin` (cluster-admin), group
/// `oidc:devs` views namespace `devs`, user `oidc:alice` edits `alice`.
async fn setup(issuer: Arc<TestIssuer>) -> Setup {
    let store = Arc::new(MemoryAuthStore::new());
    let hasher = PasswordHasher::insecure_fast();
    store
        .create_user(User {
            name: "admin".parse().unwrap(),
            password_hash: Some(hasher.hash(&Password::new(PASSWORD)).unwrap()),
            created: time::OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();
    store
        .add_cluster_role_binding(ClusterRoleBinding {
            role: ClusterRole::ClusterAdmin,
            subject: "admin".parse().unwrap(),
        })
        .await
        .unwrap();
    for (namespace, role, subject) in [
        ("devs", Role::Viewer, "group:oidc:devs"),
        ("alice", Role::Editor, "oidc:alice"),
    ] {
        store
            .add_role_binding(RoleBinding {
                namespace: namespace.parse().unwrap(),
                role,
                subject: subject.parse::<Subject>().unwrap(),
            })
            .await
            .unwrap();
    }
    let config = OidcConfig::new(issuer.issuer().parse().unwrap(), TEST_CLIENT_ID).unwrap();
    let provider = Arc::new(OidcProvider::with_key_source(config, issuer.clone()).unwrap());
    let mut auth = AuthConfig::new(SigningKey::generate().unwrap())
        .with_store(store.clone() as Arc<dyn AuthStore>);
    auth.hasher = hasher;
    auth.service = "registry.test".into();
    auth.providers.push(provider.clone());
    let registry = Registry::builder(registry_storage::Stores::in_memory())
        .auth(auth)
        .build()
        .await
        .unwrap();
    let client = Client::with(registry);
    // The image the group may pull, pushed by the local admin.
    let admin = basic("admin", PASSWORD);
    let r = client
        .bare(Method::GET, "/v2/", &[("authorization", &admin)])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    Setup {
        client,
        issuer,
        provider,
    }
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Pushes a one-blob image to `repo:v1` with `auth`; the manifest status.
async fn push(client: &Client, repo: &str, auth: &str) -> StatusCode {
    let config = br#"{"architecture":"amd64","os":"linux"}"#;
    let digest = registry_core::Digest::sha256_of(config);
    let r = client
        .call(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
            &[
                ("authorization", auth),
                ("content-length", &config.len().to_string()),
            ],
            config.to_vec(),
        )
        .await;
    if r.status != StatusCode::CREATED {
        return r.status;
    }
    let manifest = common::image_manifest(&digest, config.len(), &digest, config.len(), None);
    client
        .call(
            Method::PUT,
            &format!("/v2/{repo}/manifests/v1"),
            &[
                ("authorization", auth),
                ("content-type", registry_core::media_type::OCI_MANIFEST),
            ],
            manifest,
        )
        .await
        .status
}

async fn pull(client: &Client, repo: &str, auth: &str) -> StatusCode {
    client
        .bare(
            Method::GET,
            &format!("/v2/{repo}/manifests/v1"),
            &[
                ("authorization", auth),
                ("accept", registry_core::media_type::OCI_MANIFEST),
            ],
        )
        .await
        .status
}

#[tokio::test]
async fn an_id_token_is_a_password_a_bearer_token_and_gets_registry_tokens() {
    let s = setup(Arc::new(TestIssuer::new(TEST_ISSUER, "k1"))).await;
    let admin = basic("admin", PASSWORD);
    assert_eq!(
        push(&s.client, "devs/app", &admin).await,
        StatusCode::CREATED
    );
    // Namespaces come from a cluster-admin.
    assert_eq!(
        push(&s.client, "alice/seed", &admin).await,
        StatusCode::CREATED
    );

    let alice = s.issuer.id_token("alice", &["devs", "system:masters"]);
    for auth in [basic("x", &alice), basic("alice", &alice), bearer(&alice)] {
        let r = s
            .client
            .bare(Method::GET, "/v2/", &[("authorization", &auth)])
            .await;
        assert_eq!(r.status, StatusCode::OK, "{auth:.20}");
        // Through group:oidc:devs (viewer): pull yes, push no.
        assert_eq!(pull(&s.client, "devs/app", &auth).await, StatusCode::OK);
        assert_eq!(
            push(&s.client, "devs/other", &auth).await,
            StatusCode::FORBIDDEN
        );
        // Through its own binding (editor of `alice`).
        assert_eq!(
            push(&s.client, "alice/app", &auth).await,
            StatusCode::CREATED
        );
    }
    // One signature check for the lot.
    assert_eq!(s.provider.remembered_tokens(), 1);

    // whoami: provider, user and groups (system: groups from the issuer dropped).
    let r = s
        .client
        .bare(
            Method::GET,
            "/apis/admin/v1/whoami",
            &[("authorization", &bearer(&alice))],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let me = r.json();
    assert_eq!(me["provider"], "oidc");
    assert_eq!(me["subject"], "user:oidc:alice");
    assert_eq!(
        me["groups"],
        json!(["system:authenticated", "oidc:devs"]),
        "{me}"
    );

    // /v2/token: the ID token as the Basic password; the registry token
    // carries the groups, so it pulls through the group binding.
    let r = s
        .client
        .bare(
            Method::GET,
            "/v2/token?service=registry.test&scope=repository:devs/app:pull,push",
            &[("authorization", &basic("podman", &alice))],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let token = r.json()["token"].as_str().unwrap().to_owned();
    let granted = r.json();
    assert_eq!(
        pull(&s.client, "devs/app", &bearer(&token)).await,
        StatusCode::OK
    );
    assert_eq!(
        push(&s.client, "devs/app2", &bearer(&token)).await,
        StatusCode::UNAUTHORIZED,
        "{granted}"
    );

    // carol, without the group: refused in devs, and no binding of her own.
    let carol = s.issuer.id_token("carol", &["qa"]);
    assert_eq!(
        pull(&s.client, "devs/app", &basic("x", &carol)).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        push(&s.client, "alice/carol", &basic("x", &carol)).await,
        StatusCode::FORBIDDEN
    );
    // Local users are unaffected.
    assert_eq!(pull(&s.client, "devs/app", &admin).await, StatusCode::OK);
}

fn b64(text: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(text)
}

#[tokio::test]
async fn bad_tokens_get_401_everywhere() {
    let s = setup(Arc::new(TestIssuer::new(TEST_ISSUER, "k1"))).await;
    let i = &s.issuer;
    let good = i.id_token("alice", &["devs"]);
    let parts: Vec<&str> = good.split('.').collect();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let forged_payload = b64(&i.claims("admin", &["devs"], json!({})).to_string());
    let other_key = TestIssuer::new(TEST_ISSUER, "k2");
    let cases = [
        (
            "expired",
            i.sign(&i.claims("alice", &[], json!({"exp": now - 300}))),
        ),
        (
            "not yet valid",
            i.sign(&i.claims("alice", &[], json!({"nbf": now + 300}))),
        ),
        (
            "wrong audience",
            i.sign(&i.claims("alice", &[], json!({"aud": "other"}))),
        ),
        (
            "no audience",
            i.sign(&i.claims("alice", &[], json!({"aud": null}))),
        ),
        (
            "wrong issuer",
            i.sign(&i.claims("alice", &[], json!({"iss": "https://evil.test"}))),
        ),
        (
            "alg none",
            format!("{}.{}.", b64(r#"{"alg":"none","kid":"k1"}"#), parts[1]),
        ),
        (
            "tampered payload",
            format!("{}.{forged_payload}.{}", parts[0], parts[2]),
        ),
        ("unknown kid", other_key.id_token("alice", &["devs"])),
        ("garbage", "not.a.token".to_owned()),
    ];
    for (what, token) in &cases {
        for auth in [basic("x", token), bearer(token)] {
            let r = s
                .client
                .bare(Method::GET, "/v2/", &[("authorization", &auth)])
                .await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what}");
            assert_eq!(r.code(), "UNAUTHORIZED", "{what}");
        }
        let r = s
            .client
            .bare(
                Method::GET,
                "/v2/token?service=registry.test&scope=repository:devs/app:pull",
                &[("authorization", &basic("x", token))],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{what} at /v2/token");
    }
    assert_eq!(s.provider.remembered_tokens(), 0);
    // The good one still works after all that.
    let r = s
        .client
        .bare(Method::GET, "/v2/", &[("authorization", &bearer(&good))])
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn an_issuer_that_is_down_fails_closed_and_local_users_still_work() {
    let issuer = Arc::new(TestIssuer::new(TEST_ISSUER, "k1"));
    issuer.set_up(false);
    let s = setup(issuer).await;
    let token = s.issuer.id_token("alice", &["devs"]);
    for _ in 0..10 {
        let r = s
            .client
            .bare(
                Method::GET,
                "/v2/",
                &[("authorization", &basic("x", &token))],
            )
            .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // Tried once: the refresh interval keeps it from being hammered.
    assert_eq!(s.issuer.fetches(), 1);
    let r = s
        .client
        .bare(
            Method::GET,
            "/v2/",
            &[("authorization", &basic("admin", PASSWORD))],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Anything as a Basic password or Bearer token, including text shaped
    /// like a token of the issuer: never in.
    #[test]
    fn arbitrary_credentials_are_never_accepted(
        text in "\\PC{0,300}",
        header in "\\PC{0,60}",
        sig in "[A-Za-z0-9_-]{0,100}",
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let s = setup(Arc::new(TestIssuer::new(TEST_ISSUER, "k1"))).await;
            let claims = json!({"iss": TEST_ISSUER, "aud": TEST_CLIENT_ID, "sub": text, "exp": u32::MAX});
            let shaped = format!("{}.{}.{sig}", b64(&header), b64(&claims.to_string()));
            for credential in [text.clone(), shaped] {
                for auth in [basic("x", &credential), bearer(&credential)] {
                    let Ok(value) = axum::http::HeaderValue::from_str(&auth) else { continue };
                    let value = value.to_str().unwrap_or_default().to_owned();
                    let r = s.client.bare(Method::GET, "/v2/", &[("authorization", &value)]).await;
                    prop_assert!(
                        matches!(r.status, StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS),
                        "{} for {auth:?}", r.status
                    );
                }
            }
            Ok(())
        })?;
    }
}
