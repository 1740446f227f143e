use std::io::Write;
use std::time::Duration;

use super::*;
use crate::subject::Subject;
use crate::throttle::LoginLimits;

fn hash(password: &str) -> String {
    bcrypt::hash(password, 4).unwrap()
}

fn write(path: &Path, text: &str) {
    // As editors and `htpasswd` do: a new file renamed over the old one.
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.sync_all().unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn guard() -> Arc<LoginGuard> {
    Arc::new(LoginGuard::new(LoginLimits {
        failures_per_user: 3,
        ..LoginLimits::default()
    }))
}

fn basic(user: &str, password: &str) -> Credentials {
    Credentials::Basic {
        user: user.into(),
        password: password.into(),
    }
}

async fn login(
    p: &HtpasswdProvider,
    user: &str,
    password: &str,
) -> Result<Option<String>, AuthenticationError> {
    Ok(p.authenticate(&basic(user, password), None)
        .await?
        .map(|(identity, source)| {
            assert_eq!(source, TokenSource::External);
            assert_eq!(identity.provider(), PROVIDER);
            assert!(identity.provider_groups().is_empty());
            identity.subject().to_string()
        }))
}

fn is_invalid<T: fmt::Debug>(r: Result<T, AuthenticationError>) -> bool {
    matches!(r, Err(AuthenticationError::InvalidCredentials))
}

#[tokio::test]
async fn verifies_bcrypt_and_says_not_mine_for_others() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    // Written by `htpasswd -nbB -C 5 alice alice-password`: the $2y$ form.
    write(
        &path,
        &format!(
            "alice:$2y$05$spAZkDbBDsRryIgEdldDgevqNrg0c1wHNBhQtACnC6li7m2UAqOqu\nbob:{}\n",
            hash("bob-pw")
        ),
    );
    let p = HtpasswdProvider::open(&path, guard()).unwrap();
    assert_eq!(p.user_count(), 2);
    assert_eq!(
        login(&p, "alice", "alice-password")
            .await
            .unwrap()
            .as_deref(),
        Some("htpasswd:alice")
    );
    assert_eq!(
        login(&p, "bob", "bob-pw").await.unwrap().as_deref(),
        Some("htpasswd:bob")
    );
    assert!(is_invalid(login(&p, "bob", "wrong").await));
    assert!(is_invalid(login(&p, "bob", "").await));
    assert_eq!(
        login(&p, "carol", "x").await.unwrap(),
        None,
        "not in the file"
    );
    assert_eq!(
        login(&p, "Bob", "bob-pw").await.unwrap(),
        None,
        "names are exact"
    );
    let bearer = Credentials::Bearer("bob-pw".into());
    assert!(p.authenticate(&bearer, None).await.unwrap().is_none());
    // An access token as the password is for the registry's own users.
    let (_, token) =
        crate::AccessToken::generate("x".parse().unwrap(), "t".parse().unwrap(), None).unwrap();
    assert_eq!(login(&p, "bob", token.expose()).await.unwrap(), None);
    let subject: Subject = "htpasswd:bob".parse().unwrap();
    assert!(matches!(subject, Subject::External(_)));
}

#[tokio::test]
async fn changes_are_picked_up_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    write(&path, &format!("alice:{}\n", hash("one")));
    let p = HtpasswdProvider::open(&path, guard()).unwrap();
    assert!(login(&p, "alice", "one").await.unwrap().is_some());
    assert_eq!(login(&p, "bob", "two").await.unwrap(), None);

    // Added and changed, found by the once-a-second check on a login.
    write(
        &path,
        &format!("alice:{}\nbob:{}\n", hash("new-one"), hash("two")),
    );
    tokio::time::sleep(CHECK_INTERVAL + Duration::from_millis(100)).await;
    assert_eq!(
        login(&p, "bob", "two").await.unwrap().as_deref(),
        Some("htpasswd:bob")
    );
    assert!(
        is_invalid(login(&p, "alice", "one").await),
        "the remembered old password stops working with the new hash"
    );
    assert!(login(&p, "alice", "new-one").await.unwrap().is_some());

    // Removed: no longer this provider's user.
    write(&path, &format!("bob:{}\n", hash("two")));
    assert!(p.reload().await.unwrap());
    assert_eq!(login(&p, "alice", "new-one").await.unwrap(), None);
    assert!(!p.reload().await.unwrap(), "unchanged");
}

