//! The world the tests share: users, bindings, a directory provider, and JWT helpers.

use std::sync::Arc;

use axum::http::Method;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use registry_api::{AuthConfig, Registry};
use registry_auth::{
    AuthStore, Authenticate, AuthenticationError, Credentials, Identity, MemoryAuthStore, Password,
    PasswordHasher, Role, RoleBinding, SigningKey, TokenSource, User,
};
use serde_json::Value;

use crate::common::{Client, Reply, PASSWORD};

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");
pub(crate) const SERVICE: &str = "registry.test";
pub(crate) const OTHER: &str = "distribution.test";

pub(crate) struct World {
    pub(crate) client: Client,
    pub(crate) store: Arc<MemoryAuthStore>,
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
pub(crate) async fn world() -> World {
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
    pub(crate) async fn form(&self, body: &str) -> Reply {
        self.client
            .call(Method::POST, "/v2/token", &[FORM], body.to_owned())
            .await
    }

    pub(crate) async fn get(&self, uri: &str, auth: &str) -> Reply {
        self.request(Method::GET, uri, auth).await
    }

    /// A request without a body, with `auth` as its `authorization`
    /// (none when empty).
    pub(crate) async fn request(&self, method: Method, uri: &str, auth: &str) -> Reply {
        let headers: Vec<(&str, &str)> = if auth.is_empty() {
            vec![]
        } else {
            vec![("authorization", auth)]
        };
        self.client.bare(method, uri, &headers).await
    }
}

/// The JSON of a JWT's header and claims.
pub(crate) fn jwt_parts(token: &str) -> (Value, Value) {
    let mut parts = token.split('.');
    let mut next = || {
        let part = parts.next().unwrap();
        serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    (next(), next())
}

pub(crate) fn bearer(reply: &Reply) -> String {
    format!("Bearer {}", reply.json()["access_token"].as_str().unwrap())
}
