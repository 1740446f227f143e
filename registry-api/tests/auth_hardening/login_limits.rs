//! Failed-login limits per name and address, and a bound on concurrent password checks.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use registry_api::AuthSettings;
use registry_auth::{AuthStore, LoginLimits, Password, PasswordHasher};

use crate::common::{basic, PASSWORD};
use crate::support::{from, world};

// Fails before: wrong passwords were checked without limit, each one a full
// argon2 run, however many came from one name or address.
#[tokio::test]
async fn failed_logins_lock_the_name_and_the_address() {
    let mut settings = AuthSettings::default();
    settings.login = LoginLimits {
        failures_per_user: 3,
        failures_per_peer: 6,
        ..LoginLimits::default()
    };
    let w = world(settings).await;
    let attacker = "192.0.2.66:5555";
    let get = |auth: String, addr: &'static str| {
        let client = &w.client;
        async move {
            from(
                client,
                addr,
                Method::GET,
                "/v2/",
                &[("authorization", &auth)],
                "",
            )
            .await
        }
    };
    // bob logs in once: his credentials are remembered.
    assert_eq!(
        get(basic("bob", PASSWORD), attacker).await.status,
        StatusCode::OK
    );
    for _ in 0..3 {
        let r = get(basic("alice", "wrong"), attacker).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }
    // alice's name is locked, even with the right password, from anywhere.
    let r = get(basic("alice", PASSWORD), "198.51.100.1:1").await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.code(), "TOOMANYREQUESTS");
    let retry: u64 = r.header("retry-after").parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    for user in ["carol", "nobody", "Not A Name"] {
        let r = get(basic(user, "wrong"), attacker).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{user}");
    }
    // Six failures from the address: it is locked for every login, a
    // remembered one included (before, bob's right password answered 200
    // there while wrong ones answered 429: a guesser learnt the password at
    // the speed of an HMAC)…
    let r = get(basic("carol", PASSWORD), attacker).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        get(basic("bob", PASSWORD), attacker).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    // …but not elsewhere.
    let r = get(basic("carol", PASSWORD), "198.51.100.1:1").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        get(basic("bob", PASSWORD), "198.51.100.1:1").await.status,
        StatusCode::OK
    );
    // While a name is locked, its owner's remembered login still gets in
    // from an address in good standing, and each other guess there counts
    // against that address, which is locked in turn.
    let guesser = "203.0.113.7:7";
    for _ in 0..3 {
        let r = get(basic("bob", "wrong"), "192.0.2.99:1").await;
        assert_ne!(r.status, StatusCode::OK);
    }
    assert_eq!(
        get(basic("bob", PASSWORD), "198.51.100.1:1").await.status,
        StatusCode::OK
    );
    for _ in 0..6 {
        let r = get(basic("bob", "guess"), guesser).await;
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS);
    }
    assert_eq!(
        get(basic("bob", PASSWORD), guesser).await.status,
        StatusCode::TOO_MANY_REQUESTS,
        "the guessing address is locked, the right password included"
    );
}

// Fails before: there was no bound; every wrong password ran argon2 at
// once on the blocking pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn saturated_password_checks_answer_429() {
    let mut settings = AuthSettings::default();
    settings.login = LoginLimits {
        password_checks: 1,
        password_check_wait: Duration::from_millis(20),
        failures_per_user: 0,
        failures_per_peer: 0,
        ..LoginLimits::default()
    };
    let w = world(settings).await;
    // A user whose stored hash has the real (slow) parameters.
    let slow = PasswordHasher::new()
        .hash(&Password::new(PASSWORD))
        .unwrap();
    w.store
        .set_password(&"carol".parse().unwrap(), Some(slow))
        .await
        .unwrap();
    let client = Arc::new(w.client);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let auth = basic("carol", &format!("wrong-{i}"));
            from(
                &client,
                "192.0.2.1:1",
                Method::GET,
                "/v2/",
                &[("authorization", &auth)],
                "",
            )
            .await
        }));
    }
    let mut busy = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match r.status {
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(r.code(), "TOOMANYREQUESTS");
                assert!(!r.header("retry-after").is_empty());
                busy += 1;
            }
            other => assert_eq!(other, StatusCode::UNAUTHORIZED),
        }
    }
    assert!(
        busy > 0,
        "one slot and a 20 ms wait: some of 8 must be refused"
    );
}
