//! Resumable upload sessions: the [`UploadStore`].

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use async_trait::async_trait;
use registry_core::{Digest, RepositoryName};

use crate::blob::{BlobInfo, ByteStream};
use crate::error::Result;

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
/// - An unknown, committed or cancelled session is `UploadUnknown`.
#[async_trait]
pub trait UploadStore: Send + Sync + fmt::Debug + 'static {
    /// Starts a session for `repository`.
    async fn create(&self, repository: &RepositoryName) -> Result<UploadStatus>;

    /// The session's state.
    async fn status(&self, id: &UploadId) -> Result<UploadStatus>;

    /// Appends a chunk that must start at `offset`.
    async fn append(&self, id: &UploadId, offset: u64, body: ByteStream) -> Result<UploadStatus>;

    /// Verifies and publishes the uploaded bytes as `expected`, ending the session.
    async fn commit(&self, id: &UploadId, expected: &Digest) -> Result<BlobInfo>;

    /// Ends the session and discards its bytes.
    async fn cancel(&self, id: &UploadId) -> Result<()>;

    /// Every open session (for expiry of abandoned uploads).
    async fn list(&self) -> Result<Vec<UploadStatus>>;
}
