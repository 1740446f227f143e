//! [`KeyedLocks`]: one async lock per key, kept only while used.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::OwnedMutexGuard;

/// One lock per key (an upload session, a staged file) that a task of this
/// process holds or awaits. An entry lives only meanwhile, so keys a client
/// makes up leave nothing behind.
#[derive(Debug)]
pub(crate) struct KeyedLocks<K>(Mutex<HashMap<K, Arc<tokio::sync::Mutex<()>>>>);

impl<K> Default for KeyedLocks<K> {
    fn default() -> Self {
        KeyedLocks(Mutex::default())
    }
}

/// A held key; dropping it lets the next waiter in and removes the entry
/// when nobody waits.
#[derive(Debug)]
pub(crate) struct KeyedGuard<K: Eq + Hash> {
    locks: Arc<KeyedLocks<K>>,
    key: K,
    guard: Option<OwnedMutexGuard<()>>,
}

impl<K: Eq + Hash + Clone> KeyedLocks<K> {
    fn map(&self) -> MutexGuard<'_, HashMap<K, Arc<tokio::sync::Mutex<()>>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for `key`'s turn.
    pub(crate) async fn lock(self: &Arc<Self>, key: K) -> KeyedGuard<K> {
        let lock = self.map().entry(key.clone()).or_default().clone();
        KeyedGuard {
            locks: self.clone(),
            key,
            guard: Some(lock.lock_owned().await),
        }
    }

    /// How many keys are held or awaited.
    pub(crate) fn len(&self) -> usize {
        self.map().len()
    }

    /// The keys held or awaited now.
    pub(crate) fn keys(&self) -> HashSet<K> {
        self.map().keys().cloned().collect()
    }
}

impl<K: Eq + Hash> Drop for KeyedGuard<K> {
    fn drop(&mut self) {
        let mut map = self.locks.0.lock().unwrap_or_else(PoisonError::into_inner);
        drop(self.guard.take());
        // The map's reference is the only one left: nobody holds or awaits
        // this key.
        if map
            .get(&self.key)
            .is_some_and(|lock| Arc::strong_count(lock) == 1)
        {
            map.remove(&self.key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn entries_live_only_while_held_or_awaited() {
        let locks: Arc<KeyedLocks<u32>> = Arc::default();
        let first = locks.lock(1).await;
        let waiter = {
            let locks = locks.clone();
            tokio::spawn(async move { drop(locks.lock(1).await) })
        };
        tokio::task::yield_now().await;
        assert_eq!(locks.len(), 1);
        drop(first);
        waiter.await.unwrap();
        assert_eq!(locks.len(), 0);
        let other = locks.lock(2).await;
        assert_eq!(locks.keys(), HashSet::from([2]));
        drop(other);
        assert_eq!(locks.len(), 0);
    }
}
