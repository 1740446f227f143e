//! The store's SQLite connections, held directly instead of in sqlx pools.
//!
//! Every statement on a sqlx SQLite connection is a round trip to that
//! connection's worker thread. A sqlx pool adds round trips of its own: it
//! pings each connection when it comes back (one more round trip, from a
//! spawned task, before the next caller gets it), and `BEGIN IMMEDIATE`
//! through sqlx's transaction manager costs two (the `BEGIN`, then a check
//! that it began). On the single write connection every one of them
//! serializes all writers, so a small push spent more round trips on the
//! pool than on its statements. Here a connection is a [`Slot`]: a
//! connection behind an async mutex, used by one caller at a time, with
//! `BEGIN IMMEDIATE` and `COMMIT` sent as plain statements, or sent with
//! the statements around them as one [`Batch`] (`begin_with`,
//! `commit_with`, `transact`): a write transaction whose statements do not
//! wait for each other's results is one or two round trips, and one whose
//! checks a guard can make in SQL (`transact_guarded`) is usually one.
//!
//! A transaction that was dropped, or whose `COMMIT` failed (a full disk:
//! SQLite may or may not have rolled back already), leaves its slot marked;
//! it is rolled back at once by a spawned task holding the slot, and failing
//! that by the next caller before anything else runs. So a slot never hands
//! out a connection inside a stranger's transaction.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::stream::{self, BoxStream, StreamExt};
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteConnection, SqliteQueryResult, SqliteRow, SqliteStatement,
    SqliteTypeInfo,
};
use sqlx::{ConnectOptions, Connection, Describe, Either, Execute, Executor};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::batch::{Batch, Ran};

/// One connection, used by one caller at a time.
#[derive(Clone)]
pub(super) struct Slot(Arc<Mutex<SlotState>>);

struct SlotState {
    /// `None` once closed.
    conn: Option<SqliteConnection>,
    /// A transaction was begun and neither committed nor rolled back.
    in_transaction: bool,
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Slot")
    }
}

/// A slot's connection while one caller holds it.
pub(super) struct Held(OwnedMutexGuard<SlotState>);

impl Deref for Held {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.0.conn.as_ref().expect("held connections are open")
    }
}

impl DerefMut for Held {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.0.conn.as_mut().expect("held connections are open")
    }
}

impl Slot {
    pub(super) async fn connect(options: &SqliteConnectOptions) -> sqlx::Result<Self> {
        let conn = options.connect().await?;
        Ok(Slot(Arc::new(Mutex::new(SlotState {
            conn: Some(conn),
            in_transaction: false,
        }))))
    }

    /// The connection, outside any transaction.
    pub(super) async fn hold(&self) -> sqlx::Result<Held> {
        let state = self.0.clone().lock_owned().await;
        Self::ready(state).await
    }

    /// Like [`hold`](Self::hold) without waiting: `None` when in use.
    fn try_hold(&self) -> Option<OwnedMutexGuard<SlotState>> {
        self.0.clone().try_lock_owned().ok()
    }

    async fn ready(mut state: OwnedMutexGuard<SlotState>) -> sqlx::Result<Held> {
        let state_ref = &mut *state;
        let Some(conn) = state_ref.conn.as_mut() else {
            return Err(sqlx::Error::PoolClosed);
        };
        if state_ref.in_transaction {
            rollback(conn).await?;
            state_ref.in_transaction = false;
        }
        Ok(Held(state))
    }

    /// Begins a write transaction (`BEGIN IMMEDIATE`: the write lock is
    /// taken at once, so the transaction cannot fail later on another
    /// connection's write).
    pub(super) async fn begin(&self) -> sqlx::Result<Tx> {
        Tx::begin(self.hold().await?, "BEGIN IMMEDIATE").await
    }

    /// Begins a write transaction like [`begin`](Self::begin) and runs
    /// `batch` in it, in one round trip; the rows of each statement.
    pub(super) async fn begin_with(
        &self,
        batch: Batch<'_>,
    ) -> sqlx::Result<(Tx, Vec<Vec<SqliteRow>>)> {
        Tx::begin_with(self.hold().await?, "BEGIN IMMEDIATE", batch).await
    }

    /// Runs `batch` as one write transaction (`BEGIN IMMEDIATE`, the
    /// statements, `COMMIT`) in one round trip; the rows of each statement.
    pub(super) async fn transact(&self, mut batch: Batch<'_>) -> sqlx::Result<Vec<Vec<SqliteRow>>> {
        batch.push("COMMIT");
        let (tx, mut rows) = self.begin_with(batch).await?;
        rows.pop();
        tx.committed();
        Ok(rows)
    }

