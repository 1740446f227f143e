//! Per-user upload limits: requests streaming bytes in at once, and open
//! upload sessions. Both answer 429 `TOOMANYREQUESTS` with `Retry-After`
//! rather than `DENIED`: the user may push, just not this much at once,
//! and clients retry a 429 after the delay while they give up on a 403.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use axum::http::header;
use registry_core::{ErrorCode, RepositoryName};
use registry_storage::UploadStatus;

use crate::error::{ApiError, ApiResult};
use crate::http_util::header_value;
use crate::state::Registry;

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
    pub(crate) fn acquire(self: &Arc<Self>, user: &str, max: usize) -> ApiResult<UserSlot> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let taken = map.entry(user.to_owned()).or_default();
        if *taken >= max {
            if *taken == 0 {
                map.remove(user);
            }
            return Err(ApiError::new(
                ErrorCode::TooManyRequests,
                format!("{user} has {max} uploads in progress already; retry shortly"),
            )
            .with_header(header::RETRY_AFTER, header_value("1")));
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
const SESSION_CAP_RETRY_AFTER: &str = "30";

/// Starts an upload session owned by `owner`, unless they have
/// `Limits::max_open_uploads_per_user` open already. Two starts racing at
/// the cap may both pass; the overshoot is bounded by the user's
/// concurrent upload requests.
pub(crate) async fn create_session(
    registry: &Registry,
    repo: &RepositoryName,
    owner: &str,
) -> ApiResult<UploadStatus> {
    let max = registry.limits().max_open_uploads_per_user;
    let open = registry.uploads().open_sessions(owner).await?;
    if open >= max {
        return Err(ApiError::new(
            ErrorCode::TooManyRequests,
            format!(
                "{owner} has {open} upload sessions open (at most {max}); finish or cancel \
                 some, or wait for idle ones to expire"
            ),
        )
        .with_header(header::RETRY_AFTER, header_value(SESSION_CAP_RETRY_AFTER)));
    }
    Ok(registry.uploads().create_for(repo, Some(owner)).await?)
}
