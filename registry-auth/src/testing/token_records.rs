//! Conformance checks of the token records: refresh tokens, the token CA
//! and token-signing keys.

use time::{Duration, OffsetDateTime};

use super::{
    assert_exists, assert_not_found, assert_nothing_left, namespace, now, ok, service_account, tag,
    user, user_name,
};
use crate::credentials::AccessTokenId;
use crate::identity::Identity;
use crate::refresh::{RefreshToken, RefreshTokenSecret};
use crate::store::{AuthStore, ServiceAccount};
use crate::subject::Subject;
use crate::token::{TokenCa, TokenSigningKey};

fn refresh_token(owner: &Subject, created: OffsetDateTime) -> (RefreshToken, RefreshTokenSecret) {
    let identity = Identity::authenticated(owner.clone()).unwrap_or_else(|| panic!("principal"));
    let (mut token, secret) = RefreshToken::generate(
        &identity,
        "conformance/client"
            .parse()
            .unwrap_or_else(|e| panic!("{e}")),
        Some(created + Duration::days(30)),
        created,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    token.provider = "conformance".to_owned();
    token.groups = vec![
        "conformance:a".parse().unwrap_or_else(|e| panic!("{e}")),
        "conformance:b".parse().unwrap_or_else(|e| panic!("{e}")),
    ];
    (token, secret)
}

/// Create, find, list, touch and delete refresh tokens; deleting the owner
/// deletes them.
pub async fn refresh_tokens(store: &dyn AuthStore) {
    let t = tag();
    let alice_name = user_name(&t, "alice");
    let alice = Subject::User(alice_name.clone());
    let bob = Subject::User(user_name(&t, "bob"));
    ok("create alice", store.create_user(user(&alice_name)).await);
    let created = now();
    let (r1, s1) = refresh_token(&alice, created);
    let (r2, _) = refresh_token(&alice, created + Duration::seconds(1));
    let (r3, _) = refresh_token(&bob, created);
    for r in [&r2, &r1, &r3] {
        ok("create", store.create_refresh_token(r.clone()).await);
    }
    let (mut same_hash, _) = refresh_token(&alice, created);
    same_hash.hash = r1.hash;
    assert_exists("same hash", store.create_refresh_token(same_hash).await);
    let (mut same_id, _) = refresh_token(&alice, created);
    same_id.id = r1.id;
    assert_exists("same id", store.create_refresh_token(same_id).await);

    let found = ok("find", store.find_refresh_token_by_hash(&s1.hash()).await);
    assert_eq!(
        found.as_ref(),
        Some(&r1),
        "a refresh token reads back as written"
    );
    let unknown = RefreshTokenSecret::generate().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        ok(
            "find unknown",
            store.find_refresh_token_by_hash(&unknown.hash()).await
        ),
        None
    );
    let of_alice: Vec<_> = ok("list alice", store.list_refresh_tokens(Some(&alice)).await)
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(of_alice, [r1.id, r2.id]);
    let all: Vec<_> = ok("list all", store.list_refresh_tokens(None).await)
        .into_iter()
        .filter(|r| r.owner.to_string().contains(&t))
        .map(|r| r.id)
        .collect();
    assert_eq!(all.len(), 3);

    let used = created + Duration::minutes(5);
    ok("touch", store.touch_refresh_token(&r1.id, used).await);
    let found = ok(
        "find touched",
        store.find_refresh_token_by_hash(&r1.hash).await,
    );
    assert_eq!(found.and_then(|r| r.last_used), Some(used));
    assert_not_found(
        "touch missing",
        store
            .touch_refresh_token(&AccessTokenId::generate(), used)
            .await,
    );

    ok("delete r2", store.delete_refresh_token(&r2.id).await);
    assert_not_found("delete again", store.delete_refresh_token(&r2.id).await);
    // Deleting alice takes r1 with her; bob's stays.
    ok("delete alice", store.delete_user(&alice_name).await);
    assert_eq!(
        ok(
            "find cascaded",
            store.find_refresh_token_by_hash(&r1.hash).await
        ),
        None
    );
    assert_eq!(
        ok("list bob", store.list_refresh_tokens(Some(&bob)).await),
        std::slice::from_ref(&r3)
    );
    ok("delete r3", store.delete_refresh_token(&r3.id).await);

    // A service account's go with it too.
    let sa = service_account(&namespace(&t, "ns"), &t, "robot");
    let record = ServiceAccount {
        account: sa.clone(),
        created: now(),
    };
    ok("create sa", store.create_service_account(record).await);
    let (r4, _) = refresh_token(&Subject::ServiceAccount(sa.clone()), created);
    ok("create r4", store.create_refresh_token(r4.clone()).await);
    ok("delete sa", store.delete_service_account(&sa).await);
    assert_eq!(
        ok(
            "find cascaded",
            store.find_refresh_token_by_hash(&r4.hash).await
        ),
        None
    );
    assert_nothing_left(store, &t).await;
}

/// The token CA is made once and kept; signing keys are added, listed in
/// (signs_from, kid) order and deleted.
pub async fn token_keys(store: &dyn AuthStore) {
    let at = now();
    let ca = match ok("token_ca", store.token_ca().await) {
        Some(existing) => existing,
        None => {
            let fresh = TokenCa::generate(at).unwrap_or_else(|e| panic!("{e}"));
            match store.create_token_ca(fresh.clone()).await {
                Ok(()) => fresh,
                // Another check sharing the store made it meanwhile.
                Err(crate::AuthStoreError::AlreadyExists(_)) => {
                    ok("token_ca", store.token_ca().await)
                        .unwrap_or_else(|| panic!("the token CA vanished"))
                }
                Err(e) => panic!("create_token_ca: unexpected error {e}"),
            }
        }
    };
    assert_eq!(
        ok("token_ca again", store.token_ca().await).as_ref(),
        Some(&ca),
        "the CA reads back as written"
    );
    let other = TokenCa::generate(at).unwrap_or_else(|e| panic!("{e}"));
    assert_exists("a second CA", store.create_token_ca(other).await);

    // Far in the future, so that they sort after any real key.
    let far = at + Duration::days(3650);
    let later =
        TokenSigningKey::generate(&ca, at, far + Duration::days(1), far + Duration::days(40))
            .unwrap_or_else(|e| panic!("{e}"));
    let sooner = TokenSigningKey::generate(&ca, at, far, far + Duration::days(40))
        .unwrap_or_else(|e| panic!("{e}"));
    ok(
        "add later",
        store.add_token_signing_key(later.clone()).await,
    );
    ok(
        "add sooner",
        store.add_token_signing_key(sooner.clone()).await,
    );
    assert_exists(
        "same kid",
        store.add_token_signing_key(sooner.clone()).await,
    );
    let listed: Vec<_> = ok("list", store.list_token_signing_keys().await)
        .into_iter()
        .filter(|k| k.kid == sooner.kid || k.kid == later.kid)
        .collect();
    assert_eq!(
        listed,
        [sooner.clone(), later.clone()],
        "keys read back, in order"
    );
    for key in [&sooner, &later] {
        ok("delete key", store.delete_token_signing_key(&key.kid).await);
    }
    assert_not_found(
        "delete again",
        store.delete_token_signing_key(&sooner.kid).await,
    );
    let left = ok("list", store.list_token_signing_keys().await);
    assert!(
        !left
            .iter()
            .any(|k| k.kid == sooner.kid || k.kid == later.kid),
        "signing keys left behind"
    );
}
