//! The host application of the `embedded` example: its own routes, its own
//! users (API keys), and the registry's routers mounted beside them. The
//! host authenticates; the registry authorizes with the roles the host
//! granted.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use base64::Engine as _;
use registry::api::{AuthConfig, BuildError, Caller, Registry};
use registry::auth::{Identity, Role, RoleBinding, SigningKey, UserName};
use registry::core::Namespace;
use registry::storage::Stores;

/// The host's own user table: user name → API key. A real host would keep
/// hashed keys in its database; the point here is that the registry never
/// sees them.
#[derive(Debug, Clone, Default)]
pub struct Users(Arc<HashMap<String, String>>);

impl Users {
    /// Users with their API keys.
    pub fn new(users: &[(&str, &str)]) -> Self {
        Users(Arc::new(
            users
                .iter()
                .map(|(u, k)| ((*u).to_owned(), (*k).to_owned()))
                .collect(),
        ))
    }

    /// The user whose API key this is (`Authorization: Basic user:key`,
    /// which `docker login`, podman and oci-client all send).
    fn authenticate(&self, authorization: Option<&HeaderValue>) -> Option<String> {
        let text = authorization?.to_str().ok()?.strip_prefix("Basic ")?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()?;
        let (user, key) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
        (self.0.get(user)? == key).then(|| user.to_owned())
    }
}

/// The host's authentication middleware: maps its users to registry
/// identities through the caller extension. Wrong keys are the host's to
/// answer; no key is an anonymous caller, whose 401s get the host's Basic
/// challenge.
async fn host_auth(State(users): State<Users>, mut request: Request, next: Next) -> Response {
    let authorization = request.headers().get(header::AUTHORIZATION).cloned();
    let caller = match (&authorization, users.authenticate(authorization.as_ref())) {
        (_, Some(user)) => match user.parse::<UserName>() {
            Ok(name) => Caller::new(Identity::user(name)),
            Err(_) => return unauthorized(),
        },
        (Some(_), None) => return unauthorized(),
        (None, None) => Caller::anonymous(),
    };
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"embedded\""),
        );
    }
    response
}

fn unauthorized() -> Response {
    Response::builder()
        .status(StatusCode::UNAUTHORIZED)
        .header(header::WWW_AUTHENTICATE, "Basic realm=\"embedded\"")
        .body("wrong API key\n".into())
        .unwrap_or_default()
}

/// A grant the host gives one of its users in the registry.
pub struct Grant<'a> {
    /// The host's user.
    pub user: &'a str,
    /// The registry namespace.
    pub namespace: &'a str,
    /// The role there.
    pub role: Role,
}

/// The example's grants: alice edits namespace `team`, bob views it.
pub const TEAM_GRANTS: [Grant<'static>; 2] = [
    Grant {
        user: "alice",
        namespace: "team",
        role: Role::Editor,
    },
    Grant {
        user: "bob",
        namespace: "team",
        role: Role::Viewer,
    },
];

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// A user, namespace or store operation was refused.
    #[error("setting up the registry: {0}")]
    Setup(String),
    /// The registry did not build.
    #[error(transparent)]
    Build(#[from] BuildError),
}

/// The host application over `stores`: `GET /` is the host's own page,
/// `/v2/` and `/apis/image/v1/` are the registry's, all behind the host's
/// authentication. Returns the app and the registry (for the host's own
/// Rust calls into it).
pub async fn app(
    stores: Stores,
    users: Users,
    grants: &[Grant<'_>],
) -> Result<(Router, Registry), HostError> {
    let auth_store = stores
        .auth()
        .cloned()
        .ok_or_else(|| HostError::Setup("the stores have no auth store".into()))?;
    for grant in grants {
        let namespace: Namespace = grant
            .namespace
            .parse()
            .map_err(|e| HostError::Setup(format!("namespace {}: {e}", grant.namespace)))?;
        let user: UserName = grant
            .user
            .parse()
            .map_err(|e| HostError::Setup(format!("user {}: {e}", grant.user)))?;
        match stores.metadata().create_namespace(&namespace).await {
            Ok(()) | Err(registry::storage::StorageError::AlreadyExists { .. }) => {}
            Err(e) => return Err(HostError::Setup(e.to_string())),
        }
        let binding = RoleBinding {
            namespace,
            role: grant.role,
            subject: registry::auth::Subject::User(user),
        };
        match auth_store.add_role_binding(binding).await {
            Ok(()) | Err(registry::auth::AuthStoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(HostError::Setup(e.to_string())),
        }
    }
    // The registry's roles, layer authorization, catalog filtering and
    // audit, over the bindings above; its own login is never reached (the
    // host puts a caller on every request), so the signing key only signs
    // tokens nobody asks for.
    let key = SigningKey::generate().map_err(|e| HostError::Setup(e.to_string()))?;
    let registry = Registry::builder(stores)
        .auth(AuthConfig::new(key))
        .build()
        .await?;
    let app = Router::new()
        .route("/", get(|| async { "the host application's own page\n" }))
        .merge(registry::api::distribution_router(&registry))
        .merge(registry::api::image_api_router(&registry))
        .layer(middleware::from_fn_with_state(users, host_auth));
    Ok((app, registry))
}
