//! The audit log names the host's user for a push made through host
//! authentication. A binary of its own: the log is captured with a
//! subscriber for this thread, which another test running at the same time
//! could keep from seeing the audit call sites.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::{as_user, team};

/// Everything written to the audit log while the returned guard lives.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_push_through_host_auth_is_in_the_audit_log_as_the_hosts_user() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_env_filter("audit=info")
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let registry = team().await;
    let alice = as_user(&registry, Some("alice"));
    alice.push_image("team/app", "v1", "host").await;

    // The audit log names her too.
    let log = captured.text();
    let line = log
        .lines()
        .find(|l| l.contains("manifest pushed"))
        .unwrap_or_else(|| panic!("no audit line for the push in {log:?}"));
    assert!(line.contains("actor=alice"), "{line}");
    assert!(line.contains("repository=team/app"), "{line}");
}
