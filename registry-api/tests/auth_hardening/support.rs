//! What the tests share: a world of users and roles, requests from a peer address, registry and access tokens.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use registry_api::{AuthConfig, AuthSettings, Registry};
use registry_auth::{
    AuthStore, ClusterRole, ClusterRoleBinding, MemoryAuthStore, Password, PasswordHasher,
    PullSecretPolicy, Role, RoleBinding, SigningKey, Subject, User,
};

use crate::common::{basic, Client, Reply, PASSWORD};

pub(crate) struct World {
    pub(crate) client: Client,
    pub(crate) store: Arc<MemoryAuthStore>,
    pub(crate) key: SigningKey,
}

/// `root` (cluster-admin), `alice` (editor of `team`), `bob` (viewer of
/// `team`), all with [`PASSWORD`]; `team/app` pushed.
pub(crate) async fn world(settings: AuthSettings) -> World {
    let store = Arc::new(MemoryAuthStore::new());
    let hasher = PasswordHasher::insecure_fast();
    let hash = hasher.hash(&Password::new(PASSWORD)).unwrap();
    for name in ["root", "alice", "bob", "carol"] {
        store
            .create_user(User {
                name: name.parse().unwrap(),
                password_hash: Some(hash.clone()),
                created: time::OffsetDateTime::now_utc(),
            })
            .await
            .unwrap();
    }
    for (role, subject) in [(Role::Editor, "alice"), (Role::Viewer, "bob")] {
        store
            .add_role_binding(RoleBinding {
                namespace: "team".parse().unwrap(),
                role,
                subject: subject.parse::<Subject>().unwrap(),
            })
            .await
            .unwrap();
    }
    store
        .add_cluster_role_binding(ClusterRoleBinding {
            role: ClusterRole::ClusterAdmin,
            subject: "root".parse().unwrap(),
        })
        .await
        .unwrap();
    let key = SigningKey::from_bytes([42; 32]);
    let mut config = AuthConfig::new(key.clone()).with_store(store.clone() as Arc<dyn AuthStore>);
    config.hasher = hasher;
    config.service = "registry.test".into();
    config.pull_secrets = PullSecretPolicy::new(Vec::<String>::new());
    config.settings = settings;
    let registry = Registry::builder(registry_storage::Stores::in_memory())
        .auth(config)
        .build()
        .await
        .unwrap();
    let client = Client::with(registry);
    let root = basic("root", PASSWORD);
    let data = b"layer";
    let d = registry_core::Digest::sha256_of(data);
    let r = client
        .call(
            Method::POST,
            &format!("/v2/team/app/blobs/uploads/?digest={d}"),
            &[("authorization", &root)],
            data.to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    World { client, store, key }
}

pub(crate) fn peer(addr: &str) -> ConnectInfo<SocketAddr> {
    ConnectInfo(addr.parse().unwrap())
}

/// A request from `from` (the peer address the server recorded).
pub(crate) async fn from(
    client: &Client,
    from: &str,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .extension(peer(from));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    client
        .send(b.body(Body::from(body.to_owned())).unwrap())
        .await
}

/// A registry token from `/v2/token` for `scope` (empty: none).
pub(crate) async fn registry_token(client: &Client, auth: &str, scope: &str) -> String {
    let uri = if scope.is_empty() {
        "/v2/token?service=registry.test".to_owned()
    } else {
        format!("/v2/token?service=registry.test&scope={scope}")
    };
    let r = client
        .bare(Method::GET, &uri, &[("authorization", auth)])
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.json()["token"].as_str().unwrap().to_owned()
}

/// `POST /apis/admin/v1/tokens` with the JSON `body`, as `auth`.
pub(crate) async fn create_token(client: &Client, auth: &str, body: impl Into<Body>) -> Reply {
    let headers = [
        ("authorization", auth),
        ("content-type", "application/json"),
    ];
    client
        .call(Method::POST, "/apis/admin/v1/tokens", &headers, body)
        .await
}

pub(crate) async fn tags_status(client: &Client, auth: &str) -> StatusCode {
    client
        .bare(
            Method::GET,
            "/v2/team/app/tags/list",
            &[("authorization", auth)],
        )
        .await
        .status
}
