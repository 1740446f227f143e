//! The LDAP provider against a real OpenLDAP directory: the one
//! `.ci/services/ldap.sh` starts (users and groups from
//! `.ci/services/ldap/directory.ldif`). Skipped, saying so, when
//! `REGISTRY_TEST_LDAP_URL` is unset.
//!
//!     eval "$(bash .ci/services/ldap.sh start /tmp/svc-ldap)"
//!     cargo test -p registry-auth --test ldap_directory

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use registry_auth::ldap::{LdapConfig, LdapProvider};
use registry_auth::{
    Authenticate, AuthenticationError, Credentials, Identity, LoginGuard, LoginLimits, Password,
};

struct Directory {
    url: String,
    ldaps_url: String,
    ca_file: String,
    bind_dn: String,
    bind_password: String,
    user_base: String,
    group_base: String,
}

fn directory(test: &str) -> Option<Directory> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    let Some(url) = var("REGISTRY_TEST_LDAP_URL") else {
        eprintln!(
            "SKIPPED {test}: REGISTRY_TEST_LDAP_URL is not set \
             (eval \"$(bash .ci/services/ldap.sh start DIR)\" runs a test directory)"
        );
        return None;
    };
    let need = |name: &str| {
        var(name).unwrap_or_else(|| panic!("{name} must be set with REGISTRY_TEST_LDAP_URL"))
    };
    let password_file = need("REGISTRY_TEST_LDAP_BIND_PASSWORD_FILE");
    Some(Directory {
        url,
        ldaps_url: need("REGISTRY_TEST_LDAPS_URL"),
        ca_file: need("REGISTRY_TEST_LDAP_CA_FILE"),
        bind_dn: need("REGISTRY_TEST_LDAP_BIND_DN"),
        bind_password: std::fs::read_to_string(password_file)
            .unwrap()
            .trim()
            .to_owned(),
        user_base: need("REGISTRY_TEST_LDAP_USER_BASE"),
        group_base: need("REGISTRY_TEST_LDAP_GROUP_BASE"),
    })
}

impl Directory {
    fn config(&self, url: &str) -> LdapConfig {
        let mut config = LdapConfig::new(url, &self.user_base)
            .with_bind(&self.bind_dn, Password::new(self.bind_password.as_str()))
            .with_group_base(&self.group_base);
        config.connect_timeout = Duration::from_secs(2);
        config.operation_timeout = Duration::from_secs(2);
        config
    }

    fn provider(&self, config: LdapConfig) -> LdapProvider {
        LdapProvider::new(config, guard()).unwrap()
    }
}

fn guard() -> Arc<LoginGuard> {
    Arc::new(LoginGuard::new(LoginLimits::default()))
}

fn basic(user: &str, password: &str) -> Credentials {
    Credentials::Basic {
        user: user.into(),
        password: password.into(),
    }
}

type Answer = Result<Option<Identity>, AuthenticationError>;

async fn login(p: &LdapProvider, user: &str, password: &str) -> Answer {
    login_from(p, user, password, None).await
}

async fn login_from(p: &LdapProvider, user: &str, password: &str, peer: Option<IpAddr>) -> Answer {
    Ok(p.authenticate(&basic(user, password), peer)
        .await?
        .map(|(identity, _)| identity))
}

