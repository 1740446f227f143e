//! Upload-session state ([`UploadSessionStore`]) in the `upload_sessions` table.

use async_trait::async_trait;

use super::error::{from_nanos, parse, to_nanos, Error};
use super::SqliteMetadataStore;
use crate::error::{Result, StorageError};
use crate::sessions::{UploadSession, UploadSessionStore};
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
impl UploadSessionStore for SqliteMetadataStore {
    async fn insert_session(&self, s: &UploadSession) -> Result<()> {
        let done = sqlx::query(&format!(
            "INSERT INTO upload_sessions ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
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
        .execute(&self.writer)
        .await
        .map_err(Error::from)?;
        if done.rows_affected() == 0 {
            return Err(StorageError::AlreadyExists {
                what: format!("upload session {}", s.id),
            });
        }
        Ok(())
    }

    async fn session(&self, id: &UploadId) -> Result<Option<UploadSession>> {
        let row: Option<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM upload_sessions WHERE id = ?"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.reader)
        .await
        .map_err(Error::from)?;
        Ok(row.map(Row::into_session).transpose()?)
    }

    async fn advance_session(&self, s: &UploadSession, expected_offset: u64) -> Result<bool> {
        let done = sqlx::query(
            r#"UPDATE upload_sessions SET updated = ?, "offset" = ?, sha256 = ?, sha512 = ?,
               staged = ? WHERE id = ? AND "offset" = ?"#,
        )
        .bind(to_nanos(s.updated))
        .bind(offset(s.offset)?)
        .bind(&s.sha256)
        .bind(&s.sha512)
        .bind(&s.staged)
        .bind(s.id.as_str())
        .bind(offset(expected_offset)?)
        .execute(&self.writer)
        .await
        .map_err(Error::from)?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove_session(&self, id: &UploadId) -> Result<Option<UploadSession>> {
        let row: Option<Row> = sqlx::query_as(&format!(
            "DELETE FROM upload_sessions WHERE id = ? RETURNING {COLUMNS}"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.writer)
        .await
        .map_err(Error::from)?;
        Ok(row.map(Row::into_session).transpose()?)
    }

    async fn list_sessions(&self) -> Result<Vec<UploadStatus>> {
        // The saved states are left out: expiry reads only the times.
        let rows: Vec<Row> = sqlx::query_as(
            r#"SELECT id, repository, owner, started, updated, "offset",
               x'' AS sha256, x'' AS sha512, x'' AS staged FROM upload_sessions"#,
        )
        .fetch_all(&self.reader)
        .await
        .map_err(Error::from)?;
        rows.into_iter()
            .map(|row| Ok(row.into_session()?.status()))
            .collect()
    }

    async fn count_sessions(&self, owner: &str) -> Result<usize> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM upload_sessions WHERE owner = ?")
            .bind(owner)
            .fetch_one(&self.reader)
            .await
            .map_err(Error::from)?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}
