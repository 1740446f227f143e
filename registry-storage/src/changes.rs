//! How replicas learn of each other's writes: a [`ChangeFeed`] yields a
//! [`Change`] for every write another process committed, and the registry
//! drops what its caches hold about it (see
//! [`MetadataStore::invalidate`](crate::MetadataStore::invalidate)), so a
//! tag move, a binding change or a deleted token on one replica is in force
//! on every other at once instead of after a cache's time to live.
//!
//! The PostgreSQL store provides one (`LISTEN/NOTIFY`); stores used by one
//! process need none.

use std::fmt::Debug;

use futures::stream::BoxStream;
use registry_core::{Namespace, RepositoryName};

/// What another process changed, as precisely as caches need it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// Tags, manifests or blob links of one repository.
    Repository(RepositoryName),
    /// A namespace: created, deleted (with its repositories) or its policy.
    Namespace(Namespace),
    /// Users, service accounts, tokens, role bindings or signing keys.
    Auth,
    /// Changes may have been missed (the feed's connection dropped and came
    /// back): everything cached is suspect.
    Everything,
}

/// A stream of other processes' changes.
pub type ChangeStream = BoxStream<'static, Change>;

/// A source of [`Change`]s committed by other processes.
pub trait ChangeFeed: Send + Sync + Debug + 'static {
    /// A new subscription: every change committed from now on. A
    /// subscriber that falls behind receives [`Change::Everything`] in
    /// place of what it missed, never a silent gap.
    fn subscribe(&self) -> ChangeStream;
}

/// A [`ChangeFeed`] that hands on what its owner [`publish`](Self::publish)es
/// (a database listener, or a test), to every subscriber. Bounded: a
/// subscriber more than 1024 changes behind gets [`Change::Everything`].
#[derive(Debug, Clone)]
pub struct BroadcastFeed {
    sender: tokio::sync::broadcast::Sender<Change>,
}

impl Default for BroadcastFeed {
    fn default() -> Self {
        BroadcastFeed {
            sender: tokio::sync::broadcast::channel(1024).0,
        }
    }
}

impl BroadcastFeed {
    /// Hands `change` to every current subscriber.
    pub fn publish(&self, change: Change) {
        // No subscriber: nobody caches anything to drop.
        let _ = self.sender.send(change);
    }
}

impl ChangeFeed for BroadcastFeed {
    fn subscribe(&self) -> ChangeStream {
        use futures::StreamExt;
        use tokio::sync::broadcast::error::RecvError;
        futures::stream::unfold(self.sender.subscribe(), |mut receiver| async move {
            match receiver.recv().await {
                Ok(change) => Some((change, receiver)),
                Err(RecvError::Lagged(_)) => Some((Change::Everything, receiver)),
                Err(RecvError::Closed) => None,
            }
        })
        .boxed()
    }
}
