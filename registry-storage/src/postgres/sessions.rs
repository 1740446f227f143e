//! Upload-session state ([`UploadSessionStore`]) in the `upload_sessions`
//! table. Every call is one statement: an append advances a session only
//! from the offset it read (`advance_session`'s compare-and-set), and of
//! two concurrent commits or cancels one gets the state (`DELETE …
//! RETURNING`), so no transaction is needed.

use async_trait::async_trait;

use super::error::{from_nanos, parse, to_nanos, Error};
use super::PgStore;
use crate::error::{Result, StorageError};
use crate::sessions::{insert_refused, UploadSession, UploadSessionStore};
use crate::upload::{UploadId, UploadStatus};

#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    repository: String,
    owner: Option<String>,
    started: i64,
    updated: i64,
    offset: i64,
    sha256: Vec<u8>,
    sha512: Vec<u8>,
    staged: Vec<u8>,
}

const COLUMNS: &str =
    r#"id, repository, owner, started, updated, "offset", sha256, sha512, staged"#;

fn offset(v: u64) -> Result<i64> {
    i64::try_from(v).map_err(|_| StorageError::backend(format!("upload offset {v} too large")))
}

impl Row {
    fn into_session(self) -> Result<UploadSession, Error> {
        Ok(UploadSession {
            id: parse("upload_sessions.id", &self.id)?,
            repository: parse("upload_sessions.repository", &self.repository)?,
            owner: self.owner,
            started: from_nanos(self.started),
            updated: from_nanos(self.updated),
            offset: u64::try_from(self.offset).map_err(|e| Error::Corrupt {
                column: "upload_sessions.offset",
                value: self.offset.to_string(),
                source: Box::new(e),
            })?,
            sha256: self.sha256,
            sha512: self.sha512,
            staged: self.staged,
        })
    }
}

#[async_trait]
impl UploadSessionStore for PgStore {
    async fn insert_session(&self, s: &UploadSession, max_open: usize) -> Result<()> {
        // The count and the insert in one statement: one round trip. Two
        // starts racing at the cap may both pass (each counts without the
        // other's row); the overshoot is bounded by the owner's concurrent
        // upload requests.
        let done = self
            .bounded(
                sqlx::query(&format!(
                    "INSERT INTO upload_sessions ({COLUMNS}) \
                     SELECT $1, $2, $3::TEXT, $4, $5, $6, $7, $8, $9 \
                     WHERE $3::TEXT IS NULL \
                        OR (SELECT COUNT(*) FROM upload_sessions WHERE owner = $3::TEXT) < $10 \
                     ON CONFLICT (id) DO NOTHING"
                ))
                .bind(s.id.as_str())
                .bind(s.repository.as_str())
                .bind(s.owner.as_deref())
                .bind(to_nanos(s.started))
                .bind(to_nanos(s.updated))
                .bind(offset(s.offset)?)
                .bind(&s.sha256)
                .bind(&s.sha512)
                .bind(&s.staged)
                .bind(i64::try_from(max_open).unwrap_or(i64::MAX))
                .execute(&self.pool),
            )
            .await?;
        if done.rows_affected() == 0 {
            return Err(insert_refused(self, s, max_open).await);
        }
        Ok(())
    }

    async fn session(&self, id: &UploadId) -> Result<Option<UploadSession>> {
        let row: Option<Row> = self
            .bounded(
                sqlx::query_as(&format!(
                    "SELECT {COLUMNS} FROM upload_sessions WHERE id = $1"
                ))
                .bind(id.as_str())
                .fetch_optional(&self.pool),
            )
            .await?;
        Ok(row.map(Row::into_session).transpose()?)
    }

    async fn advance_session(&self, s: &UploadSession, expected_offset: u64) -> Result<bool> {
        let done = self.bounded(sqlx::query(
            r#"UPDATE upload_sessions SET updated = $1, "offset" = $2, sha256 = $3, sha512 = $4,
               staged = $5 WHERE id = $6 AND "offset" = $7"#,
        )
        .bind(to_nanos(s.updated))
        .bind(offset(s.offset)?)
        .bind(&s.sha256)
        .bind(&s.sha512)
        .bind(&s.staged)
        .bind(s.id.as_str())
        .bind(offset(expected_offset)?)
        .execute(&self.pool))
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove_session(
        &self,
        id: &UploadId,
        at: Option<u64>,
    ) -> Result<Option<UploadSession>> {
        let at = at.map(offset).transpose()?;
        let row: Option<Row> = self
            .bounded(
                sqlx::query_as(&format!(
                    r#"DELETE FROM upload_sessions
                       WHERE id = $1 AND ($2::BIGINT IS NULL OR "offset" = $2)
                       RETURNING {COLUMNS}"#
                ))
                .bind(id.as_str())
                .bind(at)
                .fetch_optional(&self.pool),
            )
            .await?;
        Ok(row.map(Row::into_session).transpose()?)
    }

    async fn list_sessions(&self) -> Result<Vec<UploadStatus>> {
        // The saved states are left out: expiry reads only the times.
        let rows: Vec<Row> = self
            .bounded(
                sqlx::query_as(
                    r#"SELECT id, repository, owner, started, updated, "offset",
               '\x'::bytea AS sha256, '\x'::bytea AS sha512, '\x'::bytea AS staged
               FROM upload_sessions"#,
                )
                .fetch_all(&self.pool),
            )
            .await?;
        rows.into_iter()
            .map(|row| Ok(row.into_session()?.status()))
            .collect()
    }

    async fn count_sessions(&self, owner: &str) -> Result<usize> {
        let (n,): (i64,) = self
            .bounded(
                sqlx::query_as("SELECT COUNT(*) FROM upload_sessions WHERE owner = $1")
                    .bind(owner)
                    .fetch_one(&self.pool),
            )
            .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}
