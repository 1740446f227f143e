//! The `AuthStore` conformance suite of registry-auth against [`PgStore`],
//! each test on a fresh database of the server `REGISTRY_TEST_DATABASE_URL`
//! names (skipped, saying so, when it is unset); persistence across
//! reconnecting; that no secret reaches the database in clear; and the
//! `admin` bootstrap of two replicas starting at once.
//!
//!     eval "$(bash .ci/services/postgres.sh start /tmp/pg)"
//!     cargo test -p registry-storage --test postgres_auth
#![cfg(feature = "postgres")]

mod postgres_common;

use std::sync::Arc;

use postgres_common::TestDb;
use registry_auth::testing;
use registry_auth::{
    ensure_admin, AccessToken, AuthStore, BootstrapOutcome, ClusterRole, ClusterRoleBinding,
    Password, PasswordHasher, Role, RoleBinding, ServiceAccount, ServiceAccountRef, Subject, User,
    UserName,
};
use registry_core::Namespace;
use registry_storage::postgres::{PgSettings, PgStore};
use registry_storage::MetadataStore;
use time::OffsetDateTime;

/// One `#[tokio::test]` per suite function, each on a fresh database.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let Some(db) = TestDb::create(stringify!($name)).await else { return };
            testing::$name(db.store.as_ref()).await;
            db.finish().await;
        }
    )*};
}

suite!(
    users,
    service_accounts,
    tokens,
    role_bindings,
    cluster_role_bindings,
    deleting_a_user_cascades,
    deleting_a_service_account_cascades,
    refresh_tokens,
    token_keys,
    markers,
    server_secret,
);

/// Every check one after another on one database: they must not disturb each other.
#[tokio::test]
async fn whole_suite_on_one_database() {
    let Some(db) = TestDb::create("whole_suite_on_one_database").await else {
        return;
    };
    testing::run_all(db.store.as_ref()).await;
    db.finish().await;
}

/// Checks use unique names, so several suites may share a database at once,
/// here through two stores (two replicas' pools).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_suites_on_two_stores() {
    let Some(db) = TestDb::create("concurrent_suites_on_two_stores").await else {
        return;
    };
    let other = Arc::new(
        PgStore::connect_options(db.options(), PgSettings::default())
            .await
            .expect("second store"),
    );
    let runs: Vec<_> = (0..4)
        .map(|i| {
            let store = if i % 2 == 0 {
                db.store.clone()
            } else {
                other.clone()
            };
            tokio::spawn(async move { testing::run_all(store.as_ref()).await })
        })
        .collect();
    for run in runs {
        run.await.expect("suite task");
    }
    other.close().await;
    db.finish().await;
}

fn parse<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().expect("valid test value")
}

/// Whole seconds, as the conformance suite uses.
fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("zero nanoseconds")
}

/// One `Arc<PgStore>` is both stores, over one database.
#[tokio::test]
async fn one_store_serves_metadata_and_auth() {
    let Some(db) = TestDb::create("one_store_serves_metadata_and_auth").await else {
        return;
    };
    let metadata: Arc<dyn MetadataStore> = db.store.clone();
    let auth: Arc<dyn AuthStore> = db.store.clone();
    let team: Namespace = parse("team");
    metadata.create_namespace(&team).await.expect("namespace");
    let binding = RoleBinding {
        namespace: team.clone(),
        role: Role::Viewer,
        subject: parse("system:anonymous"),
    };
    auth.add_role_binding(binding.clone()).await.expect("bind");
    assert!(metadata.namespace_exists(&team).await.expect("exists"));
    assert_eq!(
        auth.list_role_bindings(Some(&team)).await.expect("list"),
        [binding]
    );
    // Deleting the namespace's metadata leaves its bindings to the caller,
    // as the AuthStore contract says.
    metadata.delete_namespace(&team).await.expect("delete ns");
    assert_eq!(
        auth.delete_namespace_bindings(&team).await.expect("unbind"),
        1
    );
    db.finish().await;
}

#[tokio::test]
async fn records_survive_reconnecting() {
    let Some(db) = TestDb::create("records_survive_reconnecting").await else {
        return;
    };
    let store = &db.store;
    let hasher = PasswordHasher::insecure_fast();
    let alice: UserName = parse("alice");
    let user = User {
        name: alice.clone(),
        password_hash: Some(hasher.hash(&Password::new("pw")).expect("hash")),
        created: now(),
    };
    let sa = ServiceAccount {
        account: ServiceAccountRef::new(parse("team"), parse("builder")),
        created: now(),
    };
    let sa_subject = Subject::ServiceAccount(sa.account.clone());
    let (mut token, secret) = AccessToken::generate(
        sa_subject.clone(),
        parse("pull"),
        Some(now() + time::Duration::days(1)),
    )
    .expect("token");
    let binding = RoleBinding {
        namespace: parse("other"),
        role: Role::Viewer,
        subject: sa_subject.clone(),
    };
    let cluster = ClusterRoleBinding {
        role: ClusterRole::ClusterAdmin,
        subject: Subject::User(alice.clone()),
    };
    store.create_user(user.clone()).await.expect("user");
    store
        .create_service_account(sa.clone())
        .await
        .expect("service account");
    store.create_token(token.clone()).await.expect("token");
    let used = now();
    store.touch_token(&token.id, used).await.expect("touch");
    token.last_used = Some(used);
    store
        .add_role_binding(binding.clone())
        .await
        .expect("binding");
    store
        .add_cluster_role_binding(cluster.clone())
        .await
        .expect("cluster binding");
    store.close().await;

    let store = PgStore::connect_options(db.options(), PgSettings::default())
        .await
        .expect("reconnect");
    assert_eq!(store.get_user(&alice).await.expect("get user"), Some(user));
    assert_eq!(
        store
            .get_service_account(&sa.account)
            .await
            .expect("get sa"),
        Some(sa.clone())
    );
    assert_eq!(
        store
            .find_token_by_hash(&secret.hash())
            .await
            .expect("find token"),
        Some(token.clone())
    );
    assert_eq!(
        store.list_role_bindings(None).await.expect("bindings"),
        [binding]
    );
    assert_eq!(
        store
            .list_cluster_role_bindings()
            .await
            .expect("cluster bindings"),
        [cluster]
    );
    // The cascade works on the reconnected store too.
    store
        .delete_service_account(&sa.account)
        .await
        .expect("delete sa");
    assert_eq!(store.list_tokens(None).await.expect("tokens"), []);
    assert_eq!(store.list_role_bindings(None).await.expect("bindings"), []);
    store.close().await;
    db.finish().await;
}