    /// Runs `batch`, which has a guard (see [`Batch::push_guard`]), as one
    /// write transaction (`BEGIN IMMEDIATE`, the statements, `COMMIT`) in
    /// one round trip. When the guard fails, the transaction stays open,
    /// holding the write lock, with the changes of the statements before
    /// the guard: the caller reads their rows, and commits or drops it.
    pub(super) async fn transact_guarded(&self, mut batch: Batch<'_>) -> sqlx::Result<Guarded> {
        batch.push("COMMIT");
        batch.push_front("BEGIN IMMEDIATE");
        let mut held = self.hold().await?;
        // Marked first, as in `Tx::begin_with`.
        held.0.in_transaction = true;
        let mut tx = Tx { held: Some(held) };
        match batch.run_guarded(&mut tx).await? {
            Ran::All(_) => {
                tx.committed();
                Ok(Guarded::Committed)
            }
            Ran::Stopped(mut rows) => {
                rows.remove(0);
                Ok(Guarded::Stopped(tx, rows))
            }
        }
    }

    /// Closes the connection, waiting for its current user.
    pub(super) async fn close(&self) {
        let mut state = self.0.lock().await;
        if let Some(conn) = state.conn.take() {
            if let Err(e) = conn.close().await {
                tracing::warn!(error = %e, "closing a database connection");
            }
        }
    }
}

/// Rolls back whatever transaction `conn` is in; none is not an error (SQLite
/// rolls back by itself after some failures, a failed `COMMIT` among them).
async fn rollback(conn: &mut SqliteConnection) -> sqlx::Result<()> {
    match conn.execute("ROLLBACK").await {
        Ok(_) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.message().contains("no transaction is active") => Ok(()),
        Err(e) => {
            tracing::warn!(error = %e, "rolling back an abandoned database transaction");
            Err(e)
        }
    }
}

/// What [`Slot::transact_guarded`] did.
pub(super) enum Guarded {
    /// Committed.
    Committed,
    /// Stopped by the guard: the open transaction, and the rows of the
    /// statements before the guard.
    Stopped(Tx, Vec<Vec<SqliteRow>>),
}

/// A transaction on a slot: committed by [`commit`](Tx::commit), rolled
/// back when dropped.
pub(super) struct Tx {
    held: Option<Held>,
}

impl Tx {
    async fn begin(held: Held, statement: &'static str) -> sqlx::Result<Tx> {
        Ok(Self::begin_with(held, statement, Batch::new()).await?.0)
    }

    /// Sends `statement` (a `BEGIN`) and `batch` in one round trip; the
    /// rows of the batch's statements.
    async fn begin_with(
        mut held: Held,
        statement: &'static str,
        mut batch: Batch<'_>,
    ) -> sqlx::Result<(Tx, Vec<Vec<SqliteRow>>)> {
        // Marked first: a `BEGIN` that fails after taking effect (or whose
        // caller is dropped mid-way) is rolled back like any other; a
        // failure past this point drops the `Tx`, which rolls back.
        held.0.in_transaction = true;
        let mut tx = Tx { held: Some(held) };
        batch.push_front(statement);
        let mut rows = tx.run(batch).await?;
        rows.remove(0);
        Ok((tx, rows))
    }

    /// Runs `batch` in the transaction, in one round trip.
    pub(super) async fn run(&mut self, batch: Batch<'_>) -> sqlx::Result<Vec<Vec<SqliteRow>>> {
        batch.run(self).await
    }

    /// Commits; on failure the transaction is rolled back.
    pub(super) async fn commit(self) -> sqlx::Result<()> {
        self.commit_with(Batch::new()).await
    }

    /// Runs `batch` and commits, in one round trip; on failure the
    /// transaction is rolled back.
    pub(super) async fn commit_with(mut self, mut batch: Batch<'_>) -> sqlx::Result<()> {
        batch.push("COMMIT");
        // On failure `self` drops, and its rollback starts at once.
        self.run(batch).await?;
        self.committed();
        Ok(())
    }

    /// Ends a transaction whose `COMMIT` ran as part of a batch.
    fn committed(mut self) {
        if let Some(mut held) = self.held.take() {
            held.0.in_transaction = false;
        }
    }
}

impl Deref for Tx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.held
            .as_ref()
            .expect("a transaction is held until it ends")
    }
}

impl DerefMut for Tx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.held
            .as_mut()
            .expect("a transaction is held until it ends")
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        let Some(mut held) = self.held.take() else {
            return;
        };
        // Roll back now, holding the slot, so that the write lock is not
        // kept until the next caller; without a runtime, the next caller
        // rolls back.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if rollback(&mut held).await.is_ok() {
                    held.0.in_transaction = false;
                }
            });
        }
    }
}

