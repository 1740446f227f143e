//! [`BackendUploadStore`]: resumable upload sessions over any backend, their
//! state in an [`UploadSessionStore`].

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use registry_core::{Algorithm, Digest, Digester, RepositoryName};

use super::blobs::{discard, hashed, into_inner};
use super::hashing::{hash_both, take, Hashes, HashesOut, Verification};
use super::{AppendMode, BlobBackend, StageTarget, StagedWrite};
use crate::blob::{BlobInfo, ByteStream};
use crate::error::{Result, StorageError};
use crate::keyed_locks::KeyedLocks;
use crate::sessions::{UploadSession, UploadSessionStore};
use crate::upload::{SessionOwner, UploadId, UploadStatus, UploadStore};
use crate::verify::Verifier;

/// Staged writes no session owns are removed once this old (see
/// [`UploadStore::remove_stale_files`]).
const STALE_STAGED_AGE: Duration = Duration::from_secs(3600);

/// Upload sessions over a [`BlobBackend`], publishing into it. All state
/// of a session (offset, SHA-256 and SHA-512 states, the backend's staged
/// write) is in the [`UploadSessionStore`] after every append, so any
/// process sharing the backend and the session store continues any
/// session, and a commit never reads the bytes again.
///
/// Requests on one session (clients wait for each chunk's answer, so only
/// a confused or malicious one sends two at once) take turns within a
/// process: two appends at one offset would otherwise both write where the
/// session's bytes go, and the bytes stored could differ from the hashed
/// ones. Across processes, the session store advances from one offset
/// once, so only one append counts and the other gets `InvalidOffset`;
/// what the loser wrote is left alone (it shares the staged write with the
/// winner) and a backend must make sure it cannot be published under the
/// winner's digest (the S3 backend completes a multipart upload with the
/// winner's part ETags, which a replaced part no longer matches).
#[derive(Debug)]
pub struct BackendUploadStore<B> {
    backend: Arc<B>,
    sessions: Arc<dyn UploadSessionStore>,
    turns: Arc<KeyedLocks<UploadId>>,
}

impl<B> Clone for BackendUploadStore<B> {
    fn clone(&self) -> Self {
        BackendUploadStore {
            backend: self.backend.clone(),
            sessions: self.sessions.clone(),
            turns: self.turns.clone(),
        }
    }
}

impl<B: BlobBackend> BackendUploadStore<B> {
    /// Sessions whose bytes go to `backend` (shared with the
    /// [`BackendBlobStore`](super::BackendBlobStore) they publish into) and
    /// whose state goes to `sessions`.
    pub fn new(backend: Arc<B>, sessions: Arc<dyn UploadSessionStore>) -> Self {
        BackendUploadStore {
            backend,
            sessions,
            turns: Arc::default(),
        }
    }

    /// The backend the sessions write to.
    pub fn backend(&self) -> &Arc<B> {
        &self.backend
    }

    /// How many sessions have a request of this process in flight (each
    /// holds a lock entry only meanwhile).
    pub fn sessions_in_flight(&self) -> usize {
        self.turns.len()
    }

    async fn load(&self, id: &UploadId) -> Result<UploadSession> {
        self.sessions.session(id).await?.ok_or_else(|| unknown(id))
    }

    /// A `PUT` carrying the whole blob into a session that holds nothing
    /// yet (the common `POST` + `PUT` push): the digest is known, so the
    /// bytes are staged where the blob will live, as a one-shot put does
    /// (on S3: no copy at publish), and hashed with the digest's algorithm
    /// only. The session is not read first: it ends once the bytes are all
    /// there, if it still holds nothing (otherwise the staged bytes are
    /// discarded and the answer says where it is); a body that fails
    /// leaves it as it was.
    async fn commit_whole(
        &self,
        id: &UploadId,
        body: ByteStream,
        expected: &Digest,
    ) -> Result<BlobInfo> {
        let backend = self.backend.as_ref();
        let (appended, digester) = self.stage_whole(body, expected).await?;
        // Ending the session makes this its only commit.
        let ended = match self.sessions.remove_session(id, Some(0)).await {
            Ok(Some(ended)) => Ok(ended),
            Ok(None) => Err(self.not_at(id, 0).await),
            Err(e) => Err(e),
        };
        let ended = match ended {
            Ok(ended) => ended,
            Err(e) => {
                discard(backend, appended).await;
                return Err(e);
            }
        };
        // The session's own staged write never received a byte: discarded
        // while the blob is published.
        let ((), published) = tokio::join!(
            discard(backend, staged_of(&ended)),
            self.publish_verified(appended, digester, expected)
        );
        published
    }

    /// Stages `body` where blob `expected` will live, hashed with the
    /// digest's algorithm only; the staged write and its hash state. A body
    /// that fails leaves nothing staged.
    async fn stage_whole(
        &self,
        body: ByteStream,
        expected: &Digest,
    ) -> Result<(StagedWrite, Digester)> {
        let backend = self.backend.as_ref();
        let staged = backend.stage(StageTarget::Blob(expected)).await?;
        let hasher = Arc::new(Mutex::new(Digester::new(expected.algorithm())));
        let body = hashed(body, hasher.clone(), Digester::update);
        match backend.append(&staged, body, AppendMode::Final).await {
            Ok(appended) => Ok((appended, into_inner(hasher))),
            Err(e) => {
                discard(backend, staged).await;
                Err(e)
            }
        }
    }

