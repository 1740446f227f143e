//! Bring your own authentication: a host layer puts a `Caller` in the
//! request extensions and the registry trusts it, keeping its roles, layer
//! authorization, catalog filtering and audit (tag history and the audit
//! log record the host's user).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use common::{with_access_control, Client};
use registry_api::{router, Caller, Registry};
use registry_auth::{Identity, Role};

/// The host's authentication, reduced to its outcome: every request is
/// `user`'s (`None`: anonymous).
async fn host_layer(
    State(user): State<Option<&'static str>>,
    mut request: Request,
    next: Next,
) -> Response {
    let caller = match user {
        Some(name) => Caller::new(Identity::user(name.parse().unwrap())),
        None => Caller::anonymous(),
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn as_user(registry: &Registry, user: Option<&'static str>) -> Client {
    Client {
        app: router(registry).layer(middleware::from_fn_with_state(user, host_layer)),
    }
}

/// Everything written to the audit log while the returned guard lives.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

async fn team() -> Registry {
    let roles = [
        ("team", Role::Editor, "alice"),
        ("team", Role::Viewer, "bob"),
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

#[tokio::test]
async fn a_push_through_host_auth_is_recorded_as_the_hosts_user() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_env_filter("audit=info")
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let registry = team().await;
    let alice = as_user(&registry, Some("alice"));
    let (digest, _, _) = alice.push_image("team/app", "v1", "host").await;

    // Tag history says alice, read through the Image API as bob.
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

    // The audit log names her too.
    let log = captured.text();
    let line = log
        .lines()
        .find(|l| l.contains("manifest pushed"))
        .unwrap_or_else(|| panic!("no audit line for the push in {log:?}"));
    assert!(line.contains("actor=alice"), "{line}");
    assert!(line.contains("repository=team/app"), "{line}");
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