/// The read connections: a caller takes a free one, or waits its turn on
/// one of them.
#[derive(Clone, Debug)]
pub(super) struct Readers {
    slots: Arc<[Slot]>,
    next: Arc<AtomicUsize>,
}

impl Readers {
    pub(super) fn new(slots: Vec<Slot>) -> Self {
        assert!(!slots.is_empty(), "at least one read connection");
        Readers {
            slots: slots.into(),
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// A read connection.
    pub(super) async fn hold(&self) -> sqlx::Result<Held> {
        for slot in self.slots.iter() {
            if let Some(state) = slot.try_hold() {
                return Slot::ready(state).await;
            }
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        self.slots[turn].hold().await
    }

    /// A read transaction (`BEGIN`): one snapshot for several statements.
    pub(super) async fn begin(&self) -> sqlx::Result<Tx> {
        Tx::begin(self.hold().await?, "BEGIN").await
    }

    pub(super) async fn close(&self) {
        for slot in self.slots.iter() {
            slot.close().await;
        }
    }
}

/// Runs `$call` (a future using `$held`, a connection of `$lender`: a
/// [`Slot`] or the [`Readers`]) to its end while holding the connection.
macro_rules! on_lent {
    ($lender:ident, $held:ident => $call:expr) => {
        Box::pin(async move {
            let mut $held: Held = $lender.hold().await?;
            $call.await
        })
    };
}

/// Runs one statement on a connection of `$ty` (its `hold`), as a sqlx pool
/// does for `query.execute(&pool)`.
macro_rules! lend_executor {
    ($ty:ty) => {
        impl<'c> Executor<'c> for &'c $ty {
            type Database = Sqlite;

            fn execute<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, sqlx::Result<SqliteQueryResult>>
            where
                'c: 'e,
                E: 'q + Execute<'q, Sqlite>,
            {
                on_lent!(self, held => held.execute(query))
            }

            fn fetch_many<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxStream<'e, sqlx::Result<Either<SqliteQueryResult, SqliteRow>>>
            where
                'c: 'e,
                E: 'q + Execute<'q, Sqlite>,
            {
                // Collected while the connection is held, then handed out.
                let all = async move {
                    let steps: Vec<sqlx::Result<Either<SqliteQueryResult, SqliteRow>>> =
                        match self.hold().await {
                            Ok(mut held) => held.fetch_many(query).collect().await,
                            Err(e) => vec![Err(e)],
                        };
                    stream::iter(steps)
                };
                stream::once(all).flatten().boxed()
            }

            fn fetch_all<'e, 'q: 'e, E>(self, query: E) -> BoxFuture<'e, sqlx::Result<Vec<SqliteRow>>>
            where
                'c: 'e,
                E: 'q + Execute<'q, Sqlite>,
            {
                on_lent!(self, held => held.fetch_all(query))
            }

            fn fetch_optional<'e, 'q: 'e, E>(
                self,
                query: E,
            ) -> BoxFuture<'e, sqlx::Result<Option<SqliteRow>>>
            where
                'c: 'e,
                E: 'q + Execute<'q, Sqlite>,
            {
                on_lent!(self, held => held.fetch_optional(query))
            }

            fn prepare_with<'e, 'q: 'e>(
                self,
                sql: &'q str,
                parameters: &'e [SqliteTypeInfo],
            ) -> BoxFuture<'e, sqlx::Result<SqliteStatement<'q>>>
            where
                'c: 'e,
            {
                on_lent!(self, held => held.prepare_with(sql, parameters))
            }

            fn describe<'e, 'q: 'e>(self, sql: &'q str) -> BoxFuture<'e, sqlx::Result<Describe<Sqlite>>>
            where
                'c: 'e,
            {
                on_lent!(self, held => held.describe(sql))
            }
        }
    };
}

lend_executor!(Slot);
lend_executor!(Readers);

#[cfg(test)]
mod tests {
    use super::*;

    async fn slot() -> Slot {
        let slot = Slot::connect(&SqliteConnectOptions::new().in_memory(true))
            .await
            .expect("connect");
        sqlx::query("CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .execute(&slot)
            .await
            .expect("create");
        slot
    }

    async fn count(slot: &Slot) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(slot)
            .await
            .expect("count")
    }