fn described(identity: &Identity) -> (String, BTreeSet<String>) {
    assert_eq!(identity.provider(), "ldap");
    (
        identity.subject().to_string(),
        identity
            .provider_groups()
            .iter()
            .map(|g| g.to_string())
            .collect(),
    )
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn users_and_groups_over_plain_starttls_and_ldaps() {
    let Some(d) = directory("users_and_groups_over_plain_starttls_and_ldaps") else {
        return;
    };
    let mut starttls = d.config(&d.url);
    starttls.start_tls = true;
    starttls.ca_file = Some(d.ca_file.clone().into());
    let mut ldaps = d.config(&d.ldaps_url);
    ldaps.ca_file = Some(d.ca_file.clone().into());
    for (how, config) in [
        ("plain", d.config(&d.url)),
        ("StartTLS", starttls),
        ("LDAPS", ldaps),
    ] {
        let p = d.provider(config);
        let alice = login(&p, "alice", "alice-password")
            .await
            .unwrap()
            .expect(how);
        // "release managers" is not a valid group name: left out.
        assert_eq!(
            described(&alice),
            ("ldap:alice".into(), set(&["ldap:ops", "ldap:devs"])),
            "{how}"
        );
        let bob = login(&p, "bob", "bob-password").await.unwrap().expect(how);
        assert_eq!(described(&bob), ("ldap:bob".into(), set(&["ldap:devs"])));
        let carol = login(&p, "carol", "carol-password")
            .await
            .unwrap()
            .expect(how);
        assert_eq!(described(&carol), ("ldap:carol".into(), set(&[])));
        let emile = login(&p, "émile", "émile-password")
            .await
            .unwrap()
            .expect(how);
        assert_eq!(described(&emile).0, "ldap:émile");
    }
}

#[tokio::test]
async fn tls_needs_a_trusted_server() {
    let Some(d) = directory("tls_needs_a_trusted_server") else {
        return;
    };
    // The system's roots do not know the test CA: fail closed, quickly.
    let p = d.provider(d.config(&d.ldaps_url));
    let started = Instant::now();
    assert!(login(&p, "alice", "alice-password")
        .await
        .unwrap()
        .is_none());
    let mut starttls = d.config(&d.url);
    starttls.start_tls = true;
    let p = d.provider(starttls);
    assert!(login(&p, "alice", "alice-password")
        .await
        .unwrap()
        .is_none());
    assert!(started.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn wrong_passwords_and_injection_attempts_fail() {
    let Some(d) = directory("wrong_passwords_and_injection_attempts_fail") else {
        return;
    };
    let p = d.provider(d.config(&d.url));
    assert!(matches!(
        login(&p, "alice", "wrong").await,
        Err(AuthenticationError::InvalidCredentials)
    ));
    // Empty password: an unauthenticated bind would "succeed"; refused first.
    assert!(login(&p, "alice", "").await.unwrap().is_none());
    for name in [
        "*",
        "al*",
        "*)(uid=*",
        "alice)(|(uid=*",
        "alice)(objectClass=*",
        "alice\0",
        "*\u{0}",
        "alic\u{0435}", // Cyrillic е
        "star*",
        "star\\2auser",
    ] {
        let answer = login(&p, name, "alice-password").await;
        assert!(matches!(answer, Ok(None)), "{name:?}: {answer:?}");
        let answer = login(&p, name, "star-password").await;
        assert!(matches!(answer, Ok(None)), "{name:?}: {answer:?}");
    }
    // The `*` in this uid is matched literally, not as a wildcard.
    let star = login(&p, "star*user", "star-password")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(described(&star).0, "ldap:star*user");
    // Two entries with the same uid: neither logs in.
    assert!(login(&p, "twin", "twin-password").await.unwrap().is_none());
    // The directory's spelling of the uid names the user.
    let alice = login(&p, "ALICE", "alice-password").await.unwrap().unwrap();
    assert_eq!(described(&alice).0, "ldap:alice");
}

#[tokio::test]
async fn wrong_passwords_count_in_the_shared_limiter() {
    let Some(d) = directory("wrong_passwords_count_in_the_shared_limiter") else {
        return;
    };
    let guard = Arc::new(LoginGuard::new(LoginLimits {
        failures_per_user: 3,
        ..LoginLimits::default()
    }));
    let p = LdapProvider::new(d.config(&d.url), guard.clone()).unwrap();
    let peer: IpAddr = "192.0.2.7".parse().unwrap();
    for _ in 0..3 {
        assert!(matches!(
            login_from(&p, "bob", "wrong", Some(peer)).await,
            Err(AuthenticationError::InvalidCredentials)
        ));
    }
    assert!(matches!(
        login_from(&p, "bob", "bob-password", Some(peer)).await,
        Err(AuthenticationError::RateLimited { .. })
    ));
    assert!(guard.failures().locked("bob", None).is_some());
}

#[tokio::test]
async fn service_bind_problems_fail_closed() {
    let Some(d) = directory("service_bind_problems_fail_closed") else {
        return;
    };
    let mut wrong = d.config(&d.url);
    wrong.bind_password = Some(Password::new("not-the-bind-password"));
    let p = d.provider(wrong);
    assert!(login(&p, "alice", "alice-password")
        .await
        .unwrap()
        .is_none());
    // Anonymous searches see nothing in this directory (its ACLs).
    let mut anonymous = d.config(&d.url);
    anonymous.bind_dn = None;
    anonymous.bind_password = None;
    let p = d.provider(anonymous);
    assert!(login(&p, "alice", "alice-password")
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn too_many_groups_fail_closed() {
    let Some(d) = directory("too_many_groups_fail_closed") else {
        return;
    };
    let mut config = d.config(&d.url);
    config.max_groups = 1;
    let p = d.provider(config);
    assert!(login(&p, "alice", "alice-password")
        .await
        .unwrap()
        .is_none());
    assert!(login(&p, "bob", "bob-password").await.unwrap().is_some());
}

/// A TCP relay to the directory that the test can cut, as if slapd stopped.
struct Relay {
    url: String,
    task: tokio::task::JoinHandle<()>,
    accepted: Arc<std::sync::atomic::AtomicUsize>,
}

impl Relay {
    async fn to(target: &str) -> Relay {
        let upstream = target.trim_start_matches("ldap://").to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ldap://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            while let Ok((mut client, _)) = listener.accept().await {
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let upstream = upstream.clone();
                conns.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(&upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Relay {
            url,
            task,
            accepted,
        }
    }

    /// Stops accepting and cuts every relayed connection (dropping the
    /// task drops the listener and the JoinSet, which aborts them).
    fn cut(&self) {
        self.task.abort();
    }
}

#[tokio::test]
async fn a_burst_is_one_bind_and_a_stopped_directory_fails_closed() {
    let Some(d) = directory("a_burst_is_one_bind_and_a_stopped_directory_fails_closed") else {
        return;
    };
    let relay = Relay::to(&d.url).await;
    let p = d.provider(d.config(&relay.url));
    let started = Instant::now();
    assert!(login(&p, "alice", "alice-password")
        .await
        .unwrap()
        .is_some());
    let first = started.elapsed();
    let started = Instant::now();
    for _ in 0..100 {
        assert!(login(&p, "alice", "alice-password")
            .await
            .unwrap()
            .is_some());
    }
    eprintln!(
        "first login {first:?}; 100 remembered logins {:?}",
        started.elapsed()
    );
    assert_eq!(
        relay.accepted.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "101 logins, one connection to the directory"
    );

    // Twenty requests arriving together with new credentials: one bind.
    let before = relay.accepted.load(std::sync::atomic::Ordering::SeqCst);
    let p = Arc::new(p);
    let mut burst = tokio::task::JoinSet::new();
    for _ in 0..20 {
        let p = p.clone();
        burst.spawn(async move { login(&p, "bob", "bob-password").await });
    }
    while let Some(answer) = burst.join_next().await {
        assert!(answer.unwrap().unwrap().is_some());
    }
    assert_eq!(
        relay.accepted.load(std::sync::atomic::Ordering::SeqCst),
        before + 1,
        "20 concurrent logins, one connection to the directory"
    );
    assert_eq!(p.lookups_in_flight(), 0);

    relay.cut();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Remembered: still in (for the cache's time to live).
    assert!(login(&p, "alice", "alice-password")
        .await
        .unwrap()
        .is_some());
    // A wrong password is not served from the cache, and with the
    // directory gone it is not "no" either: not mine.
    assert!(login(&p, "alice", "wrong").await.unwrap().is_none());
    let started = Instant::now();
    assert!(login(&p, "carol", "carol-password")
        .await
        .unwrap()
        .is_none());
    p.forget_logins();
    assert!(login(&p, "alice", "alice-password")
        .await
        .unwrap()
        .is_none());
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}
