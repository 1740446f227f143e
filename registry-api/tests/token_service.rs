//! The token service: JWTs in the Docker token-auth format, the keys at
//! `/.well-known/`, OAuth2 form grants on `POST /v2/token`, refresh tokens
//! (offline access) and their revocation, tokens for other registries.

mod common;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use common::{basic, Client, Reply, PASSWORD};
use registry_api::{AuthConfig, Registry};
use registry_auth::{
    AccessToken, AuthStore, Authenticate, AuthenticationError, Credentials, Identity,
    MemoryAuthStore, Password, PasswordHasher, Role, RoleBinding, SigningKey, TokenSource, User,
};
use serde_json::Value;

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
const SERVICE: &str = "registry.test";
const OTHER: &str = "distribution.test";

struct World {
    client: Client,
    store: Arc<MemoryAuthStore>,
}

/// A provider that vouches for `ldap:dora`, in group `ldap:ops`.
#[derive(Debug)]
struct Directory;

#[async_trait::async_trait]
impl Authenticate for Directory {
    async fn authenticate(
        &self,
        credentials: &Credentials,
        _peer: Option<std::net::IpAddr>,
    ) -> Result<Option<(Identity, TokenSource)>, AuthenticationError> {
        match credentials {
            Credentials::Basic { user, password } if user == "dora" => {
                if password != "dora-pass" {
                    return Err(AuthenticationError::InvalidCredentials);
                }
                let identity = Identity::external(
                    "ldap",
                    "ldap:dora".parse().unwrap(),
                    ["ldap:ops".parse().unwrap()],
                );
                Ok(Some((identity, TokenSource::External)))
            }
            _ => Ok(None),
        }
    }
}

/// alice edits `team`, bob views it, group `ldap:ops` (dora, from the
/// directory) edits it too; tokens are also issued for OTHER.
async fn world() -> World {
    world_with(Registry::in_memory()).await
}

async fn world_with(base: Registry) -> World {
    let store = Arc::new(MemoryAuthStore::new());
    let hasher = PasswordHasher::insecure_fast();
    for name in ["alice", "bob"] {
        let user = User {
            name: name.parse().unwrap(),
            password_hash: Some(hasher.hash(&Password::new(PASSWORD)).unwrap()),
            created: time::OffsetDateTime::now_utc(),
        };
        store.create_user(user).await.unwrap();
    }
    for (role, who) in [
        (Role::Editor, "alice"),
        (Role::Viewer, "bob"),
        (Role::Editor, "group:ldap:ops"),
    ] {
        let binding = RoleBinding {
            namespace: "team".parse().unwrap(),
            role,
            subject: who.parse().unwrap(),
        };
        store.add_role_binding(binding).await.unwrap();
    }
    let mut config = AuthConfig::new(SigningKey::generate().unwrap())
        .with_store(store.clone() as Arc<dyn AuthStore>);
    config.hasher = hasher;
    config.service = SERVICE.into();
    config.tokens.accepted_services = vec![OTHER.into()];
    config.providers.push(Arc::new(Directory));
    config.settings.external_refresh_token_lifetime = std::time::Duration::from_secs(3600);
    let registry = Registry::builder(base.stores().clone())
        .auth(config)
        .build()
        .await
        .unwrap();
    registry
        .metadata()
        .create_namespace(&"team".parse().unwrap())
        .await
        .unwrap();
    World {
        client: Client::with(registry),
        store,
    }
}

impl World {
    async fn form(&self, body: &str) -> Reply {
        self.client
            .call(Method::POST, "/v2/token", &[FORM], body.to_owned())
            .await
    }

    async fn get(&self, uri: &str, auth: &str) -> Reply {
        let headers: Vec<(&str, &str)> = if auth.is_empty() {
            vec![]
        } else {
            vec![("authorization", auth)]
        };
        self.client.bare(Method::GET, uri, &headers).await
    }
}

/// The JSON of a JWT's header and claims.
fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut next = || {
        let part = parts.next().unwrap();
        serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    (next(), next())
}

fn bearer(reply: &Reply) -> String {
    format!("Bearer {}", reply.json()["access_token"].as_str().unwrap())
}

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
        .client
        .bare(
            Method::POST,
            "/v2/team/app/blobs/uploads/",
            &[("authorization", &bearer(&r))],
        )
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
        .client
        .bare(
            Method::DELETE,
            &path,
            &[("authorization", &basic("alice", PASSWORD))],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = w
        .client
        .bare(
            Method::DELETE,
            &path,
            &[("authorization", &basic("bob", PASSWORD))],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    // Gone from bob's tokens: another attempt is one at someone else's.
    let r = w
        .client
        .bare(
            Method::DELETE,
            &path,
            &[("authorization", &basic("bob", PASSWORD))],
        )
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
        .client
        .bare(
            Method::POST,
            "/v2/team/app/blobs/uploads/",
            &[("authorization", &bearer(&r))],
        )
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
