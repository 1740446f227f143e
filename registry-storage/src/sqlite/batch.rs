//! Several statements sent to a connection in one round trip.
//!
//! Every statement on a sqlx SQLite connection is a round trip to the
//! connection's worker thread, and on the single write connection each one
//! keeps every other writer waiting (see `connections`): a blob link was 8
//! of them and a manifest put 16. A [`Batch`] is one SQL text of several
//! statements sent as one query, with the values of their `?` parameters
//! in order: sqlx binds a statement's anonymous parameters from where the
//! previous statement's stopped. (Numbered parameters cannot be shared
//! across statements: sqlx stops binding a statement at the first number
//! past the values it counted, and leaves the rest `NULL`.) The rows come
//! back statement by statement.
//!
//! A statement that fails stops the batch: the statements after it do not
//! run, and the transaction it was part of is rolled back as any failed
//! transaction is (see `connections`).
//!
//! A guard ([`Batch::push_guard`]) is a statement that fails unless a
//! condition holds, so that a write can be sent with the reads it depends
//! on when those reads can be checked in SQL: the whole transaction is one
//! round trip when the guard holds. When it fails, only its own statement
//! is undone ([`Batch::run_guarded`]): the caller still has the
//! transaction and the reads' rows, checks them in Rust, and writes in a
//! second round trip or gives up.

use futures::TryStreamExt;
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteConnection, SqliteRow};
use sqlx::{Arguments, Either, Encode, Executor, Type};

/// Statements and the values of their parameters, sent in one round trip.
#[derive(Default)]
pub(super) struct Batch<'a> {
    sql: String,
    args: SqliteArguments<'a>,
    statements: usize,
    /// `?`s of the statements pushed, and values bound.
    params: usize,
    bound: usize,
    /// Index of the guard, if one was pushed.
    guard: Option<usize>,
}

/// How far a batch ran ([`Batch::run_guarded`]).
pub(super) enum Ran {
    /// Every statement: the rows of each.
    All(Vec<Vec<SqliteRow>>),
    /// Up to its guard, which failed: the rows of the statements before it
    /// (those from the guard on are empty). A transaction the batch is part
    /// of is still open, with those statements' changes: the failed
    /// statement undid only its own (SQLite's `ABORT`).
    Stopped(Vec<Vec<SqliteRow>>),
}

