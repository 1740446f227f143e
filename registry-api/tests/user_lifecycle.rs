//! The lifecycle of users and administrators: password changes by a
//! cluster-admin and by the user, the last cluster-admin kept, and the
//! bootstrap `admin` created once per store.

mod common;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use common::{basic, with_access_control, Client, Reply, PASSWORD};
use registry_api::{AuthConfig, Registry};
use registry_auth::{
    ensure_admin, AccessToken, AuthStore, BootstrapOutcome, ClusterRole, Password, PasswordHasher,
    Role, ServiceAccount, ServiceAccountRef, SigningKey, Subject,
};
use registry_storage::Stores;

async fn call(client: &Client, method: Method, uri: &str, auth: &str, body: &str) -> Reply {
    let mut headers = vec![("content-type", "application/json")];
    if !auth.is_empty() {
        headers.push(("authorization", auth));
    }
    client.call(method, uri, &headers, body.to_owned()).await
}

async fn whoami(client: &Client, auth: &str) -> StatusCode {
    call(client, Method::GET, "/apis/admin/v1/whoami", auth, "")
        .await
        .status
}

fn message(r: &Reply) -> String {
    r.json()["errors"][0]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test]
async fn passwords_change_at_once_by_admin_or_by_their_owner() {
    let (registry, _store) = with_access_control(
        Registry::in_memory(),
        &["root", "alice", "bob"],
        &[("team", Role::Admin, "bob")],
        &[(ClusterRole::ClusterAdmin, "root")],
    )
    .await;
    let c = Client::with(registry);
    let root = basic("root", PASSWORD);
    let put = |who: &str, body: &str| {
        let (who, body) = (who.to_owned(), body.to_owned());
        let c = &c;
        async move {
            call(
                c,
                Method::PUT,
                "/apis/admin/v1/users/alice/password",
                &who,
                &body,
            )
            .await
        }
    };

    // A cluster-admin sets it; the old password stops working at once.
    let alice_old = basic("alice", PASSWORD);
    assert_eq!(whoami(&c, &alice_old).await, StatusCode::OK);
    let r = put(&root, r#"{"password":"second-pass"}"#).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(whoami(&c, &alice_old).await, StatusCode::UNAUTHORIZED);
    let alice = basic("alice", "second-pass");
    assert_eq!(whoami(&c, &alice).await, StatusCode::OK);

    // The user changes their own with the current one.
    let r = put(
        &alice,
        r#"{"current_password":"second-pass","password":"third-pass"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(whoami(&c, &alice).await, StatusCode::UNAUTHORIZED);
    let alice = basic("alice", "third-pass");
    assert_eq!(whoami(&c, &alice).await, StatusCode::OK);

    // Refused callers.
    let r = put(
        &alice,
        r#"{"current_password":"wrong-pass","password":"fourth-pass"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(message(&r).contains("current password"), "{}", message(&r));
    let r = put(&alice, r#"{"password":"fourth-pass"}"#).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(message(&r).contains("current_password"), "{}", message(&r));
    // A namespace registry-admin is not a user manager.
    let bob = basic("bob", PASSWORD);
    let r = put(&bob, r#"{"password":"bobs-choice"}"#).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = put(
        &bob,
        r#"{"current_password":"third-pass","password":"bobs-choice"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "not bob's own password");
    let r = put("", r#"{"password":"anonymous-choice"}"#).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(whoami(&c, &alice).await, StatusCode::OK, "nothing changed");

    // Bad input.
    for (body, code) in [
        (r#"{"password":"short"}"#, "NAME_INVALID"),
        (r#"{"password":"long-enough","extra":1}"#, "UNSUPPORTED"),
        (r#"{"pass":"long-enough"}"#, "UNSUPPORTED"),
        ("not json", "UNSUPPORTED"),
    ] {
        let r = put(&root, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.code(), code, "{body}");
    }
    let r = call(
        &c,
        Method::PUT,
        "/apis/admin/v1/users/nobody/password",
        &root,
        r#"{"password":"long-enough"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(message(&r).contains("user nobody does not exist"));
    let r = call(
        &c,
        Method::PUT,
        "/apis/admin/v1/users/Not%20A%20Name/password",
        &root,
        r#"{"password":"long-enough"}"#,
    )
    .await;
    assert_eq!(r.code(), "NAME_INVALID");
    assert_eq!(whoami(&c, &alice).await, StatusCode::OK, "nothing changed");
}

#[tokio::test]
async fn the_last_cluster_admin_stays() {
    let (registry, store) = with_access_control(
        Registry::in_memory(),
        &["root"],
        &[],
        &[(ClusterRole::ClusterAdmin, "root")],
    )
    .await;
    let c = Client::with(registry);
    let root = basic("root", PASSWORD);

    let r = call(&c, Method::DELETE, "/apis/admin/v1/users/root", &root, "").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(
        message(&r).contains("user root is the last cluster-admin"),
        "{}",
        message(&r)
    );
    let unbind = "/apis/admin/v1/clusterrolebindings?role=cluster-admin&subject=user:root";
    let r = call(&c, Method::DELETE, unbind, &root, "").await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert_eq!(whoami(&c, &root).await, StatusCode::OK);

    // With a service account as another cluster-admin, root may go; then
    // the service account is the last one.
    let sa = ServiceAccountRef::new("ops".parse().unwrap(), "robot".parse().unwrap());
    store
        .create_service_account(ServiceAccount {
            account: sa.clone(),
            created: time::OffsetDateTime::now_utc(),
        })
        .await
        .unwrap();
    let (record, token) = AccessToken::generate(
        Subject::ServiceAccount(sa.clone()),
        "ci".parse().unwrap(),
        None,
    )
    .unwrap();
    store.create_token(record).await.unwrap();
    let r = call(
        &c,
        Method::POST,
        "/apis/admin/v1/clusterrolebindings",
        &root,
        r#"{"role":"cluster-admin","subject":"serviceaccount:ops:robot"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = call(&c, Method::DELETE, "/apis/admin/v1/users/root", &root, "").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);

    let robot = basic("any", token.expose());
    let r = call(
        &c,
        Method::DELETE,
        "/apis/admin/v1/namespaces/ops/serviceaccounts/robot",
        &robot,
        "",
    )
    .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(message(&r).contains("service account system:serviceaccount:ops:robot"));
    let unbind =
        "/apis/admin/v1/clusterrolebindings?role=cluster-admin&subject=serviceaccount:ops:robot";
    let r = call(&c, Method::DELETE, unbind, &robot, "").await;
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(whoami(&c, &robot).await, StatusCode::OK);
}

#[tokio::test]
async fn the_bootstrap_admin_is_created_once_per_store() {
    let hasher = PasswordHasher::insecure_fast();
    let store = Arc::new(registry_auth::MemoryAuthStore::new());
    let outcome = ensure_admin(store.as_ref(), &hasher, Some(Password::new("admin-pass-1")))
        .await
        .unwrap();
    assert!(matches!(outcome, BootstrapOutcome::Created { .. }));
    let start = || async {
        let mut config = AuthConfig::new(SigningKey::generate().unwrap())
            .with_store(store.clone() as Arc<dyn AuthStore>);
        config.hasher = hasher.clone();
        let registry = Registry::builder(Stores::in_memory())
            .auth(config)
            .build()
            .await
            .unwrap();
        Client::with(registry)
    };
    let c = start().await;
    let admin = basic("admin", "admin-pass-1");
    assert_eq!(whoami(&c, &admin).await, StatusCode::OK);

    // admin makes a user and a cluster-admin of it, then deletes itself.
    let r = call(
        &c,
        Method::POST,
        "/apis/admin/v1/users",
        &admin,
        r#"{"name":"root","password":"root-pass-1"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = call(
        &c,
        Method::POST,
        "/apis/admin/v1/clusterrolebindings",
        &admin,
        r#"{"role":"cluster-admin","subject":"user:root"}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = call(&c, Method::DELETE, "/apis/admin/v1/users/admin", &admin, "").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);

    // It stays deleted across restarts, password configured or not.
    for password in [None, Some(Password::new("admin-pass-2"))] {
        let outcome = ensure_admin(store.as_ref(), &hasher, password)
            .await
            .unwrap();
        assert!(
            matches!(outcome, BootstrapOutcome::AlreadyBootstrapped),
            "{outcome:?}"
        );
        let c = start().await;
        assert_eq!(whoami(&c, &admin).await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            whoami(&c, &basic("admin", "admin-pass-2")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            whoami(&c, &basic("root", "root-pass-1")).await,
            StatusCode::OK
        );
    }
}
