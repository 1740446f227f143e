//! Following other replicas' writes: every [`Change`] of the stores'
//! [`ChangeFeed`](registry_storage::ChangeFeed) drops what this registry's
//! caches hold about it and, for auth changes, reloads the authorizer, so
//! that a tag move, a binding change or a deleted user or token on one
//! replica is in force here at once.

use std::sync::Weak;

use futures::{FutureExt, StreamExt};
use registry_storage::{Change, ChangeStream};

use super::Inner;

/// The task applying changes; stopped when the registry is dropped.
#[derive(Debug)]
pub(crate) struct ChangeListener(tokio::task::AbortHandle);

impl Drop for ChangeListener {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts applying `changes` to the registry behind `inner`, when a Tokio
/// runtime is running (a registry built outside one has nothing cached yet
/// and follows no feed: a warning says so).
pub(crate) fn follow(inner: Weak<Inner>, changes: ChangeStream) -> Option<ChangeListener> {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("registry built outside a Tokio runtime: other replicas' changes reach its caches only after their time to live");
        return None;
    };
    let task = runtime.spawn(apply(inner, changes));
    Some(ChangeListener(task.abort_handle()))
}

async fn apply(inner: Weak<Inner>, mut changes: ChangeStream) {
    while let Some(first) = changes.next().await {
        // A burst (a push with many layers, a script creating tokens)
        // arrives as many changes: apply what is queued at once, and
        // reload the authorizer once for all of it.
        let mut batch = vec![first];
        while let Some(Some(change)) = changes.next().now_or_never() {
            batch.push(change);
        }
        let Some(inner) = inner.upgrade() else { return };
        let mut auth_changed = false;
        for change in &batch {
            tracing::debug!(?change, "change from another replica");
            inner.stores.metadata().invalidate(change);
            auth_changed |= matches!(change, Change::Auth | Change::Everything);
        }
        let Some(auth) = inner.auth.as_ref().filter(|_| auth_changed) else {
            continue;
        };
        auth.store.invalidate_cache();
        if let Some(stores_auth) = inner.stores.auth() {
            stores_auth.invalidate_cache();
        }
        if let Err(e) = auth.authorizer.reload(auth.store.as_ref()).await {
            tracing::warn!(target: "auth", error = %e, "reloading role bindings after another replica's change failed");
        }
    }
}
