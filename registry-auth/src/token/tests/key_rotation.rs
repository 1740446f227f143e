//! Signing keys rotating through the store, with replicas following.

use time::{Duration, OffsetDateTime};

use super::*;

#[tokio::test]
async fn keys_rotate_through_the_store_and_replicas_follow() {
    let store = store();
    let t0 = OffsetDateTime::now_utc();
    let a = issuer_on(&store).await;
    let b = issuer_on(&store).await; // a second replica on the same store
    assert_eq!(store.list_token_signing_keys().await.unwrap().len(), 1);
    let old = a
        .issue_at(&alice(), &[], TokenSource::Password, SERVICE, t0)
        .unwrap()
        .token;
    assert!(
        b.verify(old.expose()).await.is_ok(),
        "replicas share the key"
    );

    // Near the end of the period a successor is published, not yet signing.
    let period = Duration::days(30);
    let t1 = t0 + period - Duration::hours(12);
    a.refresh_at(t1).await.unwrap();
    let keys = store.list_token_signing_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(a.jwks().keys.len(), 2);
    let kid_of = |t: &RegistryToken| segments(t.expose()).0["kid"].as_str().unwrap().to_owned();
    let still = a
        .issue_at(&alice(), &[], TokenSource::Password, SERVICE, t1)
        .unwrap()
        .token;
    assert_eq!(kid_of(&still), keys[0].kid.as_str());

    // Its turn: the new key signs; the other replica, which never saw it,
    // reloads on the unknown kid and verifies.
    let t2 = t0 + period + Duration::minutes(1);
    a.refresh_at(t2).await.unwrap();
    let new = a
        .issue_at(&alice(), &[], TokenSource::Password, SERVICE, t2)
        .unwrap()
        .token;
    assert_eq!(kid_of(&new), keys[1].kid.as_str());
    assert!(
        b.verify_at(new.expose(), t2).is_err(),
        "b has not reloaded yet"
    );
    b.refresh_at(t2).await.unwrap();
    assert!(b.verify_at(new.expose(), t2).is_ok());
    // The old key still verifies what it signed.
    assert!(b
        .verify_at(still.expose(), t1 + Duration::minutes(1))
        .is_ok());

    // Once its tokens have expired, the old key goes, from the store too.
    let t3 = t2 + Duration::minutes(20);
    b.refresh_at(t3).await.unwrap();
    let keys_now = store.list_token_signing_keys().await.unwrap();
    assert_eq!(keys_now.len(), 1);
    assert_eq!(keys_now[0].kid, keys[1].kid);
    assert_eq!(b.jwks().keys.len(), 1);
    let fresh_replica = issuer_on(&store).await;
    assert!(matches!(
        fresh_replica.verify_at(still.expose(), t1 + Duration::minutes(1)),
        Err(TokenError::UnknownKey)
    ));
    // The CA never changed: a verifier's rootcertbundle stays valid.
    assert_eq!(a.ca_pem(), b.ca_pem());
}
