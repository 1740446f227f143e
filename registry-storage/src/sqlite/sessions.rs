//! Upload-session state ([`UploadSessionStore`]) in a database file of its
//! own beside the metadata database (`registry.db`: `registry-uploads.db`),
//! on one connection of its own.
//!
//! A small push starts, reads and ends two sessions per image; in the
//! metadata database those writes queued on its one write connection
//! behind every link and manifest transaction, and held it in turn. The
//! session database has its own write lock, connection thread and
//! checkpoints, so session steps and metadata transactions run side by
//! side. Nothing needs both in one transaction: a session ends before the
//! blob it held is linked, as it did before. Same settings as the
//! metadata database (WAL, `synchronous = NORMAL`, checkpoints off the
//! write path: by the metadata database's checkpointing connection, which
//! attaches this one), so a killed process loses no acknowledged step; a
//! small page cache, as the table holds only the sessions open now.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};

use super::connections::Slot;
use super::error::{from_nanos, parse, to_nanos, Error};
use super::SqliteMetadataStore;
use crate::error::{Result, StorageError};
use crate::sessions::{insert_refused, UploadSession, UploadSessionStore};
use crate::upload::{UploadId, UploadStatus};

/// The session database's schema, from `migrations/sqlite-sessions`.
static SESSIONS_MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite-sessions");

/// Page cache of the session database's connection, in KiB.
const CACHE_KIB: u32 = 256;

/// The upload-session database of a [`SqliteMetadataStore`].
#[derive(Debug, Clone)]
pub(super) struct SessionDb {
    slot: Slot,
}

impl SessionDb {
    /// Where the sessions of the metadata database at `metadata` live:
    /// `dir/registry.db` keeps them in `dir/registry-uploads.db`.
    pub(super) fn path_beside(metadata: &Path) -> PathBuf {
        let mut name = metadata.file_stem().unwrap_or_default().to_owned();
        name.push("-uploads");
        if let Some(extension) = metadata.extension() {
            name.push(".");
            name.push(extension);
        }
        metadata.with_file_name(name)
    }

    /// Opens (creating) the database `options` name, migrated: the
    /// metadata database's settings, whose checkpointing task must attach
    /// it (see `Checkpointer::start`).
    pub(super) async fn open(options: &SqliteConnectOptions) -> sqlx::Result<Self> {
        let slot = Slot::connect(
            &options
                .clone()
                .journal_mode(SqliteJournalMode::Wal)
                .pragma("wal_autocheckpoint", "0")
                .pragma("cache_size", format!("-{CACHE_KIB}")),
        )
        .await?;
        SESSIONS_MIGRATOR.run(&mut *slot.hold().await?).await?;
        Ok(SessionDb { slot })
    }

    /// A private database in memory, for a store in memory.
    pub(super) async fn open_memory() -> sqlx::Result<Self> {
        let slot = Slot::connect(&SqliteConnectOptions::new().in_memory(true)).await?;
        SESSIONS_MIGRATOR.run(&mut *slot.hold().await?).await?;
        Ok(SessionDb { slot })
    }

    /// Copies the sessions an earlier version kept in the metadata database
    /// (its `upload_sessions` table, which a migration then drops) into
    /// the session database at `path`, through `writer`, the metadata
    /// database's connection; run before its migrations. Sessions already
    /// copied (a crash before the migration) are left as they are. How
    /// many were copied.
    pub(super) async fn adopt_older_sessions(writer: &Slot, path: &Path) -> sqlx::Result<u64> {
        let mut conn = writer.hold().await?;
        let (tables,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'upload_sessions'",
        )
        .fetch_one(&mut *conn)
        .await?;
        if tables == 0 {
            return Ok(0);
        }
        let path = path.to_str().ok_or_else(|| {
            sqlx::Error::Configuration(
                format!("the session database path {} is not UTF-8", path.display()).into(),
            )
        })?;
        sqlx::query("ATTACH DATABASE ? AS uploads")
            .bind(path)
            .execute(&mut *conn)
            .await?;
        let copied = sqlx::query(&format!(
            "INSERT OR IGNORE INTO uploads.upload_sessions ({COLUMNS}) \
             SELECT {COLUMNS} FROM main.upload_sessions"
        ))
        .execute(&mut *conn)
        .await;
        let detached = sqlx::query("DETACH DATABASE uploads")
            .execute(&mut *conn)
            .await;
        let copied = copied?.rows_affected();
        detached?;
        Ok(copied)
    }

