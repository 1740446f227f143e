//! Blob uploads: monolithic, resumable sessions (streamed or in chunks),
//! status, cancel and cross-repository mount. Every operation that streams
//! bytes in holds an upload slot for its whole life.

use bytes::Bytes;
use futures::stream::{self, StreamExt};
use registry_auth::{Action, Resource};
use registry_core::{Algorithm, Digest, RepositoryName};
use registry_storage::{ByteStream, StorageError, UploadId, UploadStatus};

use super::{Caller, Registry, RegistryError, RegistryResult};

/// Where a cross-repository mount takes a blob from.
#[derive(Debug, Clone)]
pub struct MountFrom {
    /// The blob.
    pub digest: Digest,
    /// The repository holding it (`None`: unknown, so nothing is mounted).
    pub from: Option<RepositoryName>,
}

/// What [`Registry::start_upload`] did.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum UploadStarted {
    /// The blob was mounted from another repository: nothing to upload.
    Mounted(Digest),
    /// A session to upload into.
    Session(UploadStatus),
}

/// Bytes sent into an upload session.
pub struct Chunk {
    /// Where they start; `None`: at the session's current offset.
    pub offset: Option<u64>,
    /// How many there are, when announced: a body that is longer or
    /// shorter is refused and the session stays as it was.
    pub length: Option<u64>,
    /// The bytes.
    pub body: ByteStream,
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk")
            .field("offset", &self.offset)
            .field("length", &self.length)
            .finish_non_exhaustive()
    }
}

impl Chunk {
    /// Bytes appended at the session's current offset.
    pub fn streamed(body: ByteStream) -> Self {
        Chunk {
            offset: None,
            length: None,
            body,
        }
    }

    /// Where the chunk starts in `current`, and its body, cut off with an
    /// error when it is not as long as announced.
    fn checked(self, current: &UploadStatus) -> (u64, ByteStream) {
        let offset = self.offset.unwrap_or(current.offset);
        let body = match self.length {
            Some(announced) => exactly(self.body, announced),
            None => self.body,
        };
        (offset, body)
    }
}

/// What a refused chunk at `offset` of `current` means to the client.
fn chunk_error(current: &UploadStatus, offset: u64, e: StorageError) -> RegistryError {
    let refused = |offset: u64, reason: String| RegistryError::ChunkRefused {
        repository: current.repository.clone(),
        id: current.id.clone(),
        offset,
        reason,
    };
    match e {
        StorageError::InvalidOffset { expected, got } => refused(
            expected,
            format!("chunk starts at {got}, upload is at {expected}"),
        ),
        StorageError::Incoming { source } if source.is::<ChunkLengthMismatch>() => {
            refused(offset, source.to_string())
        }
        e => e.into(),
    }
}

/// A chunk body that is longer or shorter than announced.
#[derive(Debug)]
enum ChunkLengthMismatch {
    /// More bytes arrived than announced.
    Longer { announced: u64 },
    /// The body ended early.
    Shorter { announced: u64, received: u64 },
}

impl std::fmt::Display for ChunkLengthMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChunkLengthMismatch::Longer { announced } => write!(
                f,
                "the chunk body is longer than the {announced} bytes its Content-Range announces"
            ),
            ChunkLengthMismatch::Shorter {
                announced,
                received,
            } => write!(
                f,
                "the chunk body ended after {received} of the {announced} bytes its Content-Range announces"
            ),
        }
    }
}

impl std::error::Error for ChunkLengthMismatch {}

/// `body` failing as soon as it yields more than `announced` bytes, and at
/// its end when it yielded fewer: the store then sees a stream that failed
/// part-way, which leaves the session as it was.
fn exactly(body: ByteStream, announced: u64) -> ByteStream {
    let mismatch = |e: ChunkLengthMismatch| StorageError::Incoming {
        source: Box::new(e),
    };
    // State: the body (until it ends or fails) and the bytes seen so far.
    stream::unfold(Some((body, 0u64)), move |state| async move {
        let (mut body, received) = state?;
        match body.next().await {
            Some(Ok(chunk)) => {
                let received = received + chunk.len() as u64;
                if received > announced {
                    Some((
                        Err(mismatch(ChunkLengthMismatch::Longer { announced })),
                        None,
                    ))
                } else {
                    Some((Ok::<Bytes, _>(chunk), Some((body, received))))
                }
            }
            Some(Err(e)) => Some((Err(e), None)),
            None if received < announced => Some((
                Err(mismatch(ChunkLengthMismatch::Shorter {
                    announced,
                    received,
                })),
                None,
            )),
            None => None,
        }
    })
    .boxed()
}

