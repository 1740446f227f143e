//! Transactions: every write is one SERIALIZABLE transaction, run again
//! when PostgreSQL aborts it for a conflict with a concurrent one.
//!
//! SQLite's single writer makes each write transaction see no concurrent
//! write between its checks and its commit; the SQLite backend relies on
//! that for immutable tags, quotas, the blob deletion protocol, child
//! manifests and retention's conditional deletes. SERIALIZABLE gives the
//! same guarantee on PostgreSQL without a lock per kind of check: a
//! transaction whose reads a concurrent commit invalidated fails with a
//! serialization failure (SQLSTATE 40001) and changes nothing, and
//! [`serializable!`] runs it again on a fresh snapshot, where the checks
//! see the other commit.

use std::time::Duration;

use sqlx::{PgPool, Postgres, Transaction};

use super::error::{Error, Result};

/// Attempts of one write before a conflict is given to the caller: enough
/// for dozens of writers on one row (each round commits at least one).
const ATTEMPTS: u32 = 64;

/// The first back-off; it doubles up to [`MAX_BACKOFF`], with jitter so
/// that the losers of one conflict do not meet again.
const FIRST_BACKOFF: Duration = Duration::from_millis(2);
const MAX_BACKOFF: Duration = Duration::from_millis(100);

/// Opens a SERIALIZABLE read-write transaction.
pub(super) async fn begin(pool: &PgPool) -> Result<Transaction<'static, Postgres>> {
    Ok(pool
        .begin_with("BEGIN ISOLATION LEVEL SERIALIZABLE")
        .await?)
}

/// Opens a read-only transaction on one snapshot, for reads of several
/// statements that must agree.
pub(super) async fn snapshot(pool: &PgPool) -> Result<Transaction<'static, Postgres>> {
    Ok(pool
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?)
}

/// The retry state of one write.
#[derive(Debug, Default)]
pub(super) struct Retry {
    attempt: u32,
}

impl Retry {
    /// Whether to run the transaction again after `error`: waits the
    /// back-off and says yes for conflicts, until the attempts run out.
    pub(super) async fn again(&mut self, error: &Error) -> bool {
        if !error.is_retryable() || self.attempt + 1 >= ATTEMPTS {
            return false;
        }
        self.attempt += 1;
        let ceiling = FIRST_BACKOFF
            .saturating_mul(1 << self.attempt.min(6))
            .min(MAX_BACKOFF);
        // Jitter from a random UUID: no RNG dependency for this alone.
        let fraction = f64::from(uuid::Uuid::new_v4().as_u128() as u16) / f64::from(u16::MAX);
        tokio::time::sleep(ceiling.mul_f64(0.5 + fraction / 2.0)).await;
        true
    }
}

/// Runs `$body` (an expression using `$conn: &mut PgConnection` and
/// evaluating to a future of `Result<T>`) in a SERIALIZABLE transaction and
/// commits it, again on serialization failures and deadlocks (see the
/// module documentation). An error of the body rolls back (the dropped
/// transaction) and is returned unless it is such a conflict.
macro_rules! serializable {
    ($pool:expr, |$conn:ident| $body:expr) => {{
        let mut retry = $crate::postgres::tx::Retry::default();
        loop {
            let outcome: $crate::postgres::error::Result<_> = async {
                let mut tx = $crate::postgres::tx::begin($pool).await?;
                let value = {
                    let $conn: &mut sqlx::PgConnection = &mut tx;
                    $body.await?
                };
                tx.commit().await?;
                Ok(value)
            }
            .await;
            match outcome {
                Err(e) if retry.again(&e).await => continue,
                other => break other,
            }
        }
    }};
}

pub(super) use serializable;
