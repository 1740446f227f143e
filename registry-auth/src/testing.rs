//! The [`AuthStore`] conformance suite (feature `testing`).
//!
//! Every backend runs it, e.g. in a test:
//!
//! ```no_run
//! # async fn conformance() {
//! // In a backend's tests, with its own store in place of the memory one:
//! let store = registry_auth::MemoryAuthStore::new();
//! registry_auth::testing::run_all(&store).await;
//! # }
//! ```
//!
//! Each check uses names made unique with a random tag, so checks may share
//! a store, and each ends by asserting that nothing carrying its tag is left
//! behind. Checks panic on failure, like assertions.

use registry_core::Namespace;
use time::{Duration, OffsetDateTime};

use crate::credentials::{random_bytes, AccessToken, AccessTokenId, AccessTokenSecret, TokenName};
use crate::role::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use crate::store::{AuthStore, AuthStoreError, ServiceAccount, User};
use crate::subject::{Group, ServiceAccountRef, Subject, UserName};
use crate::PasswordHasher;

mod token_records;
pub use token_records::{refresh_tokens, token_keys};

/// Runs every check in turn.
pub async fn run_all(store: &dyn AuthStore) {
    users(store).await;
    service_accounts(store).await;
    tokens(store).await;
    role_bindings(store).await;
    cluster_role_bindings(store).await;
    deleting_a_user_cascades(store).await;
    deleting_a_service_account_cascades(store).await;
    refresh_tokens(store).await;
    token_keys(store).await;
    markers(store).await;
    server_secret(store).await;
}

/// A random tag for names, lowercase hex.
fn tag() -> String {
    let bytes = random_bytes::<4>().unwrap_or_else(|e| panic!("random: {e}"));
    hex::encode(bytes)
}