/// Every row of every table of the database, as text (`bytea` as hex).
async fn dump(db: &TestDb) -> String {
    use sqlx::{ConnectOptions, Connection};
    let mut conn = db.options().connect().await.expect("connect");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&mut conn)
    .await
    .expect("tables");
    assert!(tables.iter().any(|t| t == "access_tokens"), "{tables:?}");
    let mut all = String::new();
    for table in tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT t::text FROM {table} t"))
            .fetch_all(&mut conn)
            .await
            .expect("rows");
        for row in rows {
            all.push_str(&row);
            all.push('\n');
        }
    }
    conn.close().await.expect("close");
    all
}

#[tokio::test]
async fn no_secret_is_stored_in_clear() {
    let Some(db) = TestDb::create("no_secret_is_stored_in_clear").await else {
        return;
    };
    let store = &db.store;
    let password = "correct-horse-battery-staple-7f3a9c";
    let user = User {
        name: parse("carol"),
        password_hash: Some(
            PasswordHasher::insecure_fast()
                .hash(&Password::new(password))
                .expect("hash"),
        ),
        created: now(),
    };
    store.create_user(user).await.expect("user");
    let (token, secret) =
        AccessToken::generate(parse("carol"), parse("laptop"), None).expect("token");
    store.create_token(token.clone()).await.expect("token");
    let second = "another-secret-password-b81e44";
    let hash = PasswordHasher::insecure_fast()
        .hash(&Password::new(second))
        .expect("hash");
    store
        .set_password(&parse("carol"), Some(hash))
        .await
        .expect("set password");
    let carol = registry_auth::Identity::user(parse("carol"));
    let (refresh, refresh_secret) =
        registry_auth::RefreshToken::generate(&carol, parse("docker"), None, now())
            .expect("refresh token");
    store
        .create_refresh_token(refresh.clone())
        .await
        .expect("refresh token");

    let stored = dump(&db).await;
    // The dump does hold the records (so we read the right tables) ...
    assert!(stored.contains("laptop"), "token record missing");
    assert!(stored.contains(&hex::encode(token.hash.as_bytes())));
    assert!(stored.contains(&hex::encode(refresh.hash.as_bytes())));
    // ... and never the secrets, with or without their prefix.
    let token_text = secret.expose();
    let refresh_text = refresh_secret.expose();
    for secret in [
        token_text,
        &token_text[4..],
        password,
        second,
        refresh_text,
        &refresh_text[4..],
    ] {
        assert!(!stored.contains(secret), "a secret is stored in clear");
    }
    db.finish().await;
}

/// Two replicas starting at once on one database bootstrap `admin` once:
/// one creates it, the other finds it (or the marker), and a later start
/// after `admin` was deleted does not bring it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_bootstrap_admin_once() {
    let Some(db) = TestDb::create("two_replicas_bootstrap_admin_once").await else {
        return;
    };
    let other = Arc::new(
        PgStore::connect_options(db.options(), PgSettings::default())
            .await
            .expect("second store"),
    );
    let hasher = PasswordHasher::insecure_fast();
    let starts: Vec<_> = [db.store.clone(), other.clone()]
        .into_iter()
        .map(|store| {
            let hasher = hasher.clone();
            tokio::spawn(async move {
                ensure_admin(store.as_ref(), &hasher, Some(Password::new("first")))
                    .await
                    .expect("bootstrap")
            })
        })
        .collect();
    let mut created = 0;
    for start in starts {
        if let BootstrapOutcome::Created { .. } = start.await.expect("task") {
            created += 1;
        }
    }
    assert_eq!(created, 1, "exactly one replica creates admin");
    let admin: UserName = parse("admin");
    let user = db.store.get_user(&admin).await.unwrap().expect("admin");
    assert!(hasher.verify(
        &Password::new("first"),
        user.password_hash.as_ref().unwrap()
    ));
    let admins: Vec<_> = db
        .store
        .list_cluster_role_bindings()
        .await
        .unwrap()
        .into_iter()
        .filter(|b| b.role == ClusterRole::ClusterAdmin)
        .collect();
    assert_eq!(admins.len(), 1);

    other.delete_user(&admin).await.expect("delete admin");
    let again = ensure_admin(db.store.as_ref(), &hasher, Some(Password::new("first")))
        .await
        .expect("bootstrap");
    assert!(matches!(again, BootstrapOutcome::AlreadyBootstrapped));
    assert_eq!(db.store.get_user(&admin).await.unwrap(), None);
    other.close().await;
    db.finish().await;
}
