//! The typed client (`registry_api::client`) against the registry served
//! in process on a loopback port, with access control off and on, and
//! against small stand-ins that answer wrong bytes or other challenges.
#![cfg(feature = "client")]

mod common;

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use futures::StreamExt;
use registry_api::client::{Client, ClientError, Page};
use registry_api::model::admin::{BindingRequest, NewAccessToken, NewUser, PruneRequest};
use registry_api::{router, Registry};
use registry_auth::{ClusterRole, Role};
use registry_core::{media_type, Digest, Reference, RepositoryName, Tag};

use common::{image_manifest, with_access_control, PASSWORD};

/// Serves `app` on 127.0.0.1; its `http://` URL.
async fn serve(app: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn repo(name: &str) -> RepositoryName {
    name.parse().unwrap()
}

fn tag(name: &str) -> Reference {
    Reference::Tag(name.parse().unwrap())
}

/// The registry with alice (editor of `team`), bob (viewer of `team`),
/// carol (no role) and admin (cluster-admin); its URL.
async fn secured() -> String {
    let (registry, _) = with_access_control(
        Registry::in_memory(),
        &["alice", "bob", "carol", "admin"],
        &[
            ("team", Role::Editor, "alice"),
            ("team", Role::Viewer, "bob"),
        ],
        &[(ClusterRole::ClusterAdmin, "admin")],
    )
    .await;
    let team = "team".parse().unwrap();
    registry.metadata().create_namespace(&team).await.unwrap();
    serve(router(&registry)).await
}

fn user(url: &str, name: &str) -> Client {
    Client::builder(url)
        .basic_auth(name, PASSWORD)
        .build()
        .unwrap()
}

/// Pushes a config and a layer (the layer streamed through an upload
/// session) and a manifest tagged `v`; the manifest's digest and bytes.
async fn push_image(client: &Client, repo: &RepositoryName, v: &str) -> (Digest, Vec<u8>) {
    let config = Bytes::from(format!(
        r#"{{"architecture":"amd64","os":"linux","v":"{v}"}}"#
    ));
    let config_digest = client.push_blob(repo, config.clone()).await.unwrap();
    // 3 MiB in 64 KiB chunks: a body that is never whole in memory.
    let chunk = Bytes::from(vec![v.as_bytes()[0]; 64 * 1024]);
    let chunks: Vec<Bytes> = std::iter::repeat_n(chunk, 48).collect();
    let mut digester = registry_core::Digester::new(registry_core::Algorithm::Sha256);
    chunks.iter().for_each(|c| digester.update(c));
    let layer_digest = digester.finish();
    let stream = futures::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    client
        .push_blob_stream(repo, &layer_digest, stream)
        .await
        .unwrap();
    assert_eq!(
        client.blob_size(repo, &layer_digest).await.unwrap(),
        Some(3 << 20)
    );
    let manifest = image_manifest(&config_digest, config.len(), &layer_digest, 3 << 20, None);
    let digest = client
        .put_manifest(
            repo,
            &tag(v),
            media_type::OCI_MANIFEST,
            manifest.clone().into(),
        )
        .await
        .unwrap();
    assert_eq!(digest, Digest::sha256_of(&manifest));
    (digest, manifest)
}

#[tokio::test]
async fn round_trip_without_access_control() {
    let url = serve(router(&Registry::in_memory())).await;
    let client = Client::builder(&url).build().unwrap();
    client.ping().await.unwrap();
    let app = repo("team/app");
    let (d1, m1) = push_image(&client, &app, "1").await;
    push_image(&client, &app, "2").await;
    push_image(&client, &repo("team/tools/build"), "3").await;

    let pulled = client.get_manifest(&app, &tag("1")).await.unwrap();
    assert_eq!(
        (pulled.digest.clone(), pulled.bytes.to_vec()),
        (d1.clone(), m1)
    );
    assert_eq!(pulled.media_type, media_type::OCI_MANIFEST);
    let by_digest = client
        .get_manifest(&app, &Reference::Digest(d1.clone()))
        .await
        .unwrap();
    assert_eq!(by_digest, pulled);

    let layer: registry_core::Manifest =
        registry_core::Manifest::parse(Some(media_type::OCI_MANIFEST), &pulled.bytes).unwrap();
    let layer = &layer.layers[0];
    let mut blob = client.pull_blob(&app, &layer.digest).await.unwrap();
    assert_eq!(blob.size(), Some(3 << 20));
    let mut read = 0;
    while let Some(chunk) = blob.next().await {
        read += chunk.unwrap().len();
    }
    assert_eq!(read, 3 << 20);

    // Paging follows the Link header.
    let first = client.tags(&app, &Page::first().size(1)).await.unwrap();
    assert_eq!(first.page.tags, vec!["1".parse::<Tag>().unwrap()]);
    assert_eq!(first.next.as_deref(), Some("1"));
    let all: Vec<String> = client
        .all_tags(&app)
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(all, ["1", "2"]);
    let page = client.catalog(&Page::first().size(1)).await.unwrap();
    assert_eq!(page.page.repositories, vec![app.clone()]);
    assert_eq!(
        client.all_repositories().await.unwrap(),
        vec![app.clone(), repo("team/tools/build")]
    );
    let referrers = client
        .referrers(&app, &d1, None, &Page::first())
        .await
        .unwrap();
    assert!(referrers.page.manifests.is_empty());

    // The Image API, paged by the helpers.
    let ns = "team".parse().unwrap();
    let streams = client.all_image_streams(&ns).await.unwrap();
    assert_eq!(streams.items.len(), 2);
    let stream = client.image_stream_all_tags(&app).await.unwrap();
    assert_eq!(stream.status.tags.len(), 2);
    let history = client
        .image_stream_tag_history(&app, &"1".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(history.image, Some(d1.clone()));
    assert_eq!(history.history[0].actor, "system:anonymous");
    let image = client.image(&d1).await.unwrap();
    assert_eq!(image.repositories[0].name, app);
    assert_eq!(
        client.all_visible_repositories().await.unwrap().items.len(),
        2
    );

    // Deleting the tag, then the manifest.
    client.delete_manifest(&app, &tag("1")).await.unwrap();
    client
        .delete_manifest(&app, &Reference::Digest(d1.clone()))
        .await
        .unwrap();
    let gone = client.get_manifest(&app, &Reference::Digest(d1)).await;
    assert!(
        matches!(&gone, Err(ClientError::NotFound { code, .. }) if code == "MANIFEST_UNKNOWN"),
        "{gone:?}"
    );
    // A digest reference that does not match the bytes is refused before sending.
    let wrong = Reference::Digest(Digest::sha256_of(b"other"));
    let refused = client
        .put_manifest(
            &app,
            &wrong,
            media_type::OCI_MANIFEST,
            Bytes::from_static(b"{}"),
        )
        .await;
    assert!(matches!(refused, Err(ClientError::DigestMismatch { .. })));
    // The admin API needs access control.
    assert!(matches!(
        client.whoami().await,
        Err(ClientError::NotFound { .. })
    ));
}

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
async fn admin_api_round_trip() {
    let url = secured().await;
    let admin = user(&url, "admin");
    assert_eq!(admin.whoami().await.unwrap().subject, "user:admin");

    let ns = "ops".parse().unwrap();
    assert_eq!(admin.create_namespace(&ns).await.unwrap().name, ns);
    let conflict = admin.create_namespace(&ns).await;
    assert!(
        matches!(&conflict, Err(ClientError::Api { status, .. }) if *status == StatusCode::CONFLICT),
        "{conflict:?}"
    );
    assert!(admin.namespaces().await.unwrap().namespaces.contains(&ns));

    let created = admin
        .create_user(&NewUser::new("dave", "dave-password"))
        .await
        .unwrap();
    assert_eq!(created.name.as_str(), "dave");
    let short = admin.create_user(&NewUser::new("erin", "short")).await;
    assert!(
        matches!(&short, Err(ClientError::Api { code, .. }) if code == "NAME_INVALID"),
        "{short:?}"
    );
    assert!(admin
        .users()
        .await
        .unwrap()
        .users
        .iter()
        .any(|u| u.name.as_str() == "dave"));

    let binding = BindingRequest::new("registry-viewer", "user:dave");
    let added = admin.add_role_binding(&ns, &binding).await.unwrap();
    assert_eq!(
        (added.role, added.subject.as_str()),
        (Role::Viewer, "user:dave")
    );
    assert_eq!(
        admin.role_bindings(&ns).await.unwrap().rolebindings,
        vec![added]
    );
    admin.remove_role_binding(&ns, &binding).await.unwrap();
    assert!(admin
        .role_bindings(&ns)
        .await
        .unwrap()
        .rolebindings
        .is_empty());
    let metrics = BindingRequest::new("metrics-viewer", "user:dave");
    admin.add_cluster_role_binding(&metrics).await.unwrap();
    assert_eq!(
        admin
            .cluster_role_bindings()
            .await
            .unwrap()
            .clusterrolebindings
            .len(),
        2
    );
    admin.remove_cluster_role_binding(&metrics).await.unwrap();

    let sa_name = "deployer".parse().unwrap();
    let sa = admin.create_service_account(&ns, &sa_name).await.unwrap();
    assert_eq!(sa.subject, "system:serviceaccount:ops:deployer");
    assert_eq!(
        admin.service_accounts(&ns).await.unwrap().serviceaccounts,
        vec![sa]
    );
    let secret = admin.pull_secret(&ns, &sa_name, false).await.unwrap();
    assert_eq!(secret.secret_type, "kubernetes.io/dockerconfigjson");
    assert_eq!(
        admin.pull_secret(&ns, &sa_name, false).await.unwrap(),
        secret
    );
    assert_ne!(
        admin.pull_secret(&ns, &sa_name, true).await.unwrap(),
        secret
    );
    admin.delete_service_account(&ns, &sa_name).await.unwrap();

    // An access token, used as the credentials of another client.
    let token = admin
        .create_token(&NewAccessToken::new(Some("ci".into()), Some(3600)))
        .await
        .unwrap();
    assert!(!format!("{token:?}").contains(&token.token));
    let with_token = Client::builder(&url)
        .access_token(&token.token)
        .build()
        .unwrap();
    assert_eq!(with_token.whoami().await.unwrap().subject, "user:admin");
    with_token.ping().await.unwrap();
    let listed = admin.tokens().await.unwrap().tokens;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].last_used.is_some());
    admin.delete_token(&token.info.id).await.unwrap();
    assert!(matches!(
        with_token.whoami().await,
        Err(ClientError::Unauthorized { .. })
    ));

    let report = admin
        .prune(&PruneRequest::new(true, Some(0), None))
        .await
        .unwrap();
    assert!(report.dry_run);
    admin.delete_user(&"dave".parse().unwrap()).await.unwrap();
    let policy: registry_api::model::admin::NamespacePolicy =
        serde_json::from_str(r#"{"immutable_tags":["v*"],"keep_tag_revisions":2}"#).unwrap();
    assert_eq!(
        admin.set_namespace_policy(&ns, &policy).await.unwrap(),
        policy
    );
    assert_eq!(admin.namespace_policy(&ns).await.unwrap(), policy);
    admin.delete_namespace(&ns, false).await.unwrap();
    let gone = admin.delete_namespace(&ns, true).await;
    assert!(
        matches!(&gone, Err(ClientError::NotFound { code, .. }) if code == "NAME_UNKNOWN"),
        "{gone:?}"
    );
}

/// A registry that serves wrong bytes: a blob that is not its digest, a
/// manifest whose digest header lies, and `/v2/` behind a Basic challenge.
fn liar() -> axum::Router {
    axum::Router::new()
        .route(
            "/v2/",
            get(|headers: HeaderMap| async move {
                if headers.contains_key("authorization") {
                    StatusCode::OK.into_response()
                } else {
                    let challenge = [("www-authenticate", "Basic realm=\"liar\"")];
                    (StatusCode::UNAUTHORIZED, challenge).into_response()
                }
            }),
        )
        .route(
            "/v2/team/app/blobs/{digest}",
            get(|| async { Bytes::from_static(b"not the blob you asked for") }),
        )
        .route(
            "/v2/team/app/manifests/{reference}",
            get(|| async {
                let headers = [
                    ("content-type", media_type::OCI_MANIFEST.to_owned()),
                    (
                        "docker-content-digest",
                        Digest::sha256_of(b"other").to_string(),
                    ),
                ];
                (headers, "{}")
            }),
        )
}

#[tokio::test]
async fn wrong_bytes_are_detected() {
    let url = serve(liar()).await;
    let client = Client::builder(&url).basic_auth("u", "p").build().unwrap();
    // A Basic challenge is answered with the Basic credentials.
    client.ping().await.unwrap();
    let anonymous = Client::builder(&url).build().unwrap();
    assert!(matches!(
        anonymous.ping().await,
        Err(ClientError::Unauthorized { .. })
    ));

    let app = repo("team/app");
    let wanted = Digest::sha256_of(b"the blob");
    let mismatch = client.pull_blob_bytes(&app, &wanted).await;
    assert!(
        matches!(&mismatch, Err(ClientError::DigestMismatch { expected, .. }) if *expected == wanted),
        "{mismatch:?}"
    );
    // Streaming: every chunk arrives, then the verdict.
    let items: Vec<_> = client
        .pull_blob(&app, &wanted)
        .await
        .unwrap()
        .collect()
        .await;
    assert!(items[0].is_ok());
    assert!(matches!(
        items.last(),
        Some(Err(ClientError::DigestMismatch { .. }))
    ));

    let by_tag = client.get_manifest(&app, &tag("v1")).await;
    assert!(
        matches!(by_tag, Err(ClientError::DigestMismatch { .. })),
        "{by_tag:?}"
    );
    let by_digest = client.get_manifest(&app, &Reference::Digest(wanted)).await;
    assert!(
        matches!(by_digest, Err(ClientError::DigestMismatch { .. })),
        "{by_digest:?}"
    );
}

#[test]
fn bad_configuration_is_a_typed_error() {
    assert!(matches!(
        Client::builder("ftp://host").build(),
        Err(ClientError::UnsupportedScheme { .. })
    ));
    assert!(matches!(
        Client::builder("not a url").build(),
        Err(ClientError::InvalidUrl { .. })
    ));
    assert!(matches!(
        Client::builder("https://host")
            .ca_pem("no pem here")
            .build(),
        Err(ClientError::InvalidCa { .. })
    ));
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

/// A body that never ends (and announces no length).
fn endless() -> axum::body::Body {
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    axum::body::Body::from_stream(futures::stream::repeat(chunk).map(Ok::<_, std::io::Error>))
}

/// A server whose every answer is an endless body: manifests, a JSON
/// list, and an error answer.
fn flood() -> axum::Router {
    axum::Router::new()
        .route(
            "/v2/team/app/manifests/{reference}",
            get(|| async { ([("content-type", media_type::OCI_MANIFEST)], endless()) }),
        )
        .route(
            "/v2/team/app/tags/list",
            get(|| async { ([("content-type", "application/json")], endless()) }),
        )
        .route(
            "/v2/team/gone/tags/list",
            get(|| async { (StatusCode::NOT_FOUND, endless()) }),
        )
        .route(
            "/v2/team/big/manifests/{reference}",
            get(|| async {
                let body = vec![b' '; 2048];
                ([("content-type", media_type::OCI_MANIFEST)], body)
            }),
        )
}

#[tokio::test]
async fn endless_or_oversized_answers_are_refused_at_a_bound() {
    let url = serve(flood()).await;
    let client = Client::builder(&url)
        .max_manifest_bytes(1024)
        .build()
        .unwrap();
    let limited = |r: Result<(), ClientError>, limit: u64| match r {
        Err(ClientError::TooLarge { limit: l, .. }) => assert_eq!(l, limit),
        other => panic!("expected TooLarge, got {other:?}"),
    };
    limited(
        client
            .get_manifest(&repo("team/app"), &tag("v1"))
            .await
            .map(|_| ()),
        1024,
    );
    // Announced as longer than the limit: refused before reading.
    limited(
        client
            .get_manifest(&repo("team/big"), &tag("v1"))
            .await
            .map(|_| ()),
        1024,
    );
    // JSON documents have their own (larger) bound.
    limited(
        client
            .tags(&repo("team/app"), &Page::first())
            .await
            .map(|_| ()),
        64 << 20,
    );
    // An error answer is sorted from its first bytes; the rest is not read.
    let gone = client.tags(&repo("team/gone"), &Page::first()).await;
    assert!(
        matches!(gone, Err(ClientError::NotFound { .. })),
        "{gone:?}"
    );
}
