//! The provider without a directory: what it refuses before connecting,
//! and how it fails closed when the directory is gone or silent. The
//! flows against a real slapd are in `tests/ldap_directory.rs`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::*;
use crate::throttle::LoginLimits;

fn basic(user: &str, password: &str) -> Credentials {
    Credentials::Basic {
        user: user.into(),
        password: password.into(),
    }
}

fn provider(url: String) -> LdapProvider {
    let mut config = LdapConfig::new(url, "ou=people,dc=example");
    config.connect_timeout = Duration::from_millis(300);
    config.operation_timeout = Duration::from_millis(300);
    config.max_connections = 2;
    LdapProvider::new(config, Arc::new(LoginGuard::new(LoginLimits::default()))).unwrap()
}

/// A TCP server that accepts connections, counts them and never answers.
async fn black_hole() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ldap://{}", listener.local_addr().unwrap());
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            held.push(socket);
        }
    });
    (url, accepted)
}

#[tokio::test]
async fn refuses_before_any_bind() {
    let (url, accepted) = black_hole().await;
    let p = provider(url);
    // An empty password would be an unauthenticated bind.
    assert!(p
        .authenticate(&basic("alice", ""), None)
        .await
        .unwrap()
        .is_none());
    assert!(p
        .authenticate(&Credentials::Bearer("x".into()), None)
        .await
        .unwrap()
        .is_none());
    // A name that cannot be `ldap:<name>` (control characters, spaces).
    for name in ["a\0b", "a b", "tab\t", ""] {
        assert!(p
            .authenticate(&basic(name, "pw"), None)
            .await
            .unwrap()
            .is_none());
    }
    let (_, token) =
        crate::AccessToken::generate("x".parse().unwrap(), "t".parse().unwrap(), None).unwrap();
    assert!(p
        .authenticate(&basic("alice", token.expose()), None)
        .await
        .unwrap()
        .is_none());
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        0,
        "nothing reached the directory"
    );
}

#[tokio::test]
async fn a_silent_directory_is_not_mine_within_the_timeouts() {
    let (url, accepted) = black_hole().await;
    let p = provider(url);
    let started = Instant::now();
    let answers = futures_join(&p, 4).await;
    // 4 logins, 2 connections: two wait for a connection and give up after
    // the operation timeout; none waits longer than the bounded total.
    assert!(answers.iter().all(|a| matches!(a, Ok(None))), "{answers:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(accepted.load(Ordering::SeqCst) <= 4);
}

#[tokio::test]
async fn logins_with_the_same_credentials_share_one_lookup() {
    let (url, accepted) = black_hole().await;
    let p = provider(url);
    let creds = basic("alice", "pw");
    let started = Instant::now();
    let answers =
        futures_util_join_all((0..6).map(|_| p.authenticate(&creds, None)).collect()).await;
    assert!(answers.iter().all(|a| matches!(a, Ok(None))), "{answers:?}");
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "one connection for six logins"
    );
    // Waiters wait for the one lookup, not one after another.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(p.lookups_in_flight(), 0, "nothing left behind");

    // A login dropped while waiting (its client hung up) leaves nothing
    // behind either.
    let abandoned =
        tokio::time::timeout(Duration::from_millis(50), p.authenticate(&creds, None)).await;
    assert!(abandoned.is_err());
    assert_eq!(p.lookups_in_flight(), 0);
}

async fn futures_join(
    p: &LdapProvider,
    n: usize,
) -> Vec<Result<Option<(Identity, TokenSource)>, AuthenticationError>> {
    let creds: Vec<_> = (0..n).map(|i| basic(&format!("user{i}"), "pw")).collect();
    let mut set = Vec::new();
    for c in &creds {
        set.push(p.authenticate(c, None));
    }
    let mut out = Vec::new();
    for f in set {
        out.push(f);
    }
    let mut results = Vec::new();
    let joined = futures_util_join_all(out).await;
    results.extend(joined);
    results
}

/// Polls every future to completion concurrently (no extra dependency).
async fn futures_util_join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).map(Some).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("every future ended"))
        .collect()
}

#[tokio::test]
async fn an_unreachable_directory_is_not_mine() {
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let p = provider(format!("ldap://127.0.0.1:{port}"));
    let started = Instant::now();
    assert!(p
        .authenticate(&basic("alice", "pw"), None)
        .await
        .unwrap()
        .is_none());
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn names_from_the_directory() {
    let p = provider("ldap://127.0.0.1:1".into());
    let id = p
        .identity(
            "alice",
            vec![
                "ops".into(),
                "release managers".into(),
                "ops".into(),
                "dévs".into(),
            ],
        )
        .unwrap();
    assert_eq!(id.subject().to_string(), "ldap:alice");
    assert_eq!(id.provider(), PROVIDER);
    let groups: Vec<_> = id.provider_groups().iter().map(|g| g.to_string()).collect();
    assert_eq!(
        groups,
        ["ldap:dévs", "ldap:ops"],
        "invalid and repeated names left out"
    );
    assert!(p.identity("bad uid", vec![]).is_none());
}

#[test]
fn config_errors_surface() {
    let e = LdapProvider::new(
        LdapConfig::new("ldapi:///run/slapd.sock", "dc=x"),
        Arc::new(LoginGuard::new(LoginLimits::default())),
    )
    .unwrap_err();
    assert!(
        matches!(e, LdapConfigError::UnsupportedScheme { .. }),
        "{e}"
    );
}