    /// Closes the connection, waiting for a running statement.
    pub(super) async fn close(&self) {
        self.slot.close().await;
    }
}

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
    async fn insert_session(&self, s: &UploadSession, max_open: usize) -> Result<()> {
        // One statement: the count and the insert under one write lock, so
        // starts racing at the cap cannot both pass.
        let done = sqlx::query(&format!(
            "INSERT INTO upload_sessions ({COLUMNS}) SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? \
             WHERE ? IS NULL OR (SELECT COUNT(*) FROM upload_sessions WHERE owner = ?) < ? \
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
        .bind(s.owner.as_deref())
        .bind(s.owner.as_deref())
        .bind(i64::try_from(max_open).unwrap_or(i64::MAX))
        .execute(&self.sessions.slot)
        .await
        .map_err(Error::from)?;
        if done.rows_affected() == 0 {
            return Err(insert_refused(self, s, max_open).await);
        }
        Ok(())
    }

    async fn session(&self, id: &UploadId) -> Result<Option<UploadSession>> {
        let row: Option<Row> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM upload_sessions WHERE id = ?"
        ))
        .bind(id.as_str())
        .fetch_optional(&self.sessions.slot)
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
        .execute(&self.sessions.slot)
        .await
        .map_err(Error::from)?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove_session(
        &self,
        id: &UploadId,
        at: Option<u64>,
    ) -> Result<Option<UploadSession>> {
        let at = at.map(offset).transpose()?;
        let row: Option<Row> = sqlx::query_as(&format!(
            r#"DELETE FROM upload_sessions WHERE id = ? AND (? IS NULL OR "offset" = ?)
               RETURNING {COLUMNS}"#
        ))
        .bind(id.as_str())
        .bind(at)
        .bind(at)
        .fetch_optional(&self.sessions.slot)
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
        .fetch_all(&self.sessions.slot)
        .await
        .map_err(Error::from)?;
        rows.into_iter()
            .map(|row| Ok(row.into_session()?.status()))
            .collect()
    }

    async fn count_sessions(&self, owner: &str) -> Result<usize> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM upload_sessions WHERE owner = ?")
            .bind(owner)
            .fetch_one(&self.sessions.slot)
            .await
            .map_err(Error::from)?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::time::SystemTime;

    use sqlx::{ConnectOptions, Connection};

    use super::*;

    fn session() -> UploadSession {
        let now = SystemTime::now();
        UploadSession {
            id: UploadId::random(),
            repository: "team/app".parse().expect("name"),
            owner: Some("alice".to_owned()),
            started: now,
            updated: now,
            offset: 5,
            sha256: vec![1, 2, 3],
            sha512: Vec::new(),
            staged: vec![4],
        }
    }

    async fn has_session_table(conn: &mut sqlx::SqliteConnection) -> bool {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'upload_sessions'",
        )
        .fetch_one(conn)
        .await
        .expect("schema");
        n == 1
    }

    #[test]
    fn the_session_database_is_named_after_the_metadata_database() {
        let beside = |p: &str| SessionDb::path_beside(Path::new(p));
        assert_eq!(
            beside("/d/registry.db"),
            Path::new("/d/registry-uploads.db")
        );
        assert_eq!(beside("/d/meta"), Path::new("/d/meta-uploads"));
    }

    #[tokio::test]
    async fn sessions_live_in_their_own_database_with_the_metadata_settings() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.db");
        let store = SqliteMetadataStore::open(&path).await.expect("open");
        let started = session();
        store
            .insert_session(&started, usize::MAX)
            .await
            .expect("insert");
        {
            let mut conn = store.sessions.slot.hold().await.expect("sessions");
            let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&mut *conn)
                .await
                .expect("journal_mode");
            assert_eq!(mode, "wal");
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&mut *conn)
                .await
                .expect("synchronous");
            assert_eq!(sync, 1, "NORMAL");
            let autocheckpoint: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
                .fetch_one(&mut *conn)
                .await
                .expect("wal_autocheckpoint");
            assert_eq!(autocheckpoint, 0, "checkpoints are left to the task");
            let cache: i64 = sqlx::query_scalar("PRAGMA cache_size")
                .fetch_one(&mut *conn)
                .await
                .expect("cache_size");
            assert_eq!(cache, -i64::from(CACHE_KIB));
            let mut metadata = store.writer.hold().await.expect("writer");
            assert!(!has_session_table(&mut metadata).await);
        }
        store.close().await;
        assert!(dir.path().join("m-uploads.db").exists());

        let reopened = SqliteMetadataStore::open(&path).await.expect("reopen");
        assert_eq!(
            reopened.session(&started.id).await.expect("read"),
            Some(started.clone()),
            "a session outlives a restart"
        );
        reopened.close().await;
    }

    /// The metadata database's checkpointing task copies the session
    /// database's log into its file too.
    #[tokio::test]
    async fn the_session_log_reaches_its_file_in_the_background() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteMetadataStore::open(dir.path().join("m.db"))
            .await
            .expect("open");
        let path = dir.path().join("m-uploads.db");
        let size = || std::fs::metadata(&path).expect("session database").len();
        let before = size();
        for _ in 0..300 {
            store
                .insert_session(&session(), usize::MAX)
                .await
                .expect("insert");
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while size() <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint copied the session log into its file ({before} bytes)"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        store.close().await;
    }

    /// A database of the version before sessions moved, with a session
    /// open: the session continues after the upgrade, from its own file.
    #[tokio::test]
    async fn sessions_of_an_older_database_move_into_their_own() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.db");
        let open = session();
        {
            let older = Migrator {
                migrations: Cow::Owned(
                    super::super::MIGRATOR
                        .iter()
                        .filter(|m| m.version < 19)
                        .cloned()
                        .collect(),
                ),
                ..Migrator::DEFAULT
            };
            let mut conn = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .connect()
                .await
                .expect("older database");
            older.run(&mut conn).await.expect("older schema");
            assert!(has_session_table(&mut conn).await);
            sqlx::query(&format!(
                "INSERT INTO upload_sessions ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            ))
            .bind(open.id.as_str())
            .bind(open.repository.as_str())
            .bind(open.owner.as_deref())
            .bind(to_nanos(open.started))
            .bind(to_nanos(open.updated))
            .bind(5_i64)
            .bind(&open.sha256)
            .bind(&open.sha512)
            .bind(&open.staged)
            .execute(&mut conn)
            .await
            .expect("older session");
            conn.close().await.expect("close");
        }
        let store = SqliteMetadataStore::open(&path).await.expect("upgrade");
        assert_eq!(
            store.session(&open.id).await.expect("read"),
            Some(open.clone())
        );
        assert_eq!(store.count_sessions("alice").await.expect("count"), 1);
        let mut metadata = store.writer.hold().await.expect("writer");
        assert!(
            !has_session_table(&mut metadata).await,
            "the old table is dropped once its sessions moved"
        );
        drop(metadata);
        store.close().await;
    }
}
