//! Helpers for in-process router tests.
#![allow(dead_code)]

use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use registry_api::{router, Registry};
use registry_core::{media_type, Digest};
use tower::ServiceExt;

/// A response read whole.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: bytes::Bytes,
}

impl Reply {
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or(serde_json::Value::Null)
    }

    /// The OCI error code of an error reply.
    pub fn code(&self) -> String {
        self.json()["errors"][0]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

pub struct Client {
    pub app: Router,
}

impl Client {
    pub fn new() -> Self {
        Client {
            app: router(&Registry::in_memory()),
        }
    }

    pub fn with(registry: Registry) -> Self {
        Client {
            app: router(&registry),
        }
    }

    pub async fn send(&self, req: Request<Body>) -> Reply {
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> Reply {
        let mut b = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        self.send(b.body(body.into()).unwrap()).await
    }

    /// A request without a body.
    pub async fn bare(&self, method: Method, uri: &str, headers: &[(&str, &str)]) -> Reply {
        self.call(method, uri, headers, Body::empty()).await
    }

    pub async fn get(&self, uri: &str) -> Reply {
        self.call(Method::GET, uri, &[], Body::empty()).await
    }

    /// Monolithic blob upload; the reply, whatever it is.
    pub async fn try_push_blob(&self, repo: &str, data: &[u8]) -> Reply {
        let d = Digest::sha256_of(data);
        self.call(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
            &[("content-length", &data.len().to_string())],
            data.to_vec(),
        )
        .await
    }

    /// Monolithic blob upload that must succeed; returns the digest.
    pub async fn push_blob(&self, repo: &str, data: &[u8]) -> Digest {
        let r = self.try_push_blob(repo, data).await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        Digest::sha256_of(data)
    }

    /// Pushes config + one layer + an OCI manifest under `tag`; returns
    /// (manifest digest, manifest bytes, layer digest).
    pub async fn push_image(&self, repo: &str, tag: &str, seed: &str) -> (Digest, Vec<u8>, Digest) {
        let config = format!(
            r#"{{"architecture":"amd64","os":"linux","config":{{"Labels":{{"seed":"{seed}"}}}}}}"#
        );
        let config_digest = self.push_blob(repo, config.as_bytes()).await;
        let layer = format!("layer of {seed}");
        let layer_digest = self.push_blob(repo, layer.as_bytes()).await;
        let manifest = image_manifest(
            &config_digest,
            config.len(),
            &layer_digest,
            layer.len(),
            None,
        );
        let r = self
            .call(
                Method::PUT,
                &format!("/v2/{repo}/manifests/{tag}"),
                &[("content-type", media_type::OCI_MANIFEST)],
                manifest.clone(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        (Digest::sha256_of(&manifest), manifest, layer_digest)
    }
}

pub fn image_manifest(
    config: &Digest,
    config_len: usize,
    layer: &Digest,
    layer_len: usize,
    subject: Option<(&Digest, usize)>,
) -> Vec<u8> {
    let mut v = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": {"mediaType": media_type::OCI_CONFIG, "digest": config, "size": config_len},
        "layers": [{"mediaType": media_type::OCI_LAYER_GZIP, "digest": layer, "size": layer_len}],
    });
    if let Some((d, size)) = subject {
        v["subject"] =
            serde_json::json!({"mediaType": media_type::OCI_MANIFEST, "digest": d, "size": size});
        v["artifactType"] = serde_json::json!("application/vnd.example.sig");
        v["annotations"] = serde_json::json!({"org.example": "yes"});
    }
    serde_json::to_vec(&v).unwrap()
}

/// The password of every user made by [`with_access_control`].
pub const PASSWORD: &str = "password-1";

/// An `Authorization: Basic` header value.
pub fn basic(user: &str, pass: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

/// `registry` with access control over a fresh in-memory auth store:
/// `users` (each with [`PASSWORD`]), namespace bindings `(namespace, role,
/// subject)` and cluster bindings `(role, subject)`. Returns the store too,
/// for tests that add service accounts or tokens.
pub async fn with_access_control(
    registry: Registry,
    users: &[&str],
    roles: &[(&str, registry_auth::Role, &str)],
    cluster: &[(registry_auth::ClusterRole, &str)],
) -> (Registry, std::sync::Arc<registry_auth::MemoryAuthStore>) {
    with_providers(registry, users, roles, cluster, Vec::new()).await
}

/// [`with_access_control`] with identity providers asked before the
/// registry's own users.
pub async fn with_providers(
    registry: Registry,
    users: &[&str],
    roles: &[(&str, registry_auth::Role, &str)],
    cluster: &[(registry_auth::ClusterRole, &str)],
    providers: Vec<std::sync::Arc<dyn registry_auth::Authenticate>>,
) -> (Registry, std::sync::Arc<registry_auth::MemoryAuthStore>) {
    let (mut config, store) = auth_config(users, roles, cluster).await;
    config.providers = providers;
    let registry = Registry::builder(registry.stores().clone())
        .limits(registry.limits().clone())
        .auth(config)
        .build()
        .await
        .unwrap();
    (registry, store)
}

/// Access control over a fresh in-memory auth store: `users` (each with
/// [`PASSWORD`]), namespace bindings `(namespace, role, subject)` and
/// cluster bindings `(role, subject)`; the store too.
pub async fn auth_config(
    users: &[&str],
    roles: &[(&str, registry_auth::Role, &str)],
    cluster: &[(registry_auth::ClusterRole, &str)],
) -> (
    registry_api::AuthConfig,
    std::sync::Arc<registry_auth::MemoryAuthStore>,
) {
    use registry_auth::{
        AuthStore, ClusterRoleBinding, MemoryAuthStore, Password, PasswordHasher, PullSecretPolicy,
        RoleBinding, SigningKey, Subject, User,
    };
    let store = std::sync::Arc::new(MemoryAuthStore::new());
    let hasher = PasswordHasher::insecure_fast();
    let hash = hasher.hash(&Password::new(PASSWORD)).unwrap();
    for name in users {
        let user = User {
            name: name.parse().unwrap(),
            password_hash: Some(hash.clone()),
            created: time::OffsetDateTime::now_utc(),
        };
        store.create_user(user).await.unwrap();
    }
    for (namespace, role, subject) in roles {
        let binding = RoleBinding {
            namespace: namespace.parse().unwrap(),
            role: *role,
            subject: subject.parse::<Subject>().unwrap(),
        };
        store.add_role_binding(binding).await.unwrap();
    }
    for (role, subject) in cluster {
        let binding = ClusterRoleBinding {
            role: *role,
            subject: subject.parse::<Subject>().unwrap(),
        };
        store.add_cluster_role_binding(binding).await.unwrap();
    }
    let mut config = registry_api::AuthConfig::new(SigningKey::generate().unwrap())
        .with_store(store.clone() as std::sync::Arc<dyn AuthStore>);
    config.hasher = hasher;
    config.service = "registry.test".into();
    config.pull_secrets = PullSecretPolicy::new(Vec::<String>::new());
    (config, store)
}

/// An in-memory registry with these limits.
pub async fn limited(limits: registry_api::Limits) -> Registry {
    Registry::builder(registry_storage::Stores::in_memory())
        .limits(limits)
        .build()
        .await
        .unwrap()
}

/// A registry over a data directory (filesystem blobs, SQLite metadata).
pub async fn data_dir(dir: &std::path::Path, limits: registry_api::Limits) -> Registry {
    let stores =
        registry_storage::Stores::data_dir(dir, registry_storage::filesystem::Durability::None)
            .await
            .unwrap();
    Registry::builder(stores)
        .limits(limits)
        .build()
        .await
        .unwrap()
}

/// A host's authentication (bring your own), reduced to its outcome: every request is
/// `user`'s (`None`: anonymous).
pub async fn host_layer(
    axum::extract::State(user): axum::extract::State<Option<&'static str>>,
    mut request: Request<Body>,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let caller = match user {
        Some(name) => {
            registry_api::Caller::new(registry_auth::Identity::user(name.parse().unwrap()))
        }
        None => registry_api::Caller::anonymous(),
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// A client whose every request a host authenticated as `user`.
pub fn as_user(registry: &Registry, user: Option<&'static str>) -> Client {
    Client {
        app: router(registry).layer(axum::middleware::from_fn_with_state(user, host_layer)),
    }
}

/// A registry with access control where alice edits and bob views `team`.
pub async fn team() -> Registry {
    let roles = [
        ("team", registry_auth::Role::Editor, "alice"),
        ("team", registry_auth::Role::Viewer, "bob"),
    ];
    let (registry, _) =
        with_access_control(Registry::in_memory(), &["alice", "bob"], &roles, &[]).await;
    registry
        .metadata()
        .create_namespace(&"team".parse().unwrap())
        .await
        .unwrap();
    registry
}