    /// Publishes an ended session's staged bytes as `expected` after
    /// checking them the way `verification` says.
    async fn publish_checked(
        &self,
        staged: StagedWrite,
        verification: Verification,
        expected: &Digest,
    ) -> Result<BlobInfo> {
        match verification {
            Verification::Hashed(digester) => {
                self.publish_verified(staged, digester, expected).await
            }
            Verification::Rehash(sha256) => self.publish_rehashed(staged, sha256, expected).await,
        }
    }

    /// Publishes the bytes of a session that hashed only SHA-256 as
    /// `expected`, a SHA-512 digest (a client that did not announce
    /// `digest-algorithm=sha512` when it started the upload): they are
    /// published under their SHA-256 digest first (right by construction),
    /// then read back, hashed with SHA-512 and staged again at `expected`.
    /// The slow path, for clients that do not announce; the SHA-256 copy is
    /// an unreferenced blob until prune sweeps it.
    async fn publish_rehashed(
        &self,
        staged: StagedWrite,
        sha256: Digester,
        expected: &Digest,
    ) -> Result<BlobInfo> {
        let by_sha256 = sha256.clone().finish();
        self.publish_verified(staged, sha256, &by_sha256).await?;
        let body = self.backend.get(&by_sha256, None).await?.stream;
        let (appended, sha512) = self.stage_whole(body, expected).await?;
        self.publish_verified(appended, sha512, expected).await
    }

    /// Why a session that was expected at `got` did not change:
    /// `InvalidOffset` when it is elsewhere, `UploadUnknown` when it ended.
    async fn not_at(&self, id: &UploadId, got: u64) -> StorageError {
        match self.sessions.session(id).await {
            Ok(Some(now)) => StorageError::InvalidOffset {
                expected: now.offset,
                got,
            },
            Ok(None) => unknown(id),
            Err(e) => e,
        }
    }

    /// A session at `offset`: `InvalidOffset` when it is elsewhere.
    async fn load_at(&self, id: &UploadId, offset: u64) -> Result<UploadSession> {
        let session = self.load(id).await?;
        if offset != session.offset {
            return Err(StorageError::InvalidOffset {
                expected: session.offset,
                got: offset,
            });
        }
        Ok(session)
    }

    /// Appends `body` after `staged` (the session's staged write), hashing
    /// it on from the session's hash states; the new staged write and
    /// hash states.
    async fn append_hashed(
        &self,
        session: &UploadSession,
        staged: &StagedWrite,
        body: ByteStream,
        mode: AppendMode,
    ) -> Result<(StagedWrite, Hashes)> {
        let out = HashesOut::default();
        let body = hash_both(body, hashes_of(session)?, out.clone());
        let appended = self.backend.append(staged, body, mode).await?;
        let hashes = take(&out).ok_or_else(|| {
            StorageError::backend("the backend returned before the end of the body")
        })?;
        Ok((appended, hashes))
    }

    /// Publishes an ended session's staged bytes as `expected` if
    /// `digester` (of the bytes, in `expected`'s algorithm) says they are;
    /// discards them otherwise, or when publishing fails.
    async fn publish_verified(
        &self,
        staged: StagedWrite,
        digester: Digester,
        expected: &Digest,
    ) -> Result<BlobInfo> {
        if let Err(e) = Verifier::from_digester(digester).finish(expected) {
            discard(self.backend.as_ref(), staged).await;
            return Err(e);
        }
        match self.backend.publish(staged.clone(), expected).await {
            Ok(info) => Ok(info),
            Err(e) => {
                discard(self.backend.as_ref(), staged).await;
                Err(e)
            }
        }
    }
}

fn unknown(id: &UploadId) -> StorageError {
    StorageError::UploadUnknown { id: id.to_string() }
}

fn corrupt(id: &UploadId, e: registry_core::InvalidHashState) -> StorageError {
    StorageError::backend(format!("upload session {id}: {e}"))
}

/// The session's saved hash states.
fn hashes_of(session: &UploadSession) -> Result<Hashes> {
    let restore = |saved: &[u8]| Digester::restore(saved).map_err(|e| corrupt(&session.id, e));
    // An empty SHA-512 state: the session did not announce SHA-512.
    let sha512 = match session.sha512.is_empty() {
        true => None,
        false => Some(restore(&session.sha512)?),
    };
    Ok(Hashes {
        sha256: restore(&session.sha256)?,
        sha512,
    })
}

fn staged_of(session: &UploadSession) -> StagedWrite {
    StagedWrite {
        written: session.offset,
        state: session.staged.clone(),
        pending: bytes::Bytes::new(),
    }
}

