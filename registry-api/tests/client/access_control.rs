//! With access control on: the token flow, denials, identity tokens and the token CA.

use bytes::Bytes;
use registry_api::client::{Client, ClientError};
use registry_api::model::admin::NewAccessToken;
use registry_api::{router, Registry};
use registry_core::Digest;

use crate::common::PASSWORD;
use crate::support::{push_image, repo, secured, serve, tag, user};

#[tokio::test]
async fn token_flow_and_refusals_with_access_control() {
    let url = secured().await;
    let app = repo("team/app");

    // Wrong password: the token endpoint refuses it.
    let wrong = Client::builder(&url)
        .basic_auth("alice", "nope-nope")
        .build()
        .unwrap();
    assert!(matches!(
        wrong.ping().await,
        Err(ClientError::Unauthorized { .. })
    ));

    // alice pushes through registry tokens and is recorded as the actor.
    let alice = user(&url, "alice");
    alice.ping().await.unwrap();
    let (digest, manifest) = push_image(&alice, &app, "1").await;
    let history = alice
        .image_stream_tag_history(&app, &"1".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(history.history[0].actor, "alice");

    // bob may pull, not push: a token lacking push is a denial.
    let bob = user(&url, "bob");
    let pulled = bob.get_manifest(&app, &tag("1")).await.unwrap();
    assert_eq!(pulled.bytes.to_vec(), manifest);
    assert_eq!(pulled.digest, digest);
    let denied = bob.push_blob(&app, Bytes::from_static(b"x")).await;
    assert!(
        matches!(denied, Err(ClientError::Denied { .. })),
        "{denied:?}"
    );
    let stream = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"x"))]);
    let denied = bob
        .push_blob_stream(&app, &Digest::sha256_of(b"x"), stream)
        .await;
    assert!(
        matches!(denied, Err(ClientError::Denied { .. })),
        "{denied:?}"
    );

    // Anonymous callers get a 401 where they may not pull, carol a 403 on
    // the admin API.
    let anonymous = Client::builder(&url).build().unwrap();
    let refused = anonymous.get_manifest(&app, &tag("1")).await;
    assert!(
        matches!(refused, Err(ClientError::Unauthorized { .. })),
        "{refused:?}"
    );
    assert!(matches!(
        anonymous.whoami().await,
        Err(ClientError::Unauthorized { .. })
    ));
    let carol = user(&url, "carol");
    let denied = carol.create_namespace(&"mine".parse().unwrap()).await;
    assert!(
        matches!(denied, Err(ClientError::Denied { .. })),
        "{denied:?}"
    );
    assert!(carol.all_repositories().await.unwrap().is_empty());
    assert_eq!(alice.all_repositories().await.unwrap(), vec![app]);
}

#[tokio::test]
async fn identity_tokens_and_the_token_ca() {
    let url = secured().await;
    let anonymous = Client::builder(&url).build().unwrap();
    // A password trades for an identity token, which then works as the
    // credential on every API.
    let token = anonymous
        .identity_token("alice", PASSWORD, "registry-api-tests")
        .await
        .unwrap()
        .expect("an identity token");
    assert!(token.starts_with("rgr_"));
    let alice = Client::builder(&url).access_token(&token).build().unwrap();
    assert_eq!(alice.whoami().await.unwrap().subject, "user:alice");
    let team = repo("team/app");
    push_image(&alice, &team, "i").await;
    let listed = alice.tokens().await.unwrap();
    assert_eq!(listed.refresh_tokens.len(), 1);
    assert_eq!(listed.refresh_tokens[0].client_id, "registry-api-tests");
    // Wrong password: refused; an access token as the password: no
    // identity token (it is the long-lived credential already).
    assert!(matches!(
        anonymous.identity_token("alice", "wrong", "x").await,
        Err(ClientError::Unauthorized { .. })
    ));
    let created = alice
        .create_token(&NewAccessToken::new(Some("ci".into()), None))
        .await
        .unwrap();
    assert_eq!(
        anonymous
            .identity_token("any", &created.token, "x")
            .await
            .unwrap(),
        None
    );
    // Revoked with `DELETE /tokens/{id}`: it stops working at once.
    alice
        .delete_token(&listed.refresh_tokens[0].id)
        .await
        .unwrap();
    assert!(matches!(
        alice.whoami().await,
        Err(ClientError::Unauthorized { .. })
    ));
    // Without access control there is no token service.
    let open = serve(router(&Registry::in_memory())).await;
    let open = Client::builder(&open).build().unwrap();
    assert_eq!(open.identity_token("a", "b", "c").await.unwrap(), None);
    assert!(matches!(
        open.token_ca_pem().await,
        Err(ClientError::NotFound { .. })
    ));
    let pem = anonymous.token_ca_pem().await.unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
}
