//! Events delivered to a real HTTP receiver (axum on 127.0.0.1, private
//! addresses allowed): every event type, signed, in order per webhook;
//! a receiver down for a while gets everything once it is back, once per
//! id; a rolled-back change raises nothing; the retry budget ends in a
//! visible, redeliverable failure; the SSRF guard refuses loopback.
//! The webhook and audit endpoints themselves: [`admin_api`].

mod admin_api;
#[path = "../common/mod.rs"]
mod common;
#[path = "../webhook_receiver/mod.rs"]
mod webhook_receiver;

use std::collections::HashSet;
use std::time::Duration;

use futures::StreamExt;
use registry_api::model::events::{AuditQuery, NewWebhookRequest};
use registry_api::{Caller, EventsConfig, Registry};
use registry_auth::{ClusterRole, Identity, Role, RoleBinding};
use registry_core::{media_type, Digest, Namespace, Reference, RepositoryName};
use registry_storage::{EventType, NewWebhook, Stores};
use webhook_receiver::Receiver;

const SECRET: &str = "receiver-secret-0123456789";
const WAIT: Duration = Duration::from_secs(20);

fn fast_events(allow_private: bool) -> EventsConfig {
    let mut c = EventsConfig::default();
    c.source = "https://registry.test".to_owned();
    c.allow_private = allow_private;
    c.poll_interval = Duration::from_millis(100);
    c.initial_backoff = Duration::from_millis(30);
    c.max_backoff = Duration::from_millis(200);
    c.max_attempts = 10_000;
    c
}

/// A registry with access control: `admin` is cluster-admin, `alice`
/// registry-admin of `team`, `bob` viewer there.
async fn registry(events: EventsConfig) -> Registry {
    registry_over(Stores::in_memory(), events).await
}

/// [`registry`] over filesystem blobs and SQLite metadata in `dir`.
async fn sqlite_registry(dir: &std::path::Path, events: EventsConfig) -> Registry {
    let durability = registry_storage::filesystem::Durability::None;
    let stores = Stores::data_dir(dir, durability).await.unwrap();
    registry_over(stores, events).await
}

async fn registry_over(stores: Stores, events: EventsConfig) -> Registry {
    let (auth, _) = common::auth_config(
        &["admin", "alice", "bob"],
        &[
            ("team", Role::Admin, "alice"),
            ("team", Role::Viewer, "bob"),
        ],
        &[(ClusterRole::ClusterAdmin, "admin")],
    )
    .await;
    let registry = Registry::builder(stores)
        .auth(auth)
        .events(events)
        .build()
        .await
        .unwrap();
    registry
        .metadata()
        .create_namespace(&ns("team"))
        .await
        .unwrap();
    registry
}

fn user(name: &str) -> Caller {
    Caller::new(Identity::user(name.parse().unwrap())).with_request_id(format!("req-{name}"))
}

fn ns(s: &str) -> Namespace {
    s.parse().unwrap()
}

fn repo(s: &str) -> RepositoryName {
    s.parse().unwrap()
}

/// Pushes an image whose bytes depend on `seed` to `repo:tag`; its digest.
async fn push(
    r: &Registry,
    caller: &Caller,
    repo: &RepositoryName,
    tag: &str,
    seed: &str,
) -> Digest {
    let config = format!("{{\"seed\":\"{seed}\"}}").into_bytes();
    let layer = format!("layer {seed}").into_bytes();
    for blob in [&config, &layer] {
        let digest = Digest::sha256_of(blob);
        let body = futures::stream::iter([Ok(bytes::Bytes::from(blob.clone()))]).boxed();
        r.push_blob(caller, repo, &digest, body).await.unwrap();
    }
    let manifest = common::image_manifest(
        &Digest::sha256_of(&config),
        config.len(),
        &Digest::sha256_of(&layer),
        layer.len(),
        None,
    );
    let reference: Reference = tag.parse().unwrap();
    let pushed = r
        .put_manifest(
            caller,
            repo,
            &reference,
            Some(media_type::OCI_MANIFEST),
            manifest.into(),
            &[],
        )
        .await
        .unwrap();
    pushed.digest
}

