//! WAL checkpoints in the background, off the write path.
//!
//! By default SQLite checkpoints at the end of the commit that takes the
//! write-ahead log past 1000 pages: that commit copies the log into the
//! database and syncs both files while it still holds the one write
//! connection, so every write queued behind it waits for two syncs (a
//! small push measured 419 µs per commit on average with them, 200 µs
//! without). Here the write connection never checkpoints
//! (`wal_autocheckpoint = 0`, set in `open`); this task does, on a
//! connection of its own, every [`CHECKPOINT_EVERY`]:
//!
//! - `PASSIVE`: copies what no reader still needs, without the write lock,
//!   so writes go on meanwhile;
//! - `TRUNCATE` when the log has grown past [`LARGE_WAL_FRAMES`] all the
//!   same (readers kept it from being restarted): waits, within the busy
//!   timeout, for a moment without readers and writers, and empties it.
//!
//! Durability is unchanged: with `synchronous = NORMAL` the log is synced
//! at checkpoints, whichever connection runs them, so a commit outlives a
//! power loss once the next checkpoint ran: now within
//! [`CHECKPOINT_EVERY`], before after up to 1000 pages of later writes. A
//! process that is killed loses nothing either way (the log is replayed).

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::SqliteConnectOptions;
use tokio::task::JoinHandle;

use super::connections::Slot;

/// How often the log is checkpointed.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Log frames (pages) past which a checkpoint also empties the log.
const LARGE_WAL_FRAMES: i64 = 16 * 1024;

/// The checkpointing task of one store; stopped when dropped.
#[derive(Debug)]
pub(super) struct Checkpointer {
    slot: Slot,
    task: JoinHandle<()>,
}

/// The schema name under which the checkpointing connection attaches the
/// second database it checkpoints.
const ATTACHED: &str = "attached";

impl Checkpointer {
    /// Opens the task's connection to the database `options` name and
    /// starts checkpointing it, and `attached` too, when given: a second
    /// database (the upload sessions') checkpointed by the same connection
    /// and thread.
    pub(super) async fn start(
        options: &SqliteConnectOptions,
        attached: Option<&Path>,
    ) -> sqlx::Result<Self> {
        let slot = Slot::connect(options).await?;
        let mut schemas = vec!["main"];
        if let Some(path) = attached {
            let path = path.to_str().ok_or_else(|| {
                sqlx::Error::Configuration(
                    format!("the database path {} is not UTF-8", path.display()).into(),
                )
            })?;
            sqlx::query(&format!("ATTACH DATABASE ? AS {ATTACHED}"))
                .bind(path)
                .execute(&slot)
                .await?;
            schemas.push(ATTACHED);
        }
        let task = tokio::spawn(run(slot.clone(), schemas));
        Ok(Checkpointer { slot, task })
    }

    /// Stops the task and closes its connection (after a checkpoint that
    /// is running).
    pub(super) async fn close(&self) {
        self.task.abort();
        self.slot.close().await;
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn run(slot: Slot, schemas: Vec<&'static str>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Failures are logged when they start and when they end, not twice a
    // second while they last (a full disk fails every checkpoint).
    let mut failing = false;
    loop {
        tick.tick().await;
        let mut done = Ok(());
        for schema in &schemas {
            done = done.and(checkpoint(&slot, schema).await);
        }
        match done {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("checkpointing the database's write-ahead log works again");
            }
            Ok(()) => {}
            // Closed: the store is closing.
            Err(sqlx::Error::PoolClosed) => return,
            // Retried at the next tick; meanwhile the log grows.
            Err(e) if failing => {
                tracing::debug!(error = %e, "checkpointing the database's write-ahead log")
            }
            Err(e) => {
                failing = true;
                tracing::warn!(error = %e, "checkpointing the database's write-ahead log \
                    failed; retried every half second");
            }
        }
    }
}

/// One checkpoint of the database attached as `schema`.
async fn checkpoint(slot: &Slot, schema: &str) -> sqlx::Result<()> {
    let mut conn = slot.hold().await?;
    // (busy, frames in the log, frames copied), -1s when not in WAL mode.
    let (_, log, _): (i64, i64, i64) =
        sqlx::query_as(&format!("PRAGMA {schema}.wal_checkpoint(PASSIVE)"))
            .fetch_one(&mut *conn)
            .await?;
    if log >= LARGE_WAL_FRAMES {
        sqlx::query(&format!("PRAGMA {schema}.wal_checkpoint(TRUNCATE)"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