impl Registry {
    /// A push into a namespace that does not exist is refused, unless the
    /// caller is a cluster admin (or access control is off): then the
    /// namespace is created.
    pub(crate) async fn ensure_namespace(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
    ) -> RegistryResult<()> {
        let ns = repo.to_namespace();
        if self.metadata().namespace_exists(&ns).await? {
            return Ok(());
        }
        let may_create = self.auth().is_none_or(|state| {
            state
                .authorizer
                .current()
                .is_cluster_admin(caller.identity())
        });
        if !may_create {
            return Err(RegistryError::NamespaceMissing(ns));
        }
        // Created by a cluster-admin's first push into it: an event like
        // an explicit creation.
        let events = self.raise(
            caller,
            registry_storage::EventType::NamespaceCreated,
            Some(&ns),
            ns.as_str(),
            serde_json::json!({ "implicit": true }),
        );
        match self
            .metadata()
            .create_namespace_raising(&ns, events.clone())
            .await
        {
            Ok(()) => {
                self.raised(&events);
                tracing::info!(target: "audit", actor = %caller.subject(), namespace = %ns,
                    "namespace created by a push");
                Ok(())
            }
            Err(StorageError::AlreadyExists { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Push and namespace checks shared by every way bytes arrive.
    async fn may_push(&self, caller: &Caller, repo: &RepositoryName) -> RegistryResult<()> {
        self.authorize(caller, Action::Push, &Resource::Repository(repo))?;
        self.refuse_proxy_writes(repo)?;
        self.ensure_namespace(caller, repo).await
    }

    /// Stores a whole blob, verifying its digest while it streams, and
    /// links it to `repo` (needs push).
    pub async fn push_blob(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        digest: &Digest,
        body: ByteStream,
    ) -> RegistryResult<()> {
        self.may_push(caller, repo).await?;
        let _slot = self.upload_slot(&caller.actor())?;
        // The ticket comes first: a put that finds the bytes present (a
        // no-op) must not be acknowledged if a prune deletes them meanwhile.
        let ticket = self.metadata().blob_ticket(digest).await?;
        let stored = self.blobs().put(digest, body).await?;
        // The link checks the namespace's quota with the verified size.
        let ticket = ticket.with_size(stored.size);
        self.metadata().link_blob_with(repo, &ticket).await?;
        Ok(())
    }

    /// Starts an upload into `repo` (needs push), or mounts the blob from
    /// another repository when `mount` names one the caller may pull from
    /// and that holds it; otherwise a fresh session, as if the blob were
    /// not there. `announced` is the algorithm of the digest the client
    /// will commit, when it said (`?digest-algorithm=`): only a session
    /// that announced SHA-512 hashes it as bytes arrive; one that did not
    /// and commits a SHA-512 digest has its bytes read again at the end.
    pub async fn start_upload(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        mount: Option<MountFrom>,
        announced: Option<Algorithm>,
    ) -> RegistryResult<UploadStarted> {
        self.may_push(caller, repo).await?;
        let actor = caller.actor();
        let _slot = self.upload_slot(&actor)?;
        if let Some(MountFrom {
            digest,
            from: Some(from),
        }) = mount
        {
            // Without pull on the source, the caller must not learn whether
            // it holds the blob.
            if self.allows(caller, Action::Pull, &Resource::Repository(&from))
                && self.try_mount(repo, &digest, &from).await?
            {
                return Ok(UploadStarted::Mounted(digest));
            }
        }
        let session = super::upload_limits::create_session(self, repo, &actor, announced).await?;
        Ok(UploadStarted::Session(session))
    }

    /// Links `digest` from `from` into `repo`; `false` when it cannot.
    async fn try_mount(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        from: &RepositoryName,
    ) -> RegistryResult<bool> {
        // Ticket before the checks: a prune deleting the blob after them
        // makes the link fail, and the client uploads instead.
        let ticket = match self.metadata().blob_ticket(digest).await {
            Ok(ticket) => ticket,
            Err(StorageError::BlobDeleted { .. }) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        if !self.metadata().blob_linked(from, digest).await? {
            return Ok(false);
        }
        let Some(stored) = self.blobs().stat(digest).await? else {
            return Ok(false);
        };
        // A mount into another namespace counts there: quota checked.
        let ticket = ticket.with_size(stored.size);
        match self.metadata().link_blob_with(repo, &ticket).await {
            Ok(()) => Ok(true),
            Err(StorageError::BlobDeleted { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Loads a session and checks it belongs to `repo`.
    async fn session(&self, repo: &RepositoryName, id: &UploadId) -> RegistryResult<UploadStatus> {
        match self.uploads().status(id).await {
            Ok(s) if &s.repository == repo => Ok(s),
            Ok(_) | Err(StorageError::UploadUnknown { .. } | StorageError::NotFound { .. }) => {
                Err(RegistryError::UploadUnknown(id.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Where a session stands (needs push).
    pub async fn upload_status(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        id: &UploadId,
    ) -> RegistryResult<UploadStatus> {
        self.authorize(caller, Action::Push, &Resource::Repository(repo))?;
        self.session(repo, id).await
    }

    /// Appends a chunk to a session (needs push). A wrong offset or a
    /// body of another length than announced is
    /// [`RegistryError::ChunkRefused`], and the session stays as it was.
    pub async fn append_upload(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        id: &UploadId,
        chunk: Chunk,
    ) -> RegistryResult<UploadStatus> {
        self.authorize(caller, Action::Push, &Resource::Repository(repo))?;
        let _slot = self.upload_slot(&caller.actor())?;
        let current = self.session(repo, id).await?;
        self.append(&current, chunk).await
    }

    async fn append(&self, current: &UploadStatus, chunk: Chunk) -> RegistryResult<UploadStatus> {
        let (offset, body) = chunk.checked(current);
        let appended = self.uploads().append(&current.id, offset, body).await;
        appended.map_err(|e| chunk_error(current, offset, e))
    }

    /// Appends the last chunk, if any, then publishes the session as blob
    /// `digest` (verified) and links it to `repo` (needs push).
    pub async fn commit_upload(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        id: &UploadId,
        digest: &Digest,
        last_chunk: Option<Chunk>,
    ) -> RegistryResult<()> {
        self.authorize(caller, Action::Push, &Resource::Repository(repo))?;
        let _slot = self.upload_slot(&caller.actor())?;
        // The ticket before the commit, which may find the bytes present
        // already; read side by side with the session.
        let (current, ticket) = tokio::try_join!(self.session(repo, id), async {
            Ok(self.metadata().blob_ticket(digest).await?)
        })?;
        let committed = match last_chunk {
            // Appended and committed in one step: the store need not
            // record the last chunk as an acknowledged append first.
            Some(chunk) => {
                let (offset, body) = chunk.checked(&current);
                let committed = self.uploads().commit_last_chunk(id, offset, body, digest);
                committed
                    .await
                    .map_err(|e| chunk_error(&current, offset, e))
            }
            None => self.uploads().commit(id, digest).await.map_err(Into::into),
        };
        let stored = committed?;
        // The first request that knows the size: the link refuses it past
        // the namespace's quota. The bytes stay unlinked (invisible from
        // the repository) until a prune sweeps them.
        let ticket = ticket.with_size(stored.size);
        self.metadata().link_blob_with(repo, &ticket).await?;
        Ok(())
    }

    /// Cancels a session (needs push).
    pub async fn cancel_upload(
        &self,
        caller: &Caller,
        repo: &RepositoryName,
        id: &UploadId,
    ) -> RegistryResult<()> {
        self.authorize(caller, Action::Push, &Resource::Repository(repo))?;
        self.session(repo, id).await?;
        match self.uploads().cancel(id).await {
            Ok(()) => Ok(()),
            Err(StorageError::UploadUnknown { .. }) => {
                Err(RegistryError::UploadUnknown(id.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }
}