async fn webhook(r: &Registry, url: String, include_pulls: bool) -> u64 {
    let mut request = NewWebhookRequest::new(url);
    request.secret = Some(SECRET.to_owned());
    request.include_pulls = include_pulls;
    let created = r
        .create_webhook(&user("alice"), &ns("team"), request)
        .await
        .unwrap();
    assert_eq!(created.secret, SECRET);
    created.webhook.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_type_arrives_signed_and_in_order() {
    every_event_type(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_type_arrives_signed_and_in_order_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    every_event_type(Some(dir.path())).await;
}

/// The configured sinks are recorded by the time the registry is built:
/// the first change already reaches them (the test's runtime runs nothing
/// in the background before the check). A registry built later with other
/// sinks replaces them.
#[tokio::test]
async fn configured_sinks_are_in_place_before_the_first_change() {
    let stores = Stores::in_memory();
    let sink = |url: &str| NewWebhook {
        namespace: None,
        url: url.to_owned(),
        events: Vec::new(),
        secret: SECRET.to_owned(),
        include_pulls: false,
    };
    let mut config = fast_events(true);
    config.sinks = vec![sink("http://127.0.0.1:9/a"), sink("http://127.0.0.1:9/b")];
    let r = registry_over(stores.clone(), config.clone()).await;
    let urls = |r: &Registry| {
        let store = r.stores().events().unwrap().clone();
        async move {
            let recorded = store.webhooks(None).await.unwrap();
            recorded
                .into_iter()
                .map(|w| w.webhook.url)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        urls(&r).await,
        ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]
    );
    drop(r);
    config.sinks = vec![sink("http://127.0.0.1:9/b")];
    let r = Registry::builder(stores)
        .events(config)
        .build()
        .await
        .unwrap();
    assert_eq!(urls(&r).await, ["http://127.0.0.1:9/b"]);
}

async fn every_event_type(sqlite: Option<&std::path::Path>) {
    let receiver = Receiver::start(SECRET).await;
    let mut config = fast_events(true);
    config.sinks = vec![NewWebhook {
        namespace: None,
        url: receiver.url("cluster"),
        events: Vec::new(),
        secret: SECRET.to_owned(),
        include_pulls: false,
    }];
    let r = match sqlite {
        Some(dir) => sqlite_registry(dir, config).await,
        None => registry(config).await,
    };
    let id = webhook(&r, receiver.url("team"), true).await;
    // Listing never shows the secret.
    let listed =
        serde_json::to_string(&r.webhooks(&user("alice"), &ns("team")).await.unwrap()).unwrap();
    assert!(
        listed.contains(&receiver.url("team")) && !listed.contains(SECRET),
        "{listed}"
    );

    let (alice, admin) = (user("alice"), user("admin"));
    let app = repo("team/app");
    let first = push(&r, &alice, &app, "v1", "one").await;
    let second = push(&r, &alice, &app, "v1", "two").await;
    // A HEAD is a check, not a pull: only the GET raises one.
    r.head_manifest(&alice, &app, &"v1".parse().unwrap())
        .await
        .unwrap();
    r.get_manifest(&alice, &app, &"v1".parse().unwrap())
        .await
        .unwrap();
    r.delete_manifest(&alice, &app, &"v1".parse().unwrap())
        .await
        .unwrap();
    r.delete_manifest(&alice, &app, &Reference::Digest(first.clone()))
        .await
        .unwrap();
    let sa = registry_auth::ServiceAccountRef {
        namespace: ns("team"),
        name: "ci".parse().unwrap(),
    };
    r.create_service_account(&alice, sa.clone()).await.unwrap();
    r.managed_pull_secret(&alice, &sa, true).await.unwrap();
    let binding = RoleBinding {
        namespace: ns("team"),
        role: Role::Viewer,
        subject: registry_auth::Subject::ServiceAccount(sa.clone()),
    };
    r.add_role_binding(&alice, binding.clone()).await.unwrap();
    r.remove_role_binding(&alice, &binding).await.unwrap();
    r.delete_service_account(&alice, &sa).await.unwrap();
    let (token, _secret) = r
        .create_access_token(&alice, "ci".parse().unwrap(), None)
        .await
        .unwrap();
    r.delete_access_token(&alice, &token.id).await.unwrap();
    r.set_namespace_policy(&alice, &ns("team"), Default::default())
        .await
        .unwrap();
    r.delete_image_stream(&alice, &app).await.unwrap();
    r.create_namespace(&admin, &ns("other")).await.unwrap();
    let carol: registry_auth::UserName = "carol".parse().unwrap();
    let password = || registry_auth::Password::new("carol-password-1");
    r.create_user(&admin, carol.clone(), password())
        .await
        .unwrap();
    r.set_password(&admin, &carol, None, password())
        .await
        .unwrap();
    r.delete_user(&admin, &carol).await.unwrap();
    r.delete_namespace(&admin, &ns("team"), true).await.unwrap();

    // The cluster sink sees every type but pulls; the team webhook every
    // event of the team, pulls included.
    let all: HashSet<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    let mut all_but_pulls = all.clone();
    all_but_pulls.remove("io.registry.manifest.pulled");
    receiver
        .wait_for(WAIT, "every event type", |got| {
            let types = |path: Option<&str>| -> HashSet<&str> {
                got.iter()
                    .filter(|g| path.is_none_or(|p| g.path == p))
                    .map(|g| g.event.event_type.as_str())
                    .collect()
            };
            types(None) == all
                && types(Some("cluster")) == all_but_pulls
                && got.iter().any(|g| {
                    g.path == "team" && g.event.event_type == "io.registry.namespace.deleted"
                })
        })
        .await;
    assert_eq!(receiver.bad_signatures(), 0);
    let team = receiver.received_at("team");
    let cluster = receiver.received_at("cluster");
    assert!(cluster
        .iter()
        .all(|e| e.event_type != "io.registry.manifest.pulled"));
    assert!(team
        .iter()
        .all(|e| e.data["namespace"] == "team" && !e.event_type.starts_with("io.registry.user.")));
    let pulls = team
        .iter()
        .filter(|e| e.event_type == "io.registry.manifest.pulled")
        .count();
    assert_eq!(pulls, 1, "one GET, one pull; the HEAD raised none");

    // In order: what the team webhook received is the team's audit trail.
    let audit = r
        .audit(
            &admin,
            AuditQuery {
                namespace: Some("team".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let trail: Vec<&str> = audit.items.iter().map(|e| e.event.id.as_str()).collect();
    let got: Vec<&str> = team.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(got, trail, "delivered in the order recorded");
    let ids: HashSet<&str> = got.iter().copied().collect();
    assert_eq!(ids.len(), got.len(), "no duplicate ids");

    // The push's document.
    let pushed = &team[0];
    assert_eq!(pushed.event_type, "io.registry.manifest.pushed");
    assert_eq!(pushed.specversion, "1.0");
    assert_eq!(pushed.source, "https://registry.test");
    assert_eq!(pushed.subject.as_deref(), Some("team/app:v1"));
    assert_eq!(pushed.data["repository"], "team/app");
    assert_eq!(pushed.data["tags"], serde_json::json!(["v1"]));
    assert_eq!(pushed.data["digest"], first.as_str());
    assert_eq!(pushed.data["media_type"], media_type::OCI_MANIFEST);
    assert!(pushed.data["size"].as_u64().unwrap() > 0);
    assert_eq!(pushed.data["actor"], "alice");
    assert_eq!(pushed.data["request_id"], "req-alice");
    let moved = team
        .iter()
        .find(|e| e.event_type == "io.registry.tag.moved")
        .unwrap();
    assert_eq!(moved.data["previous_digest"], first.as_str());
    assert_eq!(moved.data["digest"], second.as_str());
    // Never a secret in an event.
    let everything = serde_json::to_string(&receiver.received_at("cluster")).unwrap();
    assert!(!everything.contains("carol-password-1"));

    // Every delivery of the webhook is recorded as delivered.
    let deliveries = r
        .webhook_deliveries(&admin, &ns("team"), id, None, None)
        .await
        .unwrap();
    assert_eq!(deliveries.items.len(), team.len());
    assert!(deliveries
        .items
        .iter()
        .all(|d| d.status == "delivered" && d.last_code == Some(204)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_everything_once() {
    receiver_down(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_everything_once_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    receiver_down(Some(dir.path())).await;
}

async fn receiver_down(sqlite: Option<&std::path::Path>) {
    let mut receiver = Receiver::start(SECRET).await;
    let r = match sqlite {
        Some(dir) => sqlite_registry(dir, fast_events(true)).await,
        None => registry(fast_events(true)).await,
    };
    let id = webhook(&r, receiver.url("team"), false).await;
    let alice = user("alice");
    let app = repo("team/app");

    // Port closed: connections refused.
    receiver.close().await;
    for i in 0..10 {
        push(&r, &alice, &app, &format!("v{i}"), &format!("seed-{i}")).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let page = r
        .webhook_deliveries(&alice, &ns("team"), id, None, None)
        .await
        .unwrap();
    assert_eq!(page.items.len(), 10);
    let head = page.items.last().unwrap();
    assert!(head.attempts >= 2 && head.last_error.is_some(), "{head:?}");
    assert!(
        page.items[..9].iter().all(|d| d.attempts == 0),
        "later deliveries wait behind the first (order per webhook)"
    );

    // Back, but answering 503.
    receiver.reopen().await;
    receiver.fail(true);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let head = r
        .webhook_deliveries(&alice, &ns("team"), id, None, None)
        .await
        .unwrap();
    assert_eq!(head.items.last().unwrap().last_code, Some(503));
    assert!(receiver.received().is_empty());

    // Healthy again: everything arrives, in order, once.
    receiver.fail(false);
    receiver
        .wait_for(WAIT, "ten pushes", |got| got.len() >= 10)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = receiver.received_at("team");
    let tags: Vec<String> = got
        .iter()
        .map(|e| e.data["tags"][0].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = (0..10).map(|i| format!("v{i}")).collect();
    assert_eq!(tags, expected, "in order, each once");
    let ids: HashSet<&str> = got.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 10);
    let page = r
        .webhook_deliveries(&alice, &ns("team"), id, None, None)
        .await
        .unwrap();
    assert!(page.items.iter().all(|d| d.status == "delivered"));
    let metrics = r.metrics();
    assert_eq!(metrics.events.deliveries("delivered"), 10);
    assert!(metrics.events.deliveries("retry") >= 2);
    assert_eq!(metrics.events.raised_count(EventType::ManifestPushed), 10);
    let text = metrics.render(None);
    for line in [
        "registry_events_raised_total{type=\"io.registry.manifest.pushed\"} 10",
        "registry_webhook_deliveries_total{result=\"delivered\"} 10",
        "# TYPE registry_webhook_queue_depth gauge",
        "# TYPE registry_webhook_queue_oldest_age_seconds gauge",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_budget_ends_in_a_failure_that_can_be_redelivered() {
    let receiver = Receiver::start(SECRET).await;
    let mut config = fast_events(true);
    config.max_attempts = 3;
    let r = registry(config).await;
    let id = webhook(&r, receiver.url("team"), false).await;
    let alice = user("alice");
    receiver.fail(true);
    push(&r, &alice, &repo("team/app"), "v1", "one").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    let failed = loop {
        let page = r
            .webhook_deliveries(&alice, &ns("team"), id, None, None)
            .await
            .unwrap();
        if let Some(d) = page.items.iter().find(|d| d.status == "failed") {
            break d.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never failed: {page:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!((failed.attempts, failed.last_code), (3, Some(503)));
    // A failed delivery no longer holds the next one back.
    receiver.fail(false);
    push(&r, &alice, &repo("team/app"), "v2", "two").await;
    receiver
        .wait_for(WAIT, "the second push", |got| got.len() == 1)
        .await;
    assert_eq!(receiver.received()[0].event.data["tags"][0], "v2");

    let again = r
        .redeliver(&alice, &ns("team"), id, failed.id)
        .await
        .unwrap();
    assert_eq!((again.status.as_str(), again.attempts), ("pending", 0));
    receiver
        .wait_for(WAIT, "the redelivery", |got| got.len() == 2)
        .await;
    assert_eq!(receiver.received()[1].event.id, failed.event_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_change_raises_nothing() {
    let r = registry(fast_events(true)).await;
    let alice = user("alice");
    let app = repo("team/app");
    // A manifest whose blobs were never pushed is refused.
    let missing = Digest::sha256_of(b"missing");
    let manifest = common::image_manifest(&missing, 7, &missing, 7, None);
    let refused = r
        .put_manifest(
            &alice,
            &app,
            &"v1".parse().unwrap(),
            Some(media_type::OCI_MANIFEST),
            manifest.into(),
            &[],
        )
        .await;
    assert!(refused.is_err());
    // Deleting a tag that does not exist either.
    assert!(r
        .delete_manifest(&alice, &app, &"nope".parse().unwrap())
        .await
        .is_err());
    let trail = r
        .audit(&user("admin"), AuditQuery::default())
        .await
        .unwrap();
    assert!(trail.items.is_empty(), "{:?}", trail.items);
    push(&r, &alice, &app, "v1", "one").await;
    let trail = r
        .audit(&user("admin"), AuditQuery::default())
        .await
        .unwrap();
    assert_eq!(trail.items.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_to_loopback_are_refused_unless_allowed() {
    let receiver = Receiver::start(SECRET).await;
    let r = registry(fast_events(false)).await;
    // A literal loopback address is refused at creation…
    let mut request = NewWebhookRequest::new(receiver.url("team"));
    request.secret = Some(SECRET.to_owned());
    let refused = r
        .create_webhook(&user("alice"), &ns("team"), request)
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("loopback"), "{refused}");
    // …a name resolving to it at every delivery.
    let by_name = format!("http://localhost:{}/team", receiver.addr.port());
    let id = webhook(&r, by_name, false).await;
    push(&r, &user("alice"), &repo("team/app"), "v1", "one").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let page = r
        .webhook_deliveries(&user("alice"), &ns("team"), id, None, None)
        .await
        .unwrap();
    let d = &page.items[0];
    assert_eq!(d.status, "pending");
    assert!(
        d.last_error.as_deref().unwrap_or("").contains("loopback"),
        "{d:?}"
    );
    assert!(receiver.received().is_empty());
}
