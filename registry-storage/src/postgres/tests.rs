//! Connecting: bad URLs, unreachable servers, timeouts and TLS (the
//! conformance suites are in `tests/postgres_*.rs`).

use super::*;

#[tokio::test]
async fn a_bad_url_says_so() {
    let e = PgStore::connect("mysql://nope")
        .await
        .expect_err("not postgres");
    assert!(e.to_string().contains("invalid database URL"), "{e}");
}

#[tokio::test]
async fn an_unreachable_database_is_an_error_not_a_hang() {
    // Port 1 on loopback refuses at once; the acquire timeout bounds
    // the wait whatever happens.
    let settings = PgSettings {
        acquire_timeout: Duration::from_secs(2),
        ..PgSettings::default()
    };
    let started = std::time::Instant::now();
    let e = PgStore::connect_with("postgres://registry@127.0.0.1:1/registry", settings)
        .await
        .expect_err("nothing listens there");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(e, crate::StorageError::Backend { .. }), "{e:?}");
}

/// A store on a fresh database of the test server, and a way to drop
/// it; `None` (saying so) without `REGISTRY_TEST_DATABASE_URL`.
async fn test_store(settings: PgSettings) -> Option<(PgStore, impl AsyncFnOnce())> {
    test_store_with(settings, |options| options).await
}

/// [`test_store`] whose connection options pass through `adjust`.
async fn test_store_with(
    settings: PgSettings,
    adjust: impl FnOnce(PgConnectOptions) -> PgConnectOptions,
) -> Option<(PgStore, impl AsyncFnOnce())> {
    use sqlx::{ConnectOptions, Connection};
    let Some(url) = std::env::var("REGISTRY_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("skipped: REGISTRY_TEST_DATABASE_URL is not set");
        return None;
    };
    let admin = PgConnectOptions::from_str(&url).expect("test URL");
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    let mut conn = admin.connect().await.expect("test server");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("create");
    conn.close().await.expect("close");
    let store = PgStore::connect_options(adjust(admin.clone().database(&name)), settings)
        .await
        .expect("connect");
    let pool = store.pool.clone();
    let drop_it = async move || {
        pool.close().await;
        let mut conn = admin.connect().await.expect("test server");
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut conn)
            .await
            .expect("drop");
    };
    Some((store, drop_it))
}

#[tokio::test]
async fn statements_and_calls_are_bounded() {
    let settings = PgSettings {
        statement_timeout: Duration::from_millis(300),
        ..PgSettings::default()
    };
    let Some((mut store, drop_it)) = test_store(settings).await else {
        return;
    };
    let shown: String = sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(&store.pool)
        .await
        .expect("show");
    assert_eq!(shown, "300ms");
    // The server cancels a statement past the timeout ...
    let e = sqlx::query("SELECT pg_sleep(3)")
        .execute(&store.pool)
        .await
        .expect_err("cancelled");
    assert!(e.to_string().contains("statement timeout"), "{e}");
    // ... and a call the server never answers ends on the client's side.
    store.deadline = Duration::from_millis(200);
    let started = std::time::Instant::now();
    let e = store
        .bounded(std::future::pending::<Result<(), error::Error>>())
        .await
        .expect_err("deadline");
    assert!(matches!(e, error::Error::TimedOut(_)), "{e:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    drop_it().await;
}

/// TLS to the database with rustls: verified against the URL's
/// `sslrootcert` (the test server's CA from `.ci/services/postgres.sh`),
/// and refused when the certificate does not verify.
#[tokio::test]
async fn tls_to_the_database_is_verified() {
    let Ok(ca) = std::env::var("REGISTRY_TEST_DATABASE_CA_FILE") else {
        eprintln!("skipped: REGISTRY_TEST_DATABASE_CA_FILE is not set");
        return;
    };
    let verified = |o: PgConnectOptions| {
        o.ssl_mode(sqlx::postgres::PgSslMode::VerifyFull)
            .ssl_root_cert(ca.as_str())
    };
    let Some((store, drop_it)) = test_store_with(PgSettings::default(), verified).await else {
        return;
    };
    let (ssl, version): (bool, String) =
        sqlx::query_as("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(&store.pool)
            .await
            .expect("pg_stat_ssl");
    assert!(ssl, "the connection is encrypted");
    assert!(version.starts_with("TLS"), "{version}");
    let ns: Namespace = "tls".parse().unwrap();
    store.create_namespace(&ns).await.expect("a write over TLS");
    drop_it().await;

    // The system's roots do not know the test CA: verify-full refuses.
    let url = std::env::var("REGISTRY_TEST_DATABASE_URL").expect("set with the CA");
    let unverified = format!("{url}?sslmode=verify-full");
    let settings = PgSettings {
        acquire_timeout: Duration::from_secs(3),
        ..PgSettings::default()
    };
    let e = PgStore::connect_with(&unverified, settings)
        .await
        .expect_err("an unknown CA");
    assert!(matches!(e, crate::StorageError::Backend { .. }), "{e:?}");
}