#[async_trait]
impl<B: BlobBackend> UploadStore for BackendUploadStore<B> {
    async fn create_for(
        &self,
        repository: &RepositoryName,
        owner: Option<SessionOwner<'_>>,
        announced: Option<Algorithm>,
    ) -> Result<UploadStatus> {
        let id = UploadId::random();
        let staged = self.backend.stage(StageTarget::Session(&id)).await?;
        let now = SystemTime::now();
        let session = UploadSession {
            id,
            repository: repository.clone(),
            owner: owner.map(|o| o.name.to_owned()),
            started: now,
            updated: now,
            offset: 0,
            sha256: Digester::new(Algorithm::Sha256).save(),
            // Hashed only when announced: see `Hashes`.
            sha512: match announced {
                Some(Algorithm::Sha512) => Digester::new(Algorithm::Sha512).save(),
                _ => Vec::new(),
            },
            staged: staged.state.clone(),
        };
        let max_open = owner.map_or(usize::MAX, |o| o.max_open);
        if let Err(e) = self.sessions.insert_session(&session, max_open).await {
            discard(self.backend.as_ref(), staged).await;
            return Err(e);
        }
        Ok(session.status())
    }

    async fn open_sessions(&self, owner: &str) -> Result<usize> {
        self.sessions.count_sessions(owner).await
    }

    async fn status(&self, id: &UploadId) -> Result<UploadStatus> {
        Ok(self.load(id).await?.status())
    }

    async fn append(&self, id: &UploadId, offset: u64, body: ByteStream) -> Result<UploadStatus> {
        let _turn = self.turns.lock(id.clone()).await;
        let session = self.load_at(id, offset).await?;
        let staged = staged_of(&session);
        // On failure the stored session is untouched: it continues from
        // the old state, as the contract asks.
        let (appended, hashes) = self
            .append_hashed(&session, &staged, body, AppendMode::Resumable)
            .await?;
        let next = UploadSession {
            updated: SystemTime::now(),
            offset: appended.written,
            sha256: hashes.sha256.save(),
            sha512: hashes
                .sha512
                .as_ref()
                .map(Digester::save)
                .unwrap_or_default(),
            staged: appended.state.clone(),
            ..session.clone()
        };
        if !self.sessions.advance_session(&next, session.offset).await? {
            // Ended or moved by another process meanwhile. What this call
            // wrote is not aborted: the staged write is the other
            // request's too (see the type's docs).
            return Err(self.not_at(id, offset).await);
        }
        self.backend.release(&staged, &appended).await;
        Ok(next.status())
    }

    async fn commit(&self, id: &UploadId, expected: &Digest) -> Result<BlobInfo> {
        let _turn = self.turns.lock(id.clone()).await;
        // Ending the session first makes this the only commit of it.
        let session = self
            .sessions
            .remove_session(id, None)
            .await?
            .ok_or_else(|| unknown(id))?;
        let verification = hashes_of(&session)?.for_digest(expected)?;
        self.publish_checked(staged_of(&session), verification, expected)
            .await
    }

    /// The last chunk goes to the backend as a final append (an S3 backend
    /// keeps a short tail in memory instead of storing it as an object),
    /// and the session is ended without recording it: one session-store
    /// write instead of two.
    async fn commit_last_chunk(
        &self,
        id: &UploadId,
        offset: u64,
        body: ByteStream,
        expected: &Digest,
    ) -> Result<BlobInfo> {
        let _turn = self.turns.lock(id.clone()).await;
        if offset == 0 {
            return self.commit_whole(id, body, expected).await;
        }
        let session = self.load_at(id, offset).await?;
        let staged = staged_of(&session);
        // A failure here leaves the stored session as it was: the client
        // may resume from its offset.
        let (appended, hashes) = self
            .append_hashed(&session, &staged, body, AppendMode::Final)
            .await?;
        // Ending the session makes this the only commit of it; another
        // process that moved it meanwhile shares the staged write, so
        // nothing is published or aborted then, and the session goes on.
        if self
            .sessions
            .remove_session(id, Some(session.offset))
            .await?
            .is_none()
        {
            return Err(self.not_at(id, offset).await);
        }
        // What the session's last acknowledged state held that the final
        // one does not (an S3 backend's stored tail, now in `pending`).
        self.backend.release(&staged, &appended).await;
        let verification = hashes.for_digest(expected)?;
        self.publish_checked(appended, verification, expected).await
    }

    async fn cancel(&self, id: &UploadId) -> Result<()> {
        let _turn = self.turns.lock(id.clone()).await;
        let session = self
            .sessions
            .remove_session(id, None)
            .await?
            .ok_or_else(|| unknown(id))?;
        self.backend.abort(staged_of(&session)).await
    }

    async fn list(&self) -> Result<Vec<UploadStatus>> {
        self.sessions.list_sessions().await
    }

    async fn remove_stale_files(&self) -> Result<u64> {
        let live: HashSet<UploadId> = self
            .sessions
            .list_sessions()
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect();
        self.backend
            .remove_stale_staged(&live, STALE_STAGED_AGE)
            .await
    }
}