impl<'a> Batch<'a> {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Appends a statement (no trailing `;`, no `?` but its parameters');
    /// bind their values next, in order. Returns the statement's index
    /// among the batch's, which is where its rows come back.
    pub(super) fn push(&mut self, statement: impl AsRef<str>) -> usize {
        let statement = statement.as_ref();
        if self.statements > 0 {
            self.sql.push_str(";\n");
        }
        self.sql.push_str(statement);
        self.params += statement.matches('?').count();
        self.statements += 1;
        self.statements - 1
    }

    /// Binds the next parameter of the statements pushed.
    pub(super) fn bind<T>(&mut self, value: T) -> sqlx::Result<&mut Self>
    where
        T: 'a + Encode<'a, Sqlite> + Type<Sqlite>,
    {
        self.args.add(value).map_err(sqlx::Error::Encode)?;
        self.bound += 1;
        Ok(self)
    }

    /// Puts a statement without parameters before the others (a `BEGIN`):
    /// every index [`push`](Self::push) returned moves up by one.
    pub(super) fn push_front(&mut self, statement: &str) {
        debug_assert!(!statement.contains('?'));
        if self.statements > 0 {
            self.sql.insert_str(0, ";\n");
        }
        self.sql.insert_str(0, statement);
        self.statements += 1;
        if let Some(guard) = &mut self.guard {
            *guard += 1;
        }
    }

    /// Appends a guard: a statement that stops the batch (it fails, so
    /// nothing after it runs and the transaction is rolled back) unless
    /// `condition` holds. `condition` is an SQL expression; bind its `?`s
    /// next, in order. See [`stopped_by_guard`].
    pub(super) fn push_guard(&mut self, condition: &str) {
        debug_assert!(self.guard.is_none(), "one guard per batch");
        let at = self.push(format!(
            "INSERT INTO temp.batch_guard (id, ok) VALUES (1, {condition}) \
             ON CONFLICT (id) DO UPDATE SET ok = excluded.ok"
        ));
        self.guard = Some(at);
    }

    /// Runs the statements in order on `conn`; the rows of each, by index.
    /// Fails before sending anything if the values bound do not match the
    /// parameters (SQLite would take a missing one as `NULL`). A guard that
    /// fails is an error like any other here.
    pub(super) async fn run(
        self,
        conn: &mut SqliteConnection,
    ) -> sqlx::Result<Vec<Vec<SqliteRow>>> {
        match self.run_guarded(conn).await? {
            Ran::All(rows) => Ok(rows),
            Ran::Stopped(_) => Err(sqlx::Error::Protocol(
                "a batch was stopped by its guard".into(),
            )),
        }
    }

    /// Runs the statements like [`run`](Self::run), except that a failing
    /// guard (see [`push_guard`](Self::push_guard)) is not an error: the
    /// batch stops there and says so, with the rows so far.
    pub(super) async fn run_guarded(self, conn: &mut SqliteConnection) -> sqlx::Result<Ran> {
        if self.bound != self.params {
            return Err(sqlx::Error::Protocol(format!(
                "a batch of {} parameters was given {} values",
                self.params, self.bound
            )));
        }
        let mut rows: Vec<Vec<SqliteRow>> = (0..self.statements).map(|_| Vec::new()).collect();
        if self.statements == 0 {
            return Ok(Ran::All(rows));
        }
        let mut statement = 0;
        let mut steps = conn.fetch_many(sqlx::query_with(&self.sql, self.args));
        loop {
            let step = match steps.try_next().await {
                Ok(Some(step)) => step,
                Ok(None) => break,
                // The guard's own failure, and no other statement's.
                Err(e) if Some(statement) == self.guard && stopped_by_guard(&e) => {
                    return Ok(Ran::Stopped(rows));
                }
                Err(e) => return Err(e),
            };
            match step {
                // The end of a statement.
                Either::Left(_) => statement += 1,
                Either::Right(row) => match rows.get_mut(statement) {
                    Some(of_statement) => of_statement.push(row),
                    None => {
                        return Err(sqlx::Error::Protocol(
                            "a batch returned rows past its last statement".into(),
                        ))
                    }
                },
            }
        }
        if statement != self.statements {
            return Err(sqlx::Error::Protocol(format!(
                "a batch of {} statements ran {statement}",
                self.statements
            )));
        }
        Ok(Ran::All(rows))
    }
}

/// Creates the table of [`Batch::push_guard`] on a connection: a row
/// whose `CHECK` fails when a guard's condition does not hold. `TEMP`: the
/// connection's own, never written to the database file. Run once on every
/// connection that runs guarded batches.
pub(super) const GUARD_TABLE: &str = "CREATE TEMP TABLE IF NOT EXISTS batch_guard (\
     id INTEGER PRIMARY KEY CHECK (id = 1), \
     ok INTEGER NOT NULL CONSTRAINT batch_guard_failed CHECK (ok))";

/// Whether a statement failed on a guard's `CHECK` (see
/// [`Batch::push_guard`]).
fn stopped_by_guard(e: &sqlx::Error) -> bool {
    e.as_database_error().is_some_and(|db| {
        db.kind() == sqlx::error::ErrorKind::CheckViolation
            && db.message().contains("batch_guard_failed")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqliteConnectOptions;
    use sqlx::{ConnectOptions, Row};

    async fn conn() -> SqliteConnection {
        let mut conn = SqliteConnectOptions::new()
            .in_memory(true)
            .connect()
            .await
            .expect("connect");
        conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)")
            .await
            .expect("create");
        conn
    }

    /// Each statement takes its values in order, after the previous
    /// statement's (many of them: sqlx once left later ones `NULL`), and
    /// its rows come back under its own index.
    #[tokio::test]
    async fn statements_take_their_values_in_order_and_keep_their_rows_apart() {
        let mut conn = conn().await;
        let mut batch = Batch::new();
        for (k, v) in [("a", 1_i64), ("b", 2), ("c", 3), ("d", 4), ("e", 5)] {
            batch.push("INSERT INTO t VALUES (?, ?)");
            batch.bind(k).unwrap().bind(v).unwrap();
        }
        let none = batch.push("SELECT v FROM t WHERE k = ? AND v > ?");
        batch.bind("a").unwrap().bind(5_i64).unwrap();
        let some = batch.push(
            "SELECT k FROM t WHERE v >= ? AND k IN (SELECT value FROM json_each(?)) ORDER BY k",
        );
        batch.bind(2_i64).unwrap().bind(r#"["a","b","e"]"#).unwrap();
        let last = batch.push("SELECT v FROM t WHERE k = ?");
        batch.bind("e").unwrap();
        let rows = batch.run(&mut conn).await.expect("run");
        assert_eq!(rows.len(), 8);
        assert!(rows[0].is_empty(), "an INSERT returns no row");
        assert!(rows[none].is_empty());
        let keys: Vec<String> = rows[some].iter().map(|r| r.get("k")).collect();
        assert_eq!(keys, ["b", "e"]);
        assert_eq!(rows[last][0].get::<i64, _>("v"), 5);
    }

    /// A value too few or too many is refused before anything runs.
    #[tokio::test]
    async fn values_must_match_the_parameters() {
        let mut conn = conn().await;
        let mut batch = Batch::new();
        batch.push("INSERT INTO t VALUES (?, ?)");
        batch.bind("k").unwrap();
        let refused = batch.run(&mut conn).await;
        assert!(matches!(refused, Err(sqlx::Error::Protocol(_))));
        let mut batch = Batch::new();
        batch.push("INSERT INTO t VALUES ('k', 1)");
        batch.bind("extra").unwrap();
        assert!(batch.run(&mut conn).await.is_err());
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(count, 0);
    }

    /// A failing statement stops the batch: nothing after it runs.
    #[tokio::test]
    async fn a_failing_statement_stops_the_batch() {
        let mut conn = conn().await;
        let mut batch = Batch::new();
        for (k, v) in [("k", 1_i64), ("k", 2), ("after", 3)] {
            batch.push("INSERT INTO t VALUES (?, ?)");
            batch.bind(k).unwrap().bind(v).unwrap();
        }
        assert!(batch.run(&mut conn).await.is_err(), "a duplicate key fails");
        let keys: Vec<String> = sqlx::query_scalar("SELECT k FROM t")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(keys, ["k"]);
    }

    #[tokio::test]
    async fn an_empty_batch_runs_nothing() {
        let mut conn = conn().await;
        assert!(Batch::new().run(&mut conn).await.expect("run").is_empty());
    }
}
