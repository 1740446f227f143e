//! [`MemoryUploadStore`]: upload sessions in process memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::BytesMut;
use futures::StreamExt;
use registry_core::{Algorithm, Digest, Digester, RepositoryName};
use tokio::sync::Mutex as AsyncMutex;

use super::blob::MemoryBlobStore;
use crate::blob::{BlobInfo, ByteStream};
use crate::error::{Result, StorageError};
use crate::upload::{OwnerCounts, UploadId, UploadStatus, UploadStore};
use crate::verify::Verifier;

#[derive(Debug)]
struct Session {
    repository: RepositoryName,
    started: SystemTime,
    updated: SystemTime,
    owner: Option<String>,
    data: BytesMut,
    /// SHA-256 of `data`, kept as the bytes arrive.
    digester: Digester,
}

impl Session {
    fn status(&self, id: &UploadId) -> UploadStatus {
        UploadStatus {
            id: id.clone(),
            repository: self.repository.clone(),
            offset: self.data.len() as u64,
            started: self.started,
            updated: self.updated,
            owner: self.owner.clone(),
        }
    }
}

/// A session's slot: `None` once it was committed or cancelled, for calls
/// that were already waiting on its lock.
type Slot = Arc<AsyncMutex<Option<Session>>>;

/// Upload sessions held in memory, publishing into a [`MemoryBlobStore`].
/// Cloning is cheap and clones share the sessions.
#[derive(Debug, Clone)]
pub struct MemoryUploadStore {
    blobs: MemoryBlobStore,
    sessions: Arc<Mutex<HashMap<UploadId, Slot>>>,
    owners: Arc<OwnerCounts>,
}

impl MemoryUploadStore {
    /// An upload store whose commits publish into `blobs`.
    pub fn new(blobs: MemoryBlobStore) -> Self {
        MemoryUploadStore {
            blobs,
            sessions: Arc::default(),
            owners: Arc::default(),
        }
    }

    /// The blob store commits publish into.
    pub fn blobs(&self) -> &MemoryBlobStore {
        &self.blobs
    }

    fn slot(&self, id: &UploadId) -> Result<Slot> {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .cloned()
            .ok_or_else(|| unknown(id))
    }

    fn forget(&self, id: &UploadId) {
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}

fn unknown(id: &UploadId) -> StorageError {
    StorageError::UploadUnknown { id: id.to_string() }
}

#[async_trait]
impl UploadStore for MemoryUploadStore {
    async fn create_for(
        &self,
        repository: &RepositoryName,
        owner: Option<&str>,
    ) -> Result<UploadStatus> {
        let id = UploadId::random();
        let now = SystemTime::now();
        self.owners.add(owner);
        let session = Session {
            repository: repository.clone(),
            started: now,
            updated: now,
            owner: owner.map(str::to_owned),
            data: BytesMut::new(),
            digester: Digester::new(Algorithm::Sha256),
        };
        let status = session.status(&id);
        self.sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, Arc::new(AsyncMutex::new(Some(session))));
        Ok(status)
    }

    async fn status(&self, id: &UploadId) -> Result<UploadStatus> {
        let slot = self.slot(id)?;
        let guard = slot.lock().await;
        guard
            .as_ref()
            .map(|s| s.status(id))
            .ok_or_else(|| unknown(id))
    }

    async fn append(
        &self,
        id: &UploadId,
        offset: u64,
        mut body: ByteStream,
    ) -> Result<UploadStatus> {
        let slot = self.slot(id)?;
        let mut guard = slot.lock().await;
        let session = guard.as_mut().ok_or_else(|| unknown(id))?;
        let expected = session.data.len() as u64;
        if offset != expected {
            return Err(StorageError::InvalidOffset {
                expected,
                got: offset,
            });
        }
        // Work on copies of the hasher and of the new bytes: a stream that
        // fails (or a caller that gives up) leaves the session untouched.
        let mut digester = session.digester.clone();
        let mut received = BytesMut::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            digester.update(&chunk);
            received.extend_from_slice(&chunk);
        }
        session.digester = digester;
        session.data.extend_from_slice(&received);
        session.updated = SystemTime::now();
        Ok(session.status(id))
    }

    async fn commit(&self, id: &UploadId, expected: &Digest) -> Result<BlobInfo> {
        let slot = self.slot(id)?;
        let mut guard = slot.lock().await;
        let session = guard.take().ok_or_else(|| unknown(id))?;
        self.forget(id);
        self.owners.remove(session.owner.as_deref());
        let digester = match expected.algorithm() {
            Algorithm::Sha256 => session.digester,
            other => {
                let mut digester = Digester::new(other);
                digester.update(&session.data);
                digester
            }
        };
        Verifier::from_digester(digester).finish(expected)?;
        Ok(self.blobs.insert_verified(expected, session.data.freeze()))
    }

    async fn cancel(&self, id: &UploadId) -> Result<()> {
        let slot = self.slot(id)?;
        let mut guard = slot.lock().await;
        let session = guard.take().ok_or_else(|| unknown(id))?;
        self.forget(id);
        self.owners.remove(session.owner.as_deref());
        Ok(())
    }

    async fn open_sessions(&self, owner: &str) -> Result<usize> {
        Ok(self.owners.get(owner))
    }

    async fn list(&self) -> Result<Vec<UploadStatus>> {
        let slots: Vec<_> = self
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|(id, slot)| (id.clone(), slot.clone()))
            .collect();
        let mut statuses = Vec::with_capacity(slots.len());
        for (id, slot) in slots {
            if let Some(session) = slot.lock().await.as_ref() {
                statuses.push(session.status(&id));
            }
        }
        Ok(statuses)
    }
}
