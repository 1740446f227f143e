//! [`Inflight`]: one run of a piece of work per key, shared by everyone who
//! asks for that key while it runs.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};

use futures::future::{BoxFuture, FutureExt, Shared};

type Entries<K, V> = Arc<Mutex<HashMap<K, Shared<BoxFuture<'static, Option<V>>>>>>;

/// Work in flight by key. The work runs in its own task, so it finishes
/// (and stores what it fetched) even when every asker went away; its entry
/// is removed when it ends, so the map holds only what is running.
pub(crate) struct Inflight<K, V> {
    entries: Entries<K, V>,
}

impl<K, V> Default for Inflight<K, V> {
    fn default() -> Self {
        Inflight {
            entries: Arc::default(),
        }
    }
}

impl<K, V> std::fmt::Debug for Inflight<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.entries.lock().map(|m| m.len()).unwrap_or(0);
        f.debug_struct("Inflight").field("running", &n).finish()
    }
}

impl<K, V> Inflight<K, V>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// The result of the work running for `key`, or of `work`, started now
    /// when none runs. `None` when the work's task panicked.
    pub(crate) async fn run<F>(&self, key: K, work: F) -> Option<V>
    where
        F: Future<Output = V> + Send + 'static,
    {
        let shared = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            match entries.get(&key) {
                Some(running) => running.clone(),
                None => {
                    let cleanup = Arc::clone(&self.entries);
                    let cleanup_key = key.clone();
                    let task = tokio::spawn(async move {
                        let value = work.await;
                        // Removed before the waiters see the value: whoever
                        // asks after this starts afresh.
                        cleanup
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&cleanup_key);
                        value
                    });
                    let shared = async move { task.await.ok() }.boxed().shared();
                    entries.insert(key.clone(), shared.clone());
                    shared
                }
            }
        };
        let value = shared.await;
        if value.is_none() {
            // The task panicked before removing its entry.
            self.entries
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&key);
        }
        value
    }

    /// How many keys have work running (tests, debugging).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test]
    async fn concurrent_askers_share_one_run_and_the_entry_goes() {
        let inflight: Arc<Inflight<&'static str, usize>> = Arc::default();
        let runs = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let inflight = inflight.clone();
            let runs = runs.clone();
            tasks.push(tokio::spawn(async move {
                inflight
                    .run("k", async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        runs.fetch_add(1, Ordering::SeqCst) + 1
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), Some(1));
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(inflight.len(), 0);
        // Asked again once it ended: a new run.
        let again = inflight.run("k", async { 7 }).await;
        assert_eq!(again, Some(7));
    }
}