    #[tokio::test]
    async fn a_committed_transaction_stays() {
        let slot = slot().await;
        let mut tx = slot.begin().await.expect("begin");
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *tx)
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        assert_eq!(count(&slot).await, 1);
    }

    /// A transaction dropped half-way (an error, a cancelled request) is
    /// rolled back before anyone else uses the connection.
    #[tokio::test]
    async fn a_dropped_transaction_is_rolled_back() {
        let slot = slot().await;
        let mut tx = slot.begin().await.expect("begin");
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *tx)
            .await
            .expect("insert");
        let failed = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *tx)
            .await;
        assert!(failed.is_err(), "a duplicate key fails");
        drop(tx);
        assert_eq!(count(&slot).await, 0);
        // And the connection begins again: it is not left inside the
        // abandoned transaction ("cannot start a transaction within a
        // transaction" otherwise).
        let tx = slot.begin().await.expect("begin again");
        tx.commit().await.expect("commit");
    }

    /// Batches: the rows of each statement come back without `BEGIN`'s
    /// and `COMMIT`'s; a batch failing before its `COMMIT` leaves nothing
    /// behind, and the slot begins again.
    #[tokio::test]
    async fn a_failing_batch_commits_nothing() {
        let slot = slot().await;
        let mut first = Batch::new();
        first.push("INSERT INTO t VALUES (1)");
        first.push("SELECT v FROM t");
        let (tx, rows) = slot.begin_with(first).await.expect("begin");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[1].len(), 1, "the transaction sees its own insert");
        let mut rest = Batch::new();
        rest.push("INSERT INTO t VALUES (2)");
        rest.push("INSERT INTO t VALUES (1)");
        assert!(tx.commit_with(rest).await.is_err(), "a duplicate key fails");
        assert_eq!(count(&slot).await, 0);
        let mut again = Batch::new();
        again.push("INSERT INTO t VALUES (?)");
        again.bind(3_i64).expect("bind");
        let rows = slot.transact(again).await.expect("transact");
        assert_eq!(rows.len(), 1);
        assert_eq!(count(&slot).await, 1);
    }

    /// A guarded batch whose guard fails leaves its transaction open with
    /// what ran before the guard, and nothing after it; one whose guard
    /// holds commits.
    #[tokio::test]
    async fn a_stopped_guard_leaves_the_transaction_open() {
        let slot = slot().await;
        sqlx::query(super::super::batch::GUARD_TABLE)
            .execute(&slot)
            .await
            .expect("guard table");
        let guarded = |ok: bool| {
            let mut batch = Batch::new();
            batch.push("INSERT INTO t VALUES (1)");
            let read = batch.push("SELECT v FROM t");
            batch.push_guard("?");
            batch.bind(ok).expect("bind");
            batch.push("INSERT INTO t VALUES (2)");
            (batch, read)
        };
        let (batch, read) = guarded(false);
        let Guarded::Stopped(tx, rows) = slot.transact_guarded(batch).await.expect("run") else {
            panic!("the guard fails");
        };
        assert_eq!(rows[read].len(), 1, "the rows before the guard");
        tx.commit().await.expect("commit");
        assert_eq!(count(&slot).await, 1, "only the statement before the guard");
        sqlx::query("DELETE FROM t")
            .execute(&slot)
            .await
            .expect("clear");
        let (batch, _) = guarded(true);
        let done = slot.transact_guarded(batch).await.expect("run");
        assert!(matches!(done, Guarded::Committed));
        assert_eq!(count(&slot).await, 2);
    }

    /// Without a runtime to roll back on (the drop happens as a runtime
    /// shuts down), the next user of the slot rolls back first.
    #[test]
    fn the_next_user_rolls_back_what_no_task_could() {
        let runtime = || {
            tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime")
        };
        let slot = runtime().block_on(slot());
        let tx = runtime().block_on(async {
            let mut tx = slot.begin().await.expect("begin");
            sqlx::query("INSERT INTO t VALUES (1)")
                .execute(&mut *tx)
                .await
                .expect("insert");
            tx
        });
        drop(tx);
        runtime().block_on(async {
            assert_eq!(count(&slot).await, 0);
            slot.begin()
                .await
                .expect("begin")
                .commit()
                .await
                .expect("commit");
        });
    }

    #[tokio::test]
    async fn readers_share_the_work_and_close() {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("r.db"))
            .create_if_missing(true);
        let readers = Readers::new(vec![
            Slot::connect(&options).await.expect("one"),
            Slot::connect(&options).await.expect("two"),
        ]);
        // Two held at once: the second caller gets the other connection.
        let first = readers.hold().await.expect("first");
        let second = readers.hold().await.expect("second");
        drop((first, second));
        let one: i64 = sqlx::query_scalar("SELECT 1")
            .fetch_one(&readers)
            .await
            .expect("select");
        assert_eq!(one, 1);
        readers.close().await;
        let closed = sqlx::query("SELECT 1").execute(&readers).await;
        assert!(matches!(closed, Err(sqlx::Error::PoolClosed)), "{closed:?}");
    }
}
