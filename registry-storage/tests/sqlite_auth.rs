//! The `AuthStore` conformance suite of registry-auth against
//! [`SqliteMetadataStore`], on a file in a temporary directory and in memory;
//! persistence across reopening; and that no secret reaches the database
//! files in clear.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use registry_auth::testing;
use registry_auth::{
    AccessToken, AuthStore, ClusterRole, ClusterRoleBinding, Password, PasswordHasher, Role,
    RoleBinding, ServiceAccount, ServiceAccountRef, Subject, User, UserName,
};
use registry_core::Namespace;
use registry_storage::sqlite::SqliteMetadataStore;
use registry_storage::MetadataStore;
use time::OffsetDateTime;

/// A store on a fresh file; the directory lives as long as the store is used.
async fn store() -> (Arc<SqliteMetadataStore>, tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("registry.db");
    let store = SqliteMetadataStore::open(&path)
        .await
        .expect("open sqlite store");
    (Arc::new(store), dir, path)
}

/// One `#[tokio::test]` per suite function, each on a fresh database file.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $name() {
            let (store, _dir, _) = store().await;
            testing::$name(store.as_ref()).await;
            store.close().await;
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

/// Every check one after another on one file: they must not disturb each other.
#[tokio::test]
async fn whole_suite_on_one_file() {
    let (store, _dir, _) = store().await;
    testing::run_all(store.as_ref()).await;
    store.close().await;
}

#[tokio::test]
async fn whole_suite_in_memory() {
    let store = SqliteMetadataStore::open_in_memory()
        .await
        .expect("open in memory");
    testing::run_all(&store).await;
    store.close().await;
}

/// Checks use unique names, so several suites may share a store at once:
/// this exercises the writer connection and the read pool concurrently.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_suites_on_one_file() {
    let (store, _dir, _) = store().await;
    let runs: Vec<_> = (0..4)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { testing::run_all(store.as_ref()).await })
        })
        .collect();
    for run in runs {
        run.await.expect("suite task");
    }
    store.close().await;
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

/// One `Arc<SqliteMetadataStore>` is both stores, over one database.
#[tokio::test]
async fn one_store_serves_metadata_and_auth() {
    let (store, _dir, _) = store().await;
    let metadata: Arc<dyn MetadataStore> = store.clone();
    let auth: Arc<dyn AuthStore> = store.clone();
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
    store.close().await;
}

#[tokio::test]
async fn records_survive_reopening() {
    let (store, _dir, path) = store().await;
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
    drop(store);

    let store = SqliteMetadataStore::open(&path).await.expect("reopen");
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

    // The cascade works on the reopened file too.
    store
        .delete_service_account(&sa.account)
        .await
        .expect("delete sa");
    assert_eq!(store.list_tokens(None).await.expect("tokens"), []);
    assert_eq!(store.list_role_bindings(None).await.expect("bindings"), []);
    store.close().await;
}

/// The database file and its WAL, as they are on disk.
fn raw_files(db: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(db).expect("read db");
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    if let Ok(more) = std::fs::read(PathBuf::from(wal)) {
        bytes.extend(more);
    }
    bytes
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn no_secret_is_stored_in_clear() {
    let (store, _dir, path) = store().await;
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
    // The password is settable later too.
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
    let token_text = secret.expose();
    // Without the prefix too: the random part alone is the secret.
    let token_body = &token_text[4..];
    let refresh_text = refresh_secret.expose();
    let refresh_body = &refresh_text[4..];
    let check = |bytes: &[u8], when: &str| {
        // The files do hold the records (so we read the right files) ...
        assert!(contains(bytes, b"laptop"), "{when}: token record missing");
        assert!(
            contains(bytes, token.hash.as_bytes()),
            "{when}: token hash missing"
        );
        assert!(
            contains(bytes, refresh.hash.as_bytes()),
            "{when}: refresh token hash missing"
        );
        // ... and never the secrets.
        for secret in [
            token_text,
            token_body,
            password,
            second,
            refresh_text,
            refresh_body,
        ] {
            assert!(
                !contains(bytes, secret.as_bytes()),
                "{when}: a secret is stored in clear"
            );
        }
    };
    check(&raw_files(&path), "while open");
    store.close().await;
    check(&raw_files(&path), "after close");
}
