//! A server killed in the middle of a burst of pushes, for the crash tests.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::examples::ServerProcess;

/// Runs `push(i)` for every `i` in `0..pushes` from `clients` concurrent
/// tasks (client `c` pushes `c`, `c + clients`, … in order and stops at its
/// first failure), kills `server` with SIGKILL once `kill_after` pushes were
/// acknowledged (`push` returned `true`), waits for the clients and returns
/// the acknowledged `i`s. Panics when the server exits by itself first, or
/// when every push was acknowledged before the kill (nothing was cut short).
pub async fn kill_mid_burst<F, Fut>(
    server: &mut ServerProcess,
    pushes: usize,
    clients: usize,
    kill_after: usize,
    push: F,
) -> HashSet<usize>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let push = Arc::new(push);
    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (push, acknowledged) = (push.clone(), acknowledged.clone());
            tokio::spawn(async move {
                for i in (c..pushes).step_by(clients) {
                    if !push(i).await {
                        return;
                    }
                    acknowledged.lock().unwrap().insert(i);
                }
            })
        })
        .collect();
    while acknowledged.lock().unwrap().len() < kill_after {
        assert!(
            server.child.try_wait().unwrap().is_none(),
            "the server exited before the kill:\n{}",
            server.printed()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("wait");
    for task in tasks {
        task.await.expect("client task");
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() < pushes,
        "every push was acknowledged before the kill: nothing was cut short"
    );
    acknowledged
}
