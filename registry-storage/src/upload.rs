//! Resumable upload sessions: the [`UploadStore`].

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use registry_core::{Algorithm, Digest, RepositoryName};

use crate::blob::{BlobInfo, ByteStream};
use crate::error::{Result, StorageError};

/// Why a string is not an upload session id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("upload id must be 32 lowercase hex characters")]
pub struct InvalidUploadId;

/// An upload session id: 32 lowercase hex characters (a random UUID), safe
/// to use as a file or object name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UploadId(Box<str>);

impl UploadId {
    /// A new random id.
    pub fn random() -> Self {
        UploadId(uuid::Uuid::new_v4().simple().to_string().into())
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for UploadId {
    type Err = InvalidUploadId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            Ok(UploadId(s.into()))
        } else {
            Err(InvalidUploadId)
        }
    }
}

impl fmt::Display for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UploadId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UploadId({})", self.0)
    }
}

/// State of an upload session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadStatus {
    /// The session id.
    pub id: UploadId,
    /// The repository the upload was started in.
    pub repository: RepositoryName,
    /// Bytes received so far: where the next chunk must start.
    pub offset: u64,
    /// When the session was created.
    pub started: SystemTime,
    /// When a byte last arrived (the creation time before the first one):
    /// what idle expiry looks at.
    pub updated: SystemTime,
    /// Who started the session, when recorded (see
    /// [`UploadStore::create_for`]); per-owner session caps count by it.
    pub owner: Option<String>,
}

/// Who starts an upload session ([`UploadStore::create_for`]), and how
/// many sessions they may have open at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionOwner<'a> {
    /// The user or service account, recorded in the session.
    pub name: &'a str,
    /// Sessions they may have open, the new one included: at this many,
    /// a start is `SessionCapReached`.
    pub max_open: usize,
}

impl<'a> SessionOwner<'a> {
    /// `name`, with no cap on their sessions.
    pub fn new(name: &'a str) -> Self {
        SessionOwner {
            name,
            max_open: usize::MAX,
        }
    }

    /// The same owner, who may have at most `max_open` sessions open.
    pub fn at_most(self, max_open: usize) -> Self {
        SessionOwner { max_open, ..self }
    }
}

/// Resumable blob uploads. Each store is built over the [`crate::BlobStore`]
/// that `commit` publishes into.
///
/// # Contract
/// - Session state lives in the store, not in a process: a session created
///   by one process (or replica) can be continued by another.
/// - [`append`](UploadStore::append) with `offset` different from the
///   session's size is `InvalidOffset { expected, got }` and changes
///   nothing. A stream that fails part-way leaves the session as it was
///   before the call.
/// - Bytes are hashed as they arrive; nothing holds a whole blob in memory.
/// - [`commit`](UploadStore::commit) verifies the digest, publishes the blob
///   atomically into the blob store and ends the session. On
///   `DigestMismatch` the session is ended too and nothing is published.
/// - An unknown, committed or cancelled session is `UploadUnknown`, and
///   asking about one leaves nothing behind in the store (no memory per
///   unknown id).
/// - The offset a session reports is always one that an `append` returned
///   (acknowledged): bytes of an append cut short, even by a crash, are
///   never reported.
#[async_trait]
pub trait UploadStore: Send + Sync + fmt::Debug + 'static {
    /// Starts a session for `repository`, recording `owner` (the user or
    /// service account that started it) in the session's state, unless
    /// they have [`SessionOwner::max_open`] sessions open already
    /// (`SessionCapReached`): counted and started in one step where the
    /// store can (two starts racing at the cap may otherwise both pass).
    /// `announced` is the algorithm of the digest the client will commit,
    /// when it said (the OCI `digest-algorithm` parameter of the `POST`):
    /// a store may hash only SHA-256 as bytes arrive unless SHA-512 is
    /// announced, and read the bytes again for a SHA-512 commit that was
    /// not.
    async fn create_for(
        &self,
        repository: &RepositoryName,
        owner: Option<SessionOwner<'_>>,
        announced: Option<Algorithm>,
    ) -> Result<UploadStatus>;

    /// Starts a session for `repository` with no recorded owner and no
    /// announced digest algorithm.
    async fn create(&self, repository: &RepositoryName) -> Result<UploadStatus> {
        self.create_for(repository, None, None).await
    }

    /// How many sessions `owner` has open. Cheap: backends keep a count
    /// rather than reading every session.
    async fn open_sessions(&self, owner: &str) -> Result<usize>;

    /// The session's state.
    async fn status(&self, id: &UploadId) -> Result<UploadStatus>;

    /// Appends a chunk that must start at `offset`.
    async fn append(&self, id: &UploadId, offset: u64, body: ByteStream) -> Result<UploadStatus>;

    /// Verifies and publishes the uploaded bytes as `expected`, ending the session.
    async fn commit(&self, id: &UploadId, expected: &Digest) -> Result<BlobInfo>;

    /// Appends a last chunk that must start at `offset`, then commits as
    /// `expected`: what a `PUT` with a body does. A wrong offset or a body
    /// that fails leaves the session as it was, as with `append`; a digest
    /// mismatch ends it, as with `commit`. A store may publish straight
    /// from the chunk without recording it as an acknowledged append first;
    /// one with nothing better to do appends, then commits. Required, so
    /// that a wrapper cannot silently send every `PUT` down the slower
    /// append-then-commit path by not forwarding it.
    async fn commit_last_chunk(
        &self,
        id: &UploadId,
        offset: u64,
        body: ByteStream,
        expected: &Digest,
    ) -> Result<BlobInfo>;

    /// Ends the session and discards its bytes.
    async fn cancel(&self, id: &UploadId) -> Result<()>;

    /// Every open session (for expiry of abandoned uploads).
    async fn list(&self) -> Result<Vec<UploadStatus>>;

    /// Removes what interrupted writes left behind, in this store and in
    /// the blob store it publishes into: temp files of a killed process,
    /// once older than the backend's bound, never one still being written.
    /// Returns how many files were removed. Backends without such files
    /// keep the default, which does nothing.
    async fn remove_stale_files(&self) -> Result<u64> {
        Ok(0)
    }
}

