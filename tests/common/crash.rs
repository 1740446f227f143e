//! A server cut off in the middle of a burst of pushes, for the crash tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::examples::ServerProcess;

/// What a burst cut short left: when each acknowledged push was answered,
/// and when the server was stopped.
pub struct Burst {
    pub acknowledged: HashMap<usize, Instant>,
    pub cut: Instant,
}

/// Runs `push(i)` for every `i` in `0..pushes` from `clients` concurrent
/// tasks (client `c` pushes `c`, `c + clients`, … in order and stops at its
/// first failure). Once `cut_when(acknowledged, elapsed)` holds (how many
/// pushes were acknowledged, `push` returning `true`, and how long ago the
/// burst began) it stops `server` with SIGSTOP, runs `frozen` (the
/// server answers nothing more from then on), kills it with SIGKILL and
/// waits for the clients. Panics when the server exits by itself first, or
/// when every push was acknowledged before the cut (nothing was cut short).
pub async fn kill_mid_burst<F, Fut>(
    server: &mut ServerProcess,
    pushes: usize,
    clients: usize,
    cut_when: impl Fn(usize, Duration) -> bool,
    push: F,
    frozen: impl FnOnce(),
) -> Burst
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = bool> + Send + 'static,
{
    let began = Instant::now();
    let push = Arc::new(push);
    let acknowledged = Arc::new(Mutex::new(HashMap::new()));
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (push, acknowledged) = (push.clone(), acknowledged.clone());
            tokio::spawn(async move {
                for i in (c..pushes).step_by(clients) {
                    if !push(i).await {
                        return;
                    }
                    acknowledged.lock().unwrap().insert(i, Instant::now());
                }
            })
        })
        .collect();
    while !cut_when(acknowledged.lock().unwrap().len(), began.elapsed()) {
        assert!(
            server.child.try_wait().unwrap().is_none(),
            "the server exited before the cut:\n{}",
            server.printed()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let pid = rustix::process::Pid::from_child(&server.child);
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).expect("SIGSTOP");
    let cut = Instant::now();
    frozen();
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("wait");
    for task in tasks {
        task.await.expect("client task");
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(
        acknowledged.len() < pushes,
        "every push was acknowledged before the cut: nothing was cut short"
    );
    Burst { acknowledged, cut }
}
