//! [`MemoryUploadSessions`]: upload-session state in process memory.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

use crate::error::{Result, StorageError};
use crate::sessions::{UploadSession, UploadSessionStore};
use crate::upload::{OwnerCounts, UploadId, UploadStatus};

/// Upload sessions in process memory (tests, single-process embedding).
#[derive(Debug, Default)]
pub struct MemoryUploadSessions {
    sessions: Mutex<HashMap<UploadId, UploadSession>>,
    owners: OwnerCounts,
}

impl MemoryUploadSessions {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<UploadId, UploadSession>> {
        self.sessions.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait]
impl UploadSessionStore for MemoryUploadSessions {
    async fn insert_session(&self, session: &UploadSession, max_open: usize) -> Result<()> {
        let mut map = self.map();
        if map.contains_key(&session.id) {
            return Err(StorageError::AlreadyExists {
                what: format!("upload session {}", session.id),
            });
        }
        // Counted under the map's lock, which every change of the counts
        // holds: exact, even for starts racing at the cap.
        if let Some(owner) = &session.owner {
            let open = self.owners.get(owner);
            if open >= max_open {
                return Err(StorageError::SessionCapReached {
                    owner: owner.clone(),
                    open,
                    max: max_open,
                });
            }
        }
        map.insert(session.id.clone(), session.clone());
        self.owners.add(session.owner.as_deref());
        Ok(())
    }

    async fn session(&self, id: &UploadId) -> Result<Option<UploadSession>> {
        Ok(self.map().get(id).cloned())
    }

    async fn advance_session(&self, session: &UploadSession, expected_offset: u64) -> Result<bool> {
        let mut map = self.map();
        match map.get_mut(&session.id) {
            Some(current) if current.offset == expected_offset => {
                *current = session.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn remove_session(
        &self,
        id: &UploadId,
        at: Option<u64>,
    ) -> Result<Option<UploadSession>> {
        let mut map = self.map();
        let removed = match (map.get(id), at) {
            (Some(current), Some(at)) if current.offset != at => None,
            _ => map.remove(id),
        };
        if let Some(session) = &removed {
            self.owners.remove(session.owner.as_deref());
        }
        Ok(removed)
    }

    async fn list_sessions(&self) -> Result<Vec<UploadStatus>> {
        Ok(self.map().values().map(UploadSession::status).collect())
    }

    async fn count_sessions(&self, owner: &str) -> Result<usize> {
        Ok(self.owners.get(owner))
    }
}
