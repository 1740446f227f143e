//! Where the state of resumable upload sessions lives for a
//! [`BackendUploadStore`](crate::backend::BackendUploadStore): the
//! [`UploadSessionStore`], implemented by the metadata databases (SQLite,
//! PostgreSQL) so that every replica sees every session, and in memory
//! ([`MemoryUploadSessions`](crate::memory::MemoryUploadSessions)).

use std::fmt::Debug;
use std::time::SystemTime;

use async_trait::async_trait;
use registry_core::RepositoryName;

use crate::error::{Result, StorageError};
use crate::upload::{UploadId, UploadStatus};

/// Everything needed to continue an upload session in any process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadSession {
    /// The session id.
    pub id: UploadId,
    /// The repository the upload was started in.
    pub repository: RepositoryName,
    /// Who started it, when recorded.
    pub owner: Option<String>,
    /// When it was created.
    pub started: SystemTime,
    /// When a byte last arrived (the creation time before the first one).
    pub updated: SystemTime,
    /// Bytes acknowledged so far.
    pub offset: u64,
    /// SHA-256 state of those bytes ([`Digester::save`](registry_core::Digester::save)).
    pub sha256: Vec<u8>,
    /// SHA-512 state of those bytes.
    pub sha512: Vec<u8>,
    /// The backend's staged write ([`StagedWrite::state`](crate::backend::StagedWrite::state)).
    pub staged: Vec<u8>,
}

impl UploadSession {
    /// The session as the [`UploadStore`](crate::UploadStore) reports it.
    pub fn status(&self) -> UploadStatus {
        UploadStatus {
            id: self.id.clone(),
            repository: self.repository.clone(),
            offset: self.offset,
            started: self.started,
            updated: self.updated,
            owner: self.owner.clone(),
        }
    }
}

/// Stored upload-session state. Every method is one atomic step, so two
/// replicas working on one session cannot both advance it from the same
/// offset, nor both end it.
#[async_trait]
pub trait UploadSessionStore: Send + Sync + Debug + 'static {
    /// Records a new session (`AlreadyExists` for a used id), unless its
    /// owner has `max_open` sessions open already (`SessionCapReached`);
    /// counted and recorded in one statement where the database can.
    async fn insert_session(&self, session: &UploadSession, max_open: usize) -> Result<()>;

    /// A session's state, or `None`.
    async fn session(&self, id: &UploadId) -> Result<Option<UploadSession>>;

    /// Replaces a session's state if it still is at `expected_offset`.
    /// `false` when it ended or another append moved it meanwhile.
    async fn advance_session(&self, session: &UploadSession, expected_offset: u64) -> Result<bool>;

    /// Ends a session and returns its last state; with `at`, only if it
    /// is at that offset. `None` when it had ended already, or is at
    /// another offset, and nothing changed (of two concurrent calls, one
    /// gets the state).
    async fn remove_session(&self, id: &UploadId, at: Option<u64>)
        -> Result<Option<UploadSession>>;

    /// Every open session, without the saved states.
    async fn list_sessions(&self) -> Result<Vec<UploadStatus>>;

    /// How many sessions `owner` has open.
    async fn count_sessions(&self, owner: &str) -> Result<usize>;
}

/// Why `store` recorded nothing for `session` when its insert, guarded by
/// the owner's cap, changed no row: the owner has `max_open` sessions open
/// (`SessionCapReached`), or the id is taken (`AlreadyExists`).
pub(crate) async fn insert_refused(
    store: &(impl UploadSessionStore + ?Sized),
    session: &UploadSession,
    max_open: usize,
) -> StorageError {
    if let Some(owner) = &session.owner {
        match store.count_sessions(owner).await {
            Ok(open) if open >= max_open => {
                return StorageError::SessionCapReached {
                    owner: owner.clone(),
                    open,
                    max: max_open,
                }
            }
            Ok(_) => {}
            Err(e) => return e,
        }
    }
    StorageError::AlreadyExists {
        what: format!("upload session {}", session.id),
    }
}
