//! A fresh PostgreSQL database per test on the server that
//! `REGISTRY_TEST_DATABASE_URL` names (`.ci/services/postgres.sh` runs one).
#![allow(dead_code)]

use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

pub const VAR: &str = "REGISTRY_TEST_DATABASE_URL";

/// Runs SQL on the test server's own database (to create and drop others).
pub async fn admin_sql(server: &PgConnectOptions, sql: &str) {
    let mut conn = server.connect().await.expect("connect to the test server");
    sqlx::query(sql).execute(&mut conn).await.expect(sql);
    conn.close().await.expect("close");
}

/// A fresh database on the test server: its URL, the server's options and
/// its name; `None` (saying so) when the variable is unset.
pub async fn test_database(test: &str) -> Option<(String, PgConnectOptions, String)> {
    let url = match std::env::var(VAR) {
        Ok(url) if !url.is_empty() => url,
        _ => {
            eprintln!(
                "skipped: {VAR} is not set ({test}; \
                 eval \"$(bash .ci/services/postgres.sh start DIR)\" runs a test server)"
            );
            return None;
        }
    };
    let server = PgConnectOptions::from_str(&url).expect("the URL parses");
    let name = format!("t_{}", uuid::Uuid::new_v4().simple());
    admin_sql(&server, &format!("CREATE DATABASE {name}")).await;
    // The test database's URL: the server's, with the database replaced.
    let (base, query) = url
        .split_once('?')
        .map_or((url.as_str(), None), |(b, q)| (b, Some(q)));
    let (host_part, _) = base.rsplit_once('/').expect("a URL with a database");
    let database_url = match query {
        Some(q) => format!("{host_part}/{name}?{q}"),
        None => format!("{host_part}/{name}"),
    };
    Some((database_url, server, name))
}