/// Open sessions per owner, kept up to date by a backend as sessions start
/// and end, so that a per-owner cap costs a map lookup instead of a listing.
#[derive(Debug, Default)]
pub(crate) struct OwnerCounts(Mutex<HashMap<String, usize>>);

impl OwnerCounts {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, usize>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a session of `owner` that started.
    pub(crate) fn add(&self, owner: Option<&str>) {
        if let Some(owner) = owner {
            *self.map().entry(owner.to_owned()).or_default() += 1;
        }
    }

    /// Counts a session of `owner` that ended; owners without sessions
    /// are dropped from the map, which so stays as small as the set of
    /// owners with open sessions.
    pub(crate) fn remove(&self, owner: Option<&str>) {
        let Some(owner) = owner else { return };
        let mut map = self.map();
        if let Some(n) = map.get_mut(owner) {
            *n -= 1;
            if *n == 0 {
                map.remove(owner);
            }
        }
    }

    /// Open sessions of `owner`.
    pub(crate) fn get(&self, owner: &str) -> usize {
        self.map().get(owner).copied().unwrap_or(0)
    }
}

/// What one [`expire_idle`] run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExpiryReport {
    /// Sessions cancelled for having received no byte for too long.
    pub expired: u64,
    /// Idle sessions skipped because an append was still running on them
    /// (they are looked at again next time).
    pub busy: u64,
}

/// How long [`expire_idle`] waits for a session's lock before leaving it
/// for the next run: an append still streaming (slowly) holds it.
const EXPIRY_LOCK_WAIT: Duration = Duration::from_secs(1);

/// Cancels every session of `uploads` that has received no byte for at
/// least `max_idle` (by [`UploadStatus::updated`]). Meant to run
/// periodically in the background, so that abandoned sessions do not pile
/// up between prunes.
pub async fn expire_idle(uploads: &dyn UploadStore, max_idle: Duration) -> Result<ExpiryReport> {
    let now = SystemTime::now();
    let mut report = ExpiryReport::default();
    for session in uploads.list().await? {
        let idle = now
            .duration_since(session.updated)
            .is_ok_and(|idle| idle >= max_idle);
        if !idle {
            continue;
        }
        match tokio::time::timeout(EXPIRY_LOCK_WAIT, uploads.cancel(&session.id)).await {
            Ok(Ok(())) => {
                tracing::info!(upload = %session.id, repository = %session.repository,
                    owner = session.owner.as_deref().unwrap_or(""), "expired idle upload session");
                report.expired += 1;
            }
            // Committed or cancelled since the listing.
            Ok(Err(StorageError::UploadUnknown { .. })) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => report.busy += 1,
        }
    }
    Ok(report)
}