#[tokio::test]
async fn a_broken_or_missing_file_keeps_the_last_good_contents() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    write(&path, &format!("bob:{}\n", hash("two")));
    let p = HtpasswdProvider::open(&path, guard()).unwrap();

    write(&path, "bob-without-a-colon\n");
    assert!(matches!(
        p.reload().await,
        Err(HtpasswdError::MissingColon { line: 1, .. })
    ));
    assert!(login(&p, "bob", "two").await.unwrap().is_some());
    assert!(
        !p.reload().await.unwrap(),
        "a refused version is not read again"
    );

    std::fs::remove_file(&path).unwrap();
    assert!(matches!(p.reload().await, Err(HtpasswdError::Read { .. })));
    assert!(login(&p, "bob", "two").await.unwrap().is_some());

    write(
        &path,
        &format!(
            "carol:{}\nmd5:$apr1$E.GNHqq3$y4lbbJJqqbSXADgP6dUFd/\n",
            hash("three")
        ),
    );
    assert!(p.reload().await.unwrap());
    assert_eq!(p.user_count(), 1, "the $apr1$ line is refused");
    assert_eq!(login(&p, "bob", "two").await.unwrap(), None);
    assert!(login(&p, "carol", "three").await.unwrap().is_some());
}

#[test]
fn open_refuses_what_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing");
    assert!(matches!(
        HtpasswdProvider::open(&missing, guard()),
        Err(HtpasswdError::Read { .. })
    ));
    let bad = dir.path().join("bad");
    write(&bad, "no colon here\n");
    let e = HtpasswdProvider::open(&bad, guard()).unwrap_err();
    assert!(e.to_string().contains("line 1"), "{e}");
}

#[tokio::test]
async fn failures_count_in_the_shared_limiter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    write(&path, &format!("bob:{}\n", hash("two")));
    let guard = guard();
    let p = HtpasswdProvider::open(&path, guard.clone()).unwrap();
    let peer: IpAddr = "192.0.2.1".parse().unwrap();
    for _ in 0..3 {
        assert!(matches!(
            p.authenticate(&basic("bob", "wrong"), Some(peer)).await,
            Err(AuthenticationError::InvalidCredentials)
        ));
    }
    assert_eq!(guard.failures().tracked(), (1, 1));
    assert!(matches!(
        p.authenticate(&basic("bob", "two"), Some(peer)).await,
        Err(AuthenticationError::RateLimited { .. })
    ));
    // The registry's own authenticator sees the same lock.
    let store: Arc<dyn crate::AuthStore> = Arc::new(crate::MemoryAuthStore::new());
    let local =
        crate::Authenticator::with_guard(store, crate::PasswordHasher::insecure_fast(), guard)
            .unwrap();
    assert!(matches!(
        local.basic_from("bob", "x", None).await,
        Err(AuthenticationError::RateLimited { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verified_login_skips_bcrypt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    write(
        &path,
        &format!("bob:{}\ncarol:{}\n", hash("two"), hash("three")),
    );
    let guard = Arc::new(LoginGuard::new(LoginLimits {
        password_checks: 1,
        password_check_wait: Duration::from_millis(20),
        ..LoginLimits::default()
    }));
    let p = HtpasswdProvider::open(&path, guard.clone()).unwrap();
    assert!(login(&p, "bob", "two").await.unwrap().is_some());
    // Hold the only bcrypt slot: a new check is "busy", a remembered one
    // needs no slot.
    let (held_tx, held_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
    let holder = {
        let guard = guard.clone();
        tokio::spawn(async move {
            guard
                .run_check(move || {
                    held_tx.send(()).unwrap();
                    release_rx.recv().unwrap();
                })
                .await
        })
    };
    tokio::task::spawn_blocking(move || held_rx.recv().unwrap())
        .await
        .unwrap();
    assert!(login(&p, "bob", "two").await.unwrap().is_some());
    assert!(matches!(
        login(&p, "carol", "three").await,
        Err(AuthenticationError::Busy { .. })
    ));
    release_tx.send(()).unwrap();
    holder.await.unwrap().unwrap();
}