fn now() -> OffsetDateTime {
    // Whole seconds: the contract keeps timestamps at least to the second.
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn user_name(tag: &str, base: &str) -> UserName {
    format!("{base}-{tag}")
        .parse()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn namespace(tag: &str, base: &str) -> Namespace {
    format!("{base}-{tag}")
        .parse()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn service_account(ns: &Namespace, tag: &str, base: &str) -> ServiceAccountRef {
    let name = format!("{base}-{tag}")
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    ServiceAccountRef::new(ns.clone(), name)
}

fn user(name: &UserName) -> User {
    let hash = PasswordHasher::insecure_fast()
        .hash(&crate::Password::new("conformance"))
        .unwrap_or_else(|e| panic!("{e}"));
    User {
        name: name.clone(),
        password_hash: Some(hash),
        created: now(),
    }
}

fn token(owner: &Subject, name: &str, created: OffsetDateTime) -> (AccessToken, AccessTokenSecret) {
    let secret = AccessTokenSecret::generate().unwrap_or_else(|e| panic!("{e}"));
    let token = AccessToken {
        id: AccessTokenId::generate(),
        name: name.parse::<TokenName>().unwrap_or_else(|e| panic!("{e}")),
        owner: owner.clone(),
        hash: secret.hash(),
        created,
        expires: Some(created + Duration::days(30)),
        last_used: None,
    };
    (token, secret)
}

fn ok<T>(what: &str, r: Result<T, AuthStoreError>) -> T {
    r.unwrap_or_else(|e| panic!("{what}: unexpected error {e}"))
}

fn assert_not_found<T: std::fmt::Debug>(what: &str, r: Result<T, AuthStoreError>) {
    assert!(
        matches!(r, Err(AuthStoreError::NotFound(_))),
        "{what}: expected NotFound, got {r:?}"
    );
}

fn assert_exists<T: std::fmt::Debug>(what: &str, r: Result<T, AuthStoreError>) {
    assert!(
        matches!(r, Err(AuthStoreError::AlreadyExists(_))),
        "{what}: expected AlreadyExists, got {r:?}"
    );
}

/// Asserts that no record whose text mentions `tag` remains.
pub async fn assert_nothing_left(store: &dyn AuthStore, tag: &str) {
    let users = ok("list_users", store.list_users().await);
    assert!(
        !users.iter().any(|u| u.name.as_str().contains(tag)),
        "users left behind"
    );
    let sas = ok(
        "list_service_accounts",
        store.list_service_accounts(None).await,
    );
    assert!(
        !sas.iter().any(|s| s.account.to_string().contains(tag)),
        "service accounts left behind"
    );
    let tokens = ok("list_tokens", store.list_tokens(None).await);
    assert!(
        !tokens
            .iter()
            .any(|t| t.owner.to_string().contains(tag) || t.name.as_str().contains(tag)),
        "tokens left behind"
    );
    let rbs = ok("list_role_bindings", store.list_role_bindings(None).await);
    assert!(
        !rbs.iter()
            .any(|b| b.namespace.as_str().contains(tag) || b.subject.to_string().contains(tag)),
        "role bindings left behind"
    );
    let crbs = ok(
        "list_cluster_role_bindings",
        store.list_cluster_role_bindings().await,
    );
    assert!(
        !crbs.iter().any(|b| b.subject.to_string().contains(tag)),
        "cluster role bindings left behind"
    );
    let refresh = ok("list_refresh_tokens", store.list_refresh_tokens(None).await);
    assert!(
        !refresh.iter().any(|t| t.owner.to_string().contains(tag)),
        "refresh tokens left behind"
    );
}

/// Create, read, list, re-password and delete users.
pub async fn users(store: &dyn AuthStore) {
    let t = tag();
    let (a, b) = (user_name(&t, "a"), user_name(&t, "b"));
    // Created out of order: lists are sorted by name.
    ok("create b", store.create_user(user(&b)).await);
    let ua = user(&a);
    ok("create a", store.create_user(ua.clone()).await);
    assert_exists("duplicate user", store.create_user(user(&a)).await);

    assert_eq!(ok("get a", store.get_user(&a).await), Some(ua.clone()));
    assert_eq!(
        ok("get missing", store.get_user(&user_name(&t, "c")).await),
        None
    );
    let mine: Vec<UserName> = ok("list", store.list_users().await)
        .into_iter()
        .map(|u| u.name)
        .filter(|n| n.as_str().contains(&t))
        .collect();
    assert_eq!(mine, [a.clone(), b.clone()]);

    ok("clear password", store.set_password(&a, None).await);
    let got = ok("get a", store.get_user(&a).await).unwrap_or_else(|| panic!("a vanished"));
    assert_eq!(got.password_hash, None);
    assert_eq!(got.created, ua.created);
    ok(
        "set password",
        store.set_password(&a, ua.password_hash.clone()).await,
    );
    let got = ok("get a", store.get_user(&a).await).unwrap_or_else(|| panic!("a vanished"));
    assert_eq!(got.password_hash, ua.password_hash);
    assert_not_found(
        "set_password missing",
        store.set_password(&user_name(&t, "c"), None).await,
    );

    ok("delete a", store.delete_user(&a).await);
    ok("delete b", store.delete_user(&b).await);
    assert_not_found("delete again", store.delete_user(&a).await);
    assert_eq!(ok("get deleted", store.get_user(&a).await), None);
    assert_nothing_left(store, &t).await;
}

/// Create, read, list and delete service accounts.
pub async fn service_accounts(store: &dyn AuthStore) {
    let t = tag();
    let (ns1, ns2) = (namespace(&t, "one"), namespace(&t, "two"));
    let a = service_account(&ns1, &t, "a");
    let b = service_account(&ns1, &t, "b");
    let c = service_account(&ns2, &t, "a");
    for sa in [&b, &c, &a] {
        let record = ServiceAccount {
            account: sa.clone(),
            created: now(),
        };
        ok("create sa", store.create_service_account(record).await);
    }
    let dup = ServiceAccount {
        account: a.clone(),
        created: now(),
    };
    assert_exists("duplicate sa", store.create_service_account(dup).await);

    let got = ok("get", store.get_service_account(&a).await);
    assert_eq!(got.map(|s| s.account), Some(a.clone()));
    let missing = service_account(&ns2, &t, "b");
    assert_eq!(
        ok("get missing", store.get_service_account(&missing).await),
        None
    );

    let in_ns1: Vec<_> = ok("list ns1", store.list_service_accounts(Some(&ns1)).await)
        .into_iter()
        .map(|s| s.account)
        .collect();
    assert_eq!(in_ns1, [a.clone(), b.clone()]);
    let all: Vec<_> = ok("list all", store.list_service_accounts(None).await)
        .into_iter()
        .map(|s| s.account)
        .filter(|s| s.namespace.as_str().contains(&t))
        .collect();
    assert_eq!(all, [a.clone(), b.clone(), c.clone()]);

    for sa in [&a, &b, &c] {
        ok("delete sa", store.delete_service_account(sa).await);
    }
    assert_not_found("delete again", store.delete_service_account(&a).await);
    assert_nothing_left(store, &t).await;
}

/// Create, find, list, touch and delete access tokens.
pub async fn tokens(store: &dyn AuthStore) {
    let t = tag();
    let alice = Subject::User(user_name(&t, "alice"));
    let sa = Subject::ServiceAccount(service_account(&namespace(&t, "ns"), &t, "sa"));
    let created = now();
    let (t1, s1) = token(&alice, "first", created);
    let (t2, _) = token(&alice, "second", created + Duration::seconds(1));
    let (t3, _) = token(&sa, "first", created);
    // Inserted out of order: lists are sorted by creation time.
    for tok in [&t2, &t1, &t3] {
        ok("create token", store.create_token(tok.clone()).await);
    }
    let (mut same_name, _) = token(&alice, "first", created);
    assert_exists(
        "same name, same owner",
        store.create_token(same_name.clone()).await,
    );
    same_name.name = "third".parse().unwrap_or_else(|e| panic!("{e}"));
    same_name.hash = t1.hash;
    assert_exists("same hash", store.create_token(same_name.clone()).await);
    let (mut same_id, _) = token(&alice, "fourth", created);
    same_id.id = t1.id;
    assert_exists("same id", store.create_token(same_id).await);

    let found = ok("find", store.find_token_by_hash(&s1.hash()).await);
    assert_eq!(found, Some(t1.clone()));
    let unknown = AccessTokenSecret::generate().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ok(
            "find unknown",
            store.find_token_by_hash(&unknown.hash()).await
        ),
        None
    );

    let of_alice: Vec<_> = ok("list alice", store.list_tokens(Some(&alice)).await)
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(of_alice, [t1.id, t2.id]);
    let of_sa = ok("list sa", store.list_tokens(Some(&sa)).await);
    assert_eq!(of_sa, std::slice::from_ref(&t3));

    let used = created + Duration::minutes(5);
    ok("touch", store.touch_token(&t1.id, used).await);
    let found = ok("find touched", store.find_token_by_hash(&t1.hash).await);
    assert_eq!(found.and_then(|t| t.last_used), Some(used));
    assert_not_found(
        "touch missing",
        store.touch_token(&AccessTokenId::generate(), used).await,
    );

    for tok in [&t1, &t2, &t3] {
        ok("delete token", store.delete_token(&tok.id).await);
    }
    assert_not_found("delete again", store.delete_token(&t1.id).await);
    assert_eq!(
        ok("find deleted", store.find_token_by_hash(&t1.hash).await),
        None
    );
    assert_nothing_left(store, &t).await;
}

/// Add, list, remove role bindings; delete a namespace's bindings.
pub async fn role_bindings(store: &dyn AuthStore) {
    let t = tag();
    let (ns1, ns2) = (namespace(&t, "one"), namespace(&t, "two"));
    let alice = Subject::User(user_name(&t, "alice"));
    let sa = Subject::ServiceAccount(service_account(&ns2, &t, "puller"));
    let b = |ns: &Namespace, role, subject: &Subject| RoleBinding {
        namespace: ns.clone(),
        role,
        subject: subject.clone(),
    };
    // Every kind of subject survives the store: provider users and groups,
    // and the service accounts of a namespace.
    let subject = |s: &str| s.parse::<Subject>().expect("test subject");
    let bindings = [
        b(&ns1, Role::Viewer, &Subject::Group(Group::Anonymous)),
        b(&ns1, Role::Editor, &alice),
        b(&ns1, Role::Viewer, &sa),
        b(&ns1, Role::Viewer, &subject(&format!("group:ldap:ops-{t}"))),
        b(
            &ns1,
            Role::Editor,
            &subject(&format!("oidc:bob-{t}@example.com")),
        ),
        b(
            &ns1,
            Role::Viewer,
            &subject(&format!("user:carol-{t}@example.com")),
        ),
        b(
            &ns1,
            Role::Viewer,
            &subject(&format!("group:system:serviceaccounts:{ns2}")),
        ),
        b(&ns2, Role::Admin, &alice),
    ];
    for binding in bindings.iter().rev() {
        ok("add", store.add_role_binding(binding.clone()).await);
    }
    assert_exists(
        "duplicate",
        store.add_role_binding(bindings[1].clone()).await,
    );
    // Another role for the same subject is another binding.
    let viewer_too = b(&ns1, Role::Viewer, &alice);
    ok(
        "add viewer too",
        store.add_role_binding(viewer_too.clone()).await,
    );
    ok(
        "remove viewer too",
        store.remove_role_binding(&viewer_too).await,
    );
    assert_not_found("remove again", store.remove_role_binding(&viewer_too).await);

    let mut expected_ns1 = bindings[..7].to_vec();
    expected_ns1.sort();
    assert_eq!(
        ok("list ns1", store.list_role_bindings(Some(&ns1)).await),
        expected_ns1
    );
    let mut expected_all = bindings.to_vec();
    expected_all.sort();
    let all: Vec<_> = ok("list all", store.list_role_bindings(None).await)
        .into_iter()
        .filter(|b| b.namespace.as_str().contains(&t))
        .collect();
    assert_eq!(all, expected_all);

    assert_eq!(
        ok("delete ns1", store.delete_namespace_bindings(&ns1).await),
        7
    );
    assert_eq!(
        ok(
            "delete ns1 again",
            store.delete_namespace_bindings(&ns1).await
        ),
        0
    );
    assert_eq!(
        ok("list ns1", store.list_role_bindings(Some(&ns1)).await),
        []
    );
    ok("remove last", store.remove_role_binding(&bindings[7]).await);
    assert_nothing_left(store, &t).await;
}

/// Add, list and remove cluster role bindings.
pub async fn cluster_role_bindings(store: &dyn AuthStore) {
    let t = tag();
    let root = Subject::User(user_name(&t, "root"));
    let prom = Subject::ServiceAccount(service_account(&namespace(&t, "mon"), &t, "prom"));
    let admin = ClusterRoleBinding {
        role: ClusterRole::ClusterAdmin,
        subject: root.clone(),
    };
    let metrics = ClusterRoleBinding {
        role: ClusterRole::MetricsViewer,
        subject: prom,
    };
    ok(
        "add metrics",
        store.add_cluster_role_binding(metrics.clone()).await,
    );
    ok(
        "add admin",
        store.add_cluster_role_binding(admin.clone()).await,
    );
    assert_exists(
        "duplicate",
        store.add_cluster_role_binding(admin.clone()).await,
    );
    let mine: Vec<_> = ok("list", store.list_cluster_role_bindings().await)
        .into_iter()
        .filter(|b| b.subject.to_string().contains(&t))
        .collect();
    let mut expected = vec![admin.clone(), metrics.clone()];
    expected.sort();
    assert_eq!(mine, expected);
    ok(
        "remove admin",
        store.remove_cluster_role_binding(&admin).await,
    );
    assert_not_found(
        "remove again",
        store.remove_cluster_role_binding(&admin).await,
    );
    ok(
        "remove metrics",
        store.remove_cluster_role_binding(&metrics).await,
    );
    assert_nothing_left(store, &t).await;
}

/// Deleting a user deletes its tokens and bindings, and nobody else's.
pub async fn deleting_a_user_cascades(store: &dyn AuthStore) {
    let t = tag();
    let (alice, bob) = (user_name(&t, "alice"), user_name(&t, "bob"));
    let ns = namespace(&t, "ns");
    ok("create alice", store.create_user(user(&alice)).await);
    ok("create bob", store.create_user(user(&bob)).await);
    for who in [&alice, &bob] {
        let subject = Subject::User(who.clone());
        ok(
            "token",
            store.create_token(token(&subject, "t", now()).0).await,
        );
        let rb = RoleBinding {
            namespace: ns.clone(),
            role: Role::Editor,
            subject: subject.clone(),
        };
        ok("binding", store.add_role_binding(rb).await);
        let crb = ClusterRoleBinding {
            role: ClusterRole::MetricsViewer,
            subject,
        };
        ok("cluster binding", store.add_cluster_role_binding(crb).await);
    }
    ok("delete alice", store.delete_user(&alice).await);
    let alice_s = Subject::User(alice.clone());
    assert_eq!(ok("tokens", store.list_tokens(Some(&alice_s)).await), []);
    let rbs = ok("bindings", store.list_role_bindings(Some(&ns)).await);
    assert!(
        rbs.iter().all(|b| b.subject != alice_s),
        "alice's binding survived"
    );
    assert_eq!(rbs.len(), 1, "bob's binding must survive");
    let crbs = ok("cluster bindings", store.list_cluster_role_bindings().await);
    assert!(
        crbs.iter().all(|b| b.subject != alice_s),
        "alice's cluster binding survived"
    );
    let bob_s = Subject::User(bob.clone());
    assert_eq!(
        ok("bob tokens", store.list_tokens(Some(&bob_s)).await).len(),
        1
    );
    assert!(crbs.iter().any(|b| b.subject == bob_s));

    ok("delete bob", store.delete_user(&bob).await);
    assert_nothing_left(store, &t).await;
}

/// Deleting a service account deletes its tokens and bindings (in any
/// namespace), and nobody else's.
pub async fn deleting_a_service_account_cascades(store: &dyn AuthStore) {
    let t = tag();
    let (home, other) = (namespace(&t, "home"), namespace(&t, "other"));
    let sa = service_account(&home, &t, "builder");
    let keep = service_account(&home, &t, "keeper");
    for account in [&sa, &keep] {
        let record = ServiceAccount {
            account: account.clone(),
            created: now(),
        };
        ok("create sa", store.create_service_account(record).await);
        let subject = Subject::ServiceAccount(account.clone());
        ok(
            "token",
            store.create_token(token(&subject, "pull", now()).0).await,
        );
        // Cross-namespace pull binding.
        let rb = RoleBinding {
            namespace: other.clone(),
            role: Role::Viewer,
            subject,
        };
        ok("binding", store.add_role_binding(rb).await);
    }
    ok("delete sa", store.delete_service_account(&sa).await);
    let sa_s = Subject::ServiceAccount(sa.clone());
    assert_eq!(ok("tokens", store.list_tokens(Some(&sa_s)).await), []);
    let rbs = ok("bindings", store.list_role_bindings(Some(&other)).await);
    assert_eq!(rbs.len(), 1);
    assert_eq!(rbs[0].subject, Subject::ServiceAccount(keep.clone()));
    let keep_s = Subject::ServiceAccount(keep.clone());
    assert_eq!(
        ok("keeper tokens", store.list_tokens(Some(&keep_s)).await).len(),
        1
    );

    ok("delete keeper", store.delete_service_account(&keep).await);
    assert_nothing_left(store, &t).await;
}

/// A marker is absent until set, then stays set; setting it again is fine.
pub async fn markers(store: &dyn AuthStore) {
    let name = format!("conformance-{}", tag());
    assert!(!ok("absent", store.marker_exists(&name).await));
    ok("set", store.set_marker(&name).await);
    assert!(ok("present", store.marker_exists(&name).await));
    ok("set again", store.set_marker(&name).await);
    assert!(ok("still present", store.marker_exists(&name).await));
    assert!(!ok(
        "another",
        store.marker_exists(&format!("{name}-other")).await
    ));
}

/// The first call stores its candidate; later calls, with any candidate,
/// return the stored secret.
pub async fn server_secret(store: &dyn AuthStore) {
    let first = ok("first", store.server_secret([7; 32]).await);
    let again = ok("again", store.server_secret([9; 32]).await);
    assert_eq!(first, again, "the server secret changed");
    assert_ne!(again, [9; 32], "a later candidate replaced the secret");
}
