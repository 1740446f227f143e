//! A fresh PostgreSQL database per test, on the server that
//! `REGISTRY_TEST_DATABASE_URL` names (`.ci/services/postgres.sh` runs one):
//! `CREATE DATABASE t_<random>` through that URL, dropped again by
//! [`TestDb::finish`], so tests run in parallel without seeing each other.
//! A test whose database is left behind by a panic leaves a database of the
//! throwaway cluster, nothing else.

use std::str::FromStr;
use std::sync::Arc;

use registry_storage::postgres::{PgSettings, PgStore};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

/// The variable naming the test server.
pub const VAR: &str = "REGISTRY_TEST_DATABASE_URL";

/// A database made for one test, and a store on it.
pub struct TestDb {
    admin: PgConnectOptions,
    name: String,
    /// The store, migrated.
    pub store: Arc<PgStore>,
}

/// The test server's URL, or `None` after saying that `test` is skipped.
pub fn url(test: &str) -> Option<String> {
    match std::env::var(VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "skipped: {VAR} is not set ({test}; \
                 eval \"$(bash .ci/services/postgres.sh start DIR)\" runs a test server)"
            );
            None
        }
    }
}

impl TestDb {
    /// A new database and a store on it, or `None` (and a message) when
    /// the variable is unset.
    pub async fn create(test: &str) -> Option<TestDb> {
        let url = url(test)?;
        let admin = PgConnectOptions::from_str(&url).expect("REGISTRY_TEST_DATABASE_URL parses");
        let name = format!("t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = admin.connect().await.expect("connect to the test server");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        conn.close().await.expect("close");
        let store = PgStore::connect_options(admin.clone().database(&name), PgSettings::default())
            .await
            .expect("connect to the test database");
        Some(TestDb {
            admin,
            name,
            store: Arc::new(store),
        })
    }

    /// Options for another store on the same database (a second replica).
    pub fn options(&self) -> PgConnectOptions {
        self.admin.clone().database(&self.name)
    }

    /// Closes the store and drops the database.
    pub async fn finish(self) {
        self.store.close().await;
        let mut conn = self
            .admin
            .connect()
            .await
            .expect("connect to the test server");
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut conn)
        .await
        .expect("drop the test database");
        conn.close().await.expect("close");
    }
}
