//! Access control on every endpoint: a table of endpoint × role with the
//! expected status, layer authorization, and the token protocol.

mod admin_api;
#[path = "../common/mod.rs"]
mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::{basic, with_providers, Client, PASSWORD};
use registry_api::Registry;
use registry_auth::{
    AccessToken, AuthStore, Authenticate, AuthenticationError, ClusterRole, Credentials, Identity,
    Role, ServiceAccount, ServiceAccountRef, Subject, TokenSource,
};
use registry_core::Digest;

/// An identity provider vouching for `dora` (password `dora-pass`) as
/// `test:dora` in group `test:editors`, and for nobody else: the group
/// subjects of the matrix, whatever provider puts users in groups (LDAP and
/// OIDC have tests of their own against real servers).
#[derive(Debug)]
struct GroupProvider;

#[async_trait::async_trait]
impl Authenticate for GroupProvider {
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
                    "test",
                    "test:dora".parse().unwrap(),
                    ["test:editors".parse().unwrap()],
                );
                Ok(Some((identity, TokenSource::External)))
            }
            _ => Ok(None),
        }
    }
}

struct World {
    client: Client,
    /// Authorization header per role name ("" for anonymous).
    creds: Vec<(&'static str, String)>,
    blob: Digest,
    secret_blob: Digest,
}

async fn world() -> World {
    let users = ["root", "viewer", "editor", "nsadmin", "metrics", "nobody"];
    let roles = [
        ("a", Role::Viewer, "viewer"),
        ("a", Role::Editor, "editor"),
        ("a", Role::Admin, "nsadmin"),
        ("a", Role::Viewer, "system:serviceaccount:b:puller"),
        ("pub", Role::Viewer, "system:anonymous"),
        // Group subjects: a provider's group, and every service account of c.
        ("a", Role::Editor, "group:test:editors"),
        ("a", Role::Viewer, "group:system:serviceaccounts:c"),
    ];
    let cluster = [
        (ClusterRole::ClusterAdmin, "root"),
        (ClusterRole::MetricsViewer, "metrics"),
    ];
    let (registry, store) = with_providers(
        Registry::in_memory(),
        &users,
        &roles,
        &cluster,
        vec![std::sync::Arc::new(GroupProvider)],
    )
    .await;
    let mut sa_tokens = Vec::new();
    for (ns, name) in [("b", "puller"), ("c", "builder")] {
        let sa = ServiceAccountRef::new(ns.parse().unwrap(), name.parse().unwrap());
        store
            .create_service_account(ServiceAccount {
                account: sa.clone(),
                created: time::OffsetDateTime::now_utc(),
            })
            .await
            .unwrap();
        let (record, token) =
            AccessToken::generate(Subject::ServiceAccount(sa), "ci".parse().unwrap(), None)
                .unwrap();
        store.create_token(record).await.unwrap();
        sa_tokens.push(token);
    }
    let client = Client::with(registry);
    let root = basic("root", PASSWORD);
    // Seed as cluster admin: namespaces a, b, pub are created by the first push.
    let blob = push_as(&client, &root, "a/app", b"layer").await;
    let secret_blob = push_as(&client, &root, "b/secret", b"secret layer").await;
    push_as(&client, &root, "pub/open", b"public").await;
    let manifest = common::image_manifest(&blob, 5, &blob, 5, None);
    let r = client
        .call(
            Method::PUT,
            "/v2/a/app/manifests/v1",
            &[
                ("authorization", &root),
                ("content-type", registry_core::media_type::OCI_MANIFEST),
            ],
            manifest,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    let creds = vec![
        ("anonymous", String::new()),
        ("nobody", basic("nobody", PASSWORD)),
        ("viewer", basic("viewer", PASSWORD)),
        ("editor", basic("editor", PASSWORD)),
        ("nsadmin", basic("nsadmin", PASSWORD)),
        ("cluster-admin", root),
        ("metrics-viewer", basic("metrics", PASSWORD)),
        ("cross-ns-sa", basic("any", sa_tokens[0].expose())),
        ("group-editor", basic("dora", "dora-pass")),
        ("ns-sa-group", basic("any", sa_tokens[1].expose())),
    ];
    World {
        client,
        creds,
        blob,
        secret_blob,
    }
}

async fn push_as(c: &Client, auth: &str, repo: &str, data: &[u8]) -> Digest {
    let d = Digest::sha256_of(data);
    let r = c
        .call(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            &[("authorization", auth)],
            data.to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    d
}

/// Expected outcome: `A` allowed (anything but 401/403), `U` 401, `D` 403.
#[derive(Debug, Clone, Copy, PartialEq)]
enum E {
    A,
    U,
    D,
}
use E::{A, D, U};

#[tokio::test]
async fn every_endpoint_for_every_role() {
    let w = world().await;
    let blob = w.blob.to_string();
    let unknown = Digest::sha256_of(b"unknown").to_string();
    let endpoints: Vec<(Method, String)> = vec![
        (Method::GET, "/v2/a/app/manifests/v1".into()),
        (Method::HEAD, "/v2/a/app/manifests/v1".into()),
        (Method::GET, format!("/v2/a/app/blobs/{blob}")),
        (Method::HEAD, format!("/v2/a/app/blobs/{blob}")),
        (Method::GET, "/v2/a/app/tags/list".into()),
        (Method::GET, format!("/v2/a/app/referrers/{blob}")),
        (Method::POST, "/v2/a/app/blobs/uploads/".into()),
        (Method::PUT, "/v2/a/app/manifests/v2".into()),
        (Method::DELETE, format!("/v2/a/app/manifests/{unknown}")),
        (Method::DELETE, format!("/v2/a/app/blobs/{unknown}")),
        (Method::GET, "/v2/pub/open/tags/list".into()),
        (
            Method::GET,
            "/apis/admin/v1/namespaces/a/rolebindings".into(),
        ),
        (
            Method::GET,
            "/apis/admin/v1/namespaces/a/serviceaccounts".into(),
        ),
        (Method::GET, "/apis/admin/v1/users".into()),
        (Method::GET, "/apis/admin/v1/clusterrolebindings".into()),
        (Method::GET, "/apis/admin/v1/whoami".into()),
    ];
    // Rows follow `endpoints`; columns follow the roles in `world()`:
    // anonymous, nobody, viewer, editor, nsadmin, cluster-admin, metrics-viewer, cross-ns-sa,
    // group-editor (a provider's group bound to registry-editor),
    // ns-sa-group (a service account of c: group system:serviceaccounts:c is a viewer).
    let table: Vec<[E; 10]> = vec![
        [U, D, A, A, A, A, D, A, A, A], // GET manifest
        [U, D, A, A, A, A, D, A, A, A], // HEAD manifest
        [U, D, A, A, A, A, D, A, A, A], // GET blob
        [U, D, A, A, A, A, D, A, A, A], // HEAD blob
        [U, D, A, A, A, A, D, A, A, A], // tags list
        [U, D, A, A, A, A, D, A, A, A], // referrers
        [U, D, D, A, A, A, D, D, A, D], // start upload
        [U, D, D, A, A, A, D, D, A, D], // put manifest
        [U, D, D, D, A, A, D, D, D, D], // delete manifest
        [U, D, D, D, A, A, D, D, D, D], // delete blob
        [A, A, A, A, A, A, A, A, A, A], // public namespace
        [U, D, D, D, A, A, D, D, D, D], // namespace role bindings
        [U, D, D, D, A, A, D, D, D, D], // namespace service accounts
        [U, D, D, D, D, A, D, D, D, D], // users
        [U, D, D, D, D, A, D, D, D, D], // cluster role bindings
        [U, A, A, A, A, A, A, A, A, A], // whoami
    ];
    let mut failures = Vec::new();
    for ((method, uri), row) in endpoints.iter().zip(&table) {
        for ((role, auth), expected) in w.creds.iter().zip(row) {
            let mut headers: Vec<(&str, &str)> =
                vec![("content-type", registry_core::media_type::OCI_MANIFEST)];
            if !auth.is_empty() {
                headers.push(("authorization", auth));
            }
            let body = if *method == Method::PUT {
                b"{}".to_vec()
            } else {
                Vec::new()
            };
            let r = w.client.call(method.clone(), uri, &headers, body).await;
            let got = match r.status {
                StatusCode::UNAUTHORIZED => U,
                StatusCode::FORBIDDEN => D,
                _ => A,
            };
            if got != *expected {
                failures.push(format!(
                    "{method} {uri} as {role}: expected {expected:?}, got {} {}",
                    r.status,
                    r.code()
                ));
            }
            if got == U {
                assert!(
                    r.header("www-authenticate").starts_with("Bearer realm=\""),
                    "{method} {uri} as {role}: no challenge"
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn layer_authorization_blocks_blobs_of_other_repositories() {
    let w = world().await;
    let editor = w
        .creds
        .iter()
        .find(|(r, _)| *r == "editor")
        .unwrap()
        .1
        .clone();
    let secret = w.secret_blob.to_string();
    // The blob exists, but not in a/app: unknown there.
    let r = w
        .client
        .bare(
            Method::GET,
            &format!("/v2/a/app/blobs/{secret}"),
            &[("authorization", &editor)],
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
    );
    // Mounting it from b/secret without pull there silently starts a session instead.
    let r = w
        .client
        .bare(
            Method::POST,
            &format!("/v2/a/app/blobs/uploads/?mount={secret}&from=b/secret"),
            &[("authorization", &editor)],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = w
        .client
        .bare(
            Method::GET,
            &format!("/v2/a/app/blobs/{secret}"),
            &[("authorization", &editor)],
        )
        .await;
    assert_eq!(r.code(), "BLOB_UNKNOWN");
    // A manifest referencing it cannot smuggle it in either.
    let m = common::image_manifest(&w.secret_blob, 12, &w.secret_blob, 12, None);
    let r = w
        .client
        .call(
            Method::PUT,
            "/v2/a/app/manifests/stolen",
            &[
                ("authorization", &editor),
                ("content-type", registry_core::media_type::OCI_MANIFEST),
            ],
            m,
        )
        .await;
    assert_eq!(r.code(), "MANIFEST_BLOB_UNKNOWN");
}

#[tokio::test]
async fn push_to_missing_namespace_needs_cluster_admin() {
    let w = world().await;
    let editor = w
        .creds
        .iter()
        .find(|(r, _)| *r == "editor")
        .unwrap()
        .1
        .clone();
    // Editor of `a` has nothing in `zzz`: 403 before the namespace question.
    let r = w
        .client
        .bare(
            Method::POST,
            "/v2/zzz/app/blobs/uploads/",
            &[("authorization", &editor)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(r.code(), "DENIED");
    let root = w
        .creds
        .iter()
        .find(|(r, _)| *r == "cluster-admin")
        .unwrap()
        .1
        .clone();
    let r = w
        .client
        .bare(
            Method::POST,
            "/v2/zzz/app/blobs/uploads/",
            &[("authorization", &root)],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn catalog_shows_only_what_the_caller_may_pull() {
    let w = world().await;
    let list = |auth: &str| {
        let app = w.client.app.clone();
        let auth = auth.to_owned();
        async move {
            let c = Client { app };
            let h: Vec<(&str, &str)> = if auth.is_empty() {
                vec![]
            } else {
                vec![("authorization", auth.as_str())]
            };
            c.bare(Method::GET, "/v2/_catalog", &h).await.json()["repositories"].clone()
        }
    };
    assert_eq!(list("").await, serde_json::json!(["pub/open"]));
    assert_eq!(
        list(&w.creds[2].1).await,
        serde_json::json!(["a/app", "pub/open"])
    );
    assert_eq!(
        list(&w.creds[5].1).await,
        serde_json::json!(["a/app", "b/secret", "pub/open"])
    );
}

/// A registry token lists the catalog only with `registry:catalog:*`: one
/// narrowed to a repository is sent back for that scope, which is granted
/// when asked for and lists what the account may pull.
#[tokio::test]
async fn catalog_with_a_registry_token_needs_the_catalog_scope() {
    let w = world().await;
    let viewer = w.creds[2].1.clone();
    let token = |scope: &'static str| {
        let (client, viewer) = (
            Client {
                app: w.client.app.clone(),
            },
            viewer.clone(),
        );
        async move {
            let uri = format!("/v2/token?service=registry.test&scope={scope}");
            let r = client
                .bare(Method::GET, &uri, &[("authorization", &viewer)])
                .await;
            assert_eq!(r.status, StatusCode::OK);
            format!("Bearer {}", r.json()["token"].as_str().unwrap())
        }
    };
    let narrow = token("repository:a/app:pull").await;
    // Before: the whole catalog the account could see.
    let r = w
        .client
        .bare(Method::GET, "/v2/_catalog", &[("authorization", &narrow)])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{:?}", r.json());
    let challenge = r.header("www-authenticate");
    assert!(
        challenge.contains("scope=\"registry:catalog:*\""),
        "{challenge}"
    );
    assert!(
        challenge.contains("error=\"insufficient_scope\""),
        "{challenge}"
    );
    let listing = token("registry:catalog:*").await;
    let r = w
        .client
        .bare(Method::GET, "/v2/_catalog", &[("authorization", &listing)])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["a/app", "pub/open"])
    );
}

#[tokio::test]
async fn token_protocol_grants_only_allowed_actions() {
    let w = world().await;
    let viewer = w.creds[2].1.clone();
    let r = w
        .client
        .call(
            Method::GET,
            "/v2/token?service=registry.test&scope=repository:a/app:pull,push",
            &[("authorization", &viewer)],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let token = r.json()["token"].as_str().unwrap().to_owned();
    assert_eq!(r.json()["access_token"], token.as_str());
    let bearer = format!("Bearer {token}");
    let r = w
        .client
        .bare(
            Method::GET,
            "/v2/a/app/manifests/v1",
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = w
        .client
        .bare(
            Method::POST,
            "/v2/a/app/blobs/uploads/",
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.code(), "UNAUTHORIZED");
    assert!(r
        .header("www-authenticate")
        .contains("scope=\"repository:a/app:pull,push\""));
    assert!(r
        .header("www-authenticate")
        .contains("error=\"insufficient_scope\""));
    // Wrong password: 401, same message whatever was wrong.
    let r = w
        .client
        .bare(
            Method::GET,
            "/v2/token?scope=repository:a/app:pull",
            &[("authorization", &basic("viewer", "nope"))],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r2 = w
        .client
        .bare(
            Method::GET,
            "/v2/token?scope=repository:a/app:pull",
            &[("authorization", &basic("ghost", "nope"))],
        )
        .await;
    assert_eq!(r.body, r2.body);
    // Anonymous: a token with only the public grants.
    let r = w
        .client
        .bare(
            Method::GET,
            "/v2/token?scope=repository:pub/open:pull&scope=repository:a/app:pull",
            &[],
        )
        .await;
    let bearer = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    let r = w
        .client
        .bare(
            Method::GET,
            "/v2/pub/open/tags/list",
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    let r = w
        .client
        .bare(
            Method::GET,
            "/v2/a/app/tags/list",
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // /v2/ itself: 401 anonymous, 200 with good credentials.
    assert_eq!(w.client.get("/v2/").await.status, StatusCode::UNAUTHORIZED);
    let r = w
        .client
        .bare(Method::GET, "/v2/", &[("authorization", &viewer)])
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

/// A provider's group grant reaches through the token protocol: the token
/// keeps the caller's groups, and a push with it works where the group is
/// an editor and nowhere else. `whoami` shows the provider and the groups.
#[tokio::test]
async fn provider_groups_survive_the_token_protocol() {
    let w = world().await;
    let dora = basic("dora", "dora-pass");
    let r = w
        .client
        .call(
            Method::GET,
            "/v2/token?service=registry.test&scope=repository:a/app:pull,push&scope=repository:b/secret:pull",
            &[("authorization", &dora)],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let bearer = format!("Bearer {}", r.json()["token"].as_str().unwrap());
    let pushed = w
        .client
        .bare(
            Method::POST,
            "/v2/a/app/blobs/uploads/",
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(pushed.status, StatusCode::ACCEPTED, "{:?}", pushed.body);
    let secret = w
        .client
        .bare(
            Method::GET,
            &format!("/v2/b/secret/blobs/{}", w.secret_blob),
            &[("authorization", &bearer)],
        )
        .await;
    assert_eq!(secret.status, StatusCode::UNAUTHORIZED, "not granted");

    let me = w
        .client
        .bare(
            Method::GET,
            "/apis/admin/v1/whoami",
            &[("authorization", &dora)],
        )
        .await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["subject"], "user:test:dora");
    assert_eq!(me.json()["provider"], "test");
    assert_eq!(
        me.json()["groups"],
        serde_json::json!(["system:authenticated", "test:editors"])
    );
    let wrong = w
        .client
        .bare(
            Method::GET,
            "/apis/admin/v1/whoami",
            &[("authorization", &basic("dora", "nope"))],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    // A provider user owns no access tokens: the error says why.
    let r = w
        .client
        .call(
            Method::POST,
            "/apis/admin/v1/tokens",
            &[("authorization", &dora)],
            Body::empty(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        String::from_utf8_lossy(&r.body).contains("signs in through test"),
        "{:?}",
        r.body
    );
}
