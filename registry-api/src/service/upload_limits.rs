//! Per-user upload limits: requests streaming bytes in at once, and open
//! upload sessions. Both answer 429 `TOOMANYREQUESTS` with `Retry-After`
//! rather than `DENIED`: the user may push, just not this much at once,
//! and clients retry a 429 after the delay while they give up on a 403.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use registry_core::RepositoryName;
use registry_storage::{SessionOwner, StorageError, UploadStatus};

use super::{Registry, RegistryError, RegistryResult};

/// Upload requests in flight per user. In process memory: it bounds this
/// process's work, which is what it protects. A user's entry goes when
/// their last request ends, so the map is as small as the set of users
/// uploading right now.
#[derive(Debug, Default)]
pub(crate) struct UserSlots(Mutex<HashMap<String, usize>>);

/// One upload request of a user in flight; frees its slot when dropped.
#[derive(Debug)]
pub(crate) struct UserSlot {
    slots: Arc<UserSlots>,
    user: String,
}

impl UserSlots {
    /// Takes one of `user`'s `max` slots, or says 429.
    pub(crate) fn acquire(self: &Arc<Self>, user: &str, max: usize) -> RegistryResult<UserSlot> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let taken = map.entry(user.to_owned()).or_default();
        if *taken >= max {
            if *taken == 0 {
                map.remove(user);
            }
            return Err(RegistryError::TooManyRequests {
                message: format!("{user} has {max} uploads in progress already; retry shortly"),
                retry_after: Duration::from_secs(1),
            });
        }
        *taken += 1;
        Ok(UserSlot {
            slots: self.clone(),
            user: user.to_owned(),
        })
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        let mut map = self.slots.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(taken) = map.get_mut(&self.user) {
            *taken -= 1;
            if *taken == 0 {
                map.remove(&self.user);
            }
        }
    }
}

/// Seconds a client at its session cap is told to wait: sessions end by
/// commit, cancel or idle expiry, none of which is immediate.
const SESSION_CAP_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Starts an upload session owned by `owner`, unless they have
/// `Limits::max_open_uploads_per_user` open already: the store counts and
/// starts in one step (see [`UploadStore::create_for`](registry_storage::UploadStore::create_for)).
pub(crate) async fn create_session(
    registry: &Registry,
    repo: &RepositoryName,
    owner: &str,
    announced: Option<registry_core::Algorithm>,
) -> RegistryResult<UploadStatus> {
    let max = registry.limits().max_open_uploads_per_user;
    let owner = SessionOwner::new(owner).at_most(max);
    match registry
        .uploads()
        .create_for(repo, Some(owner), announced)
        .await
    {
        Ok(session) => Ok(session),
        Err(StorageError::SessionCapReached { owner, open, max }) => {
            Err(RegistryError::TooManyRequests {
                message: format!(
                    "{owner} has {open} upload sessions open (at most {max}); finish or \
                     cancel some, or wait for idle ones to expire"
                ),
                retry_after: SESSION_CAP_RETRY_AFTER,
            })
        }
        Err(e) => Err(e.into()),
    }
}

/// The slots an upload request holds while it streams bytes in: one of
/// its user's and one of the registry's. Freed when dropped.
#[derive(Debug)]
pub(crate) struct UploadSlot {
    _user: UserSlot,
    _global: tokio::sync::OwnedSemaphorePermit,
}

impl Registry {
    /// Takes an upload slot for `user`, or says 429: the user's own cap
    /// first, so that one user's flood does not hold global slots while
    /// being refused.
    pub(crate) fn upload_slot(&self, user: &str) -> RegistryResult<UploadSlot> {
        let user = self
            .inner
            .user_upload_slots
            .acquire(user, self.limits().max_concurrent_uploads_per_user)?;
        match self.inner.upload_slots.clone().try_acquire_owned() {
            Ok(global) => Ok(UploadSlot {
                _user: user,
                _global: global,
            }),
            Err(_) => Err(RegistryError::TooManyRequests {
                message: "too many uploads in progress; retry shortly".to_owned(),
                retry_after: Duration::from_secs(1),
            }),
        }
    }
}
