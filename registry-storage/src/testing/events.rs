//! Conformance suite of [`EventStore`] over a store that is also the
//! [`MetadataStore`] raising the events: events commit with their change
//! (and a failed change leaves none), deliveries fan out to matching
//! webhooks, leases keep a webhook with one owner, retries hold it back.
//!
//! Each test works in its own namespace and deletes the webhooks it made;
//! events stay (the audit trail), so assertions filter by namespace.

use std::time::{Duration, SystemTime};

use registry_core::Namespace;

use super::metadata::{manifest_for_events, ns, repo, tag};
use crate::events::{
    DeliveryOutcome, DeliveryStatus, EventFilter, EventStore, EventType, NewEvent, NewWebhook,
};
use crate::metadata::MetadataStore;
use crate::StorageError;

/// A store under test: both traits on one object.
pub trait EventsAndMetadata: EventStore + MetadataStore {}
impl<T: EventStore + MetadataStore> EventsAndMetadata for T {}

/// An event of `event_type` in `namespace`.
pub fn event(event_type: EventType, namespace: &Namespace, subject: &str) -> NewEvent {
    NewEvent {
        id: uuid::Uuid::new_v4().to_string(),
        event_type,
        namespace: Some(namespace.clone()),
        subject: Some(subject.to_owned()),
        actor: "tester".to_owned(),
        time: SystemTime::now(),
        data: serde_json::json!({ "subject": subject }),
    }
}

fn hook(namespace: &Namespace, events: &[EventType], include_pulls: bool) -> NewWebhook {
    NewWebhook {
        namespace: Some(namespace.clone()),
        url: format!("http://receiver.invalid/{namespace}"),
        events: events.to_vec(),
        secret: "s3cret".to_owned(),
        include_pulls,
    }
}

async fn events_of(store: &dyn EventsAndMetadata, namespace: &Namespace) -> Vec<NewEvent> {
    let filter = EventFilter {
        namespaces: Some(vec![namespace.clone()]),
        ..EventFilter::default()
    };
    store
        .events(&filter, None, 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.event)
        .collect()
}

/// Events commit with the write that carries them; a write that fails
/// records none (and so no delivery).
pub async fn events_share_the_transaction(store: &dyn EventsAndMetadata) {
    let space = ns("conformance-events-tx");
    store.create_namespace(&space).await.unwrap();
    let webhook = store
        .create_webhook(hook(&space, &[], false), 10)
        .await
        .unwrap();
    let r = repo("conformance-events-tx/app");

    let mut pushed = manifest_for_events(&r, "tx-a");
    pushed.tags = vec![tag("v1")];
    let good = event(
        EventType::ManifestPushed,
        &space,
        "conformance-events-tx/app:v1",
    );
    pushed.events = vec![good.clone()];
    store.put_manifest(pushed.clone()).await.unwrap();

    // A manifest whose child is missing is refused: its event must not stay.
    let mut refused = manifest_for_events(&r, "tx-b");
    refused.children = vec![crate::testing::metadata::missing_child()];
    refused.events = vec![event(EventType::ManifestPushed, &space, "refused")];
    let err = store.put_manifest(refused).await.unwrap_err();
    assert!(
        matches!(err, StorageError::ManifestMissing { .. }),
        "{err:?}"
    );

    // Deleting a tag that does not exist records nothing either.
    let missing = store
        .delete_tag_raising(
            &r,
            &tag("nope"),
            "tester",
            vec![event(EventType::TagDeleted, &space, "nope")],
        )
        .await
        .unwrap_err();
    assert!(missing.is_not_found());

    let deleted = event(
        EventType::TagDeleted,
        &space,
        "conformance-events-tx/app:v1",
    );
    store
        .delete_tag_raising(&r, &tag("v1"), "tester", vec![deleted.clone()])
        .await
        .unwrap();
    let gone = event(
        EventType::ManifestDeleted,
        &space,
        "conformance-events-tx/app",
    );
    store
        .delete_manifest_raising(&r, &pushed.digest, "tester", vec![gone.clone()])
        .await
        .unwrap();
    let repo_gone = event(EventType::ImageStreamDeleted, &space, "app");
    // The repository is still there (created by the push).
    store
        .delete_repository_raising(&r, vec![repo_gone.clone()])
        .await
        .unwrap();
    let ns_gone = event(EventType::NamespaceDeleted, &space, "ns");
    store
        .delete_namespace_raising(&space, vec![ns_gone.clone()])
        .await
        .unwrap();
    assert!(store
        .delete_namespace_raising(
            &space,
            vec![event(EventType::NamespaceDeleted, &space, "x")]
        )
        .await
        .unwrap_err()
        .is_not_found());

    let ids: Vec<String> = events_of(store, &space)
        .await
        .into_iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(
        ids,
        vec![good.id, deleted.id, gone.id, repo_gone.id, ns_gone.id],
        "exactly the committed writes' events, in order"
    );
    let deliveries = store.deliveries(webhook.id, None, 100).await.unwrap();
    assert_eq!(deliveries.len(), 5, "one delivery per committed event");
    assert!(deliveries
        .iter()
        .all(|d| d.status == DeliveryStatus::Pending && d.attempts == 0));
    store.delete_webhook(webhook.id).await.unwrap();
    assert!(store
        .delete_webhook(webhook.id)
        .await
        .unwrap_err()
        .is_not_found());
}

/// Deliveries go to the webhooks an event matches: its namespace, its
/// types, pulls only when asked; later webhooks get only later events.
pub async fn events_fan_out(store: &dyn EventsAndMetadata) {
    let (a, b) = (ns("conformance-events-fa"), ns("conformance-events-fb"));
    let all = store
        .create_webhook(hook(&a, &[], false), 10)
        .await
        .unwrap();
    let pulls = store.create_webhook(hook(&a, &[], true), 10).await.unwrap();
    let deletes = store
        .create_webhook(hook(&a, &[EventType::TagDeleted], false), 10)
        .await
        .unwrap();
    let other = store.create_webhook(hook(&b, &[], true), 10).await.unwrap();
    let scopes = store.pull_scopes().await.unwrap();
    assert!(scopes.contains(&Some(a.clone())) && scopes.contains(&Some(b.clone())));

    store
        .append_events(vec![
            event(EventType::ManifestPushed, &a, "a/x:1"),
            event(EventType::ManifestPulled, &a, "a/x:1"),
            event(EventType::TagDeleted, &a, "a/x:1"),
        ])
        .await
        .unwrap();
    let count = |id| async move { store.deliveries(id, None, 100).await.unwrap().len() };
    assert_eq!(count(all.id).await, 2, "every type but pulls");
    assert_eq!(count(pulls.id).await, 3, "pulls included");
    assert_eq!(count(deletes.id).await, 1, "only its type");
    assert_eq!(count(other.id).await, 0, "another namespace");

    let late = store
        .create_webhook(hook(&a, &[], false), 10)
        .await
        .unwrap();
    assert_eq!(count(late.id).await, 0, "no past events");

    // The cap counts the namespace's webhooks (four now; `other` is elsewhere).
    let refused = store
        .create_webhook(hook(&a, &[], false), 4)
        .await
        .unwrap_err();
    assert!(
        matches!(refused, StorageError::LimitReached { .. }),
        "{refused:?}"
    );

    for id in [all.id, pulls.id, deletes.id, other.id, late.id] {
        store.delete_webhook(id).await.unwrap();
    }
    assert!(store.webhooks(Some(&a)).await.unwrap().is_empty());
}

/// A lease keeps a webhook with one owner; a pending outcome holds it
/// back until its retry time; delivered and failed leave the queue;
/// redelivery puts a delivery back.
pub async fn events_claims_and_retries(store: &dyn EventsAndMetadata) {
    let space = ns("conformance-events-claim");
    let w = store
        .create_webhook(hook(&space, &[], false), 10)
        .await
        .unwrap();
    store
        .append_events(vec![
            event(EventType::ManifestPushed, &space, "1"),
            event(EventType::ManifestPushed, &space, "2"),
        ])
        .await
        .unwrap();
    let lease = Duration::from_secs(60);
    let mine = store.claim_webhooks("one", lease, 100).await.unwrap();
    assert!(mine.contains(&w.id));
    let theirs = store.claim_webhooks("two", lease, 100).await.unwrap();
    assert!(!theirs.contains(&w.id), "leased to another owner");

    let pending = store.pending_deliveries(w.id, 10).await.unwrap();
    assert_eq!(pending.len(), 2);
    assert!(pending[0].0.id < pending[1].0.id, "in order");
    assert_eq!(pending[0].1.event.subject.as_deref(), Some("1"));

    // A failed attempt with a retry later holds the webhook back.
    let later = SystemTime::now() + Duration::from_secs(3600);
    let retry = DeliveryOutcome {
        status: DeliveryStatus::Pending,
        code: Some(503),
        error: Some("unavailable".to_owned()),
        next_attempt: later,
    };
    // A claim that is not the owner's is not released by its finish.
    store.finish_claim(w.id, "two", &[]).await.unwrap();
    assert!(!store
        .claim_webhooks("three", lease, 100)
        .await
        .unwrap()
        .contains(&w.id));
    store
        .finish_claim(w.id, "one", &[(pending[0].0.id, retry.clone())])
        .await
        .unwrap();
    let held = store.delivery(pending[0].0.id).await.unwrap().unwrap();
    assert_eq!(
        (held.status, held.attempts, held.last_code),
        (DeliveryStatus::Pending, 1, Some(503))
    );
    assert!(!store
        .claim_webhooks("two", lease, 100)
        .await
        .unwrap()
        .contains(&w.id));
    let queue = store.delivery_queue().await.unwrap();
    assert!(queue.pending >= 2 && queue.oldest.is_some());

    // Redelivery makes it due again; then deliver both.
    store.redeliver(pending[0].0.id).await.unwrap();
    assert!(store
        .claim_webhooks("two", lease, 100)
        .await
        .unwrap()
        .contains(&w.id));
    let ok = DeliveryOutcome {
        status: DeliveryStatus::Delivered,
        code: Some(200),
        error: None,
        next_attempt: SystemTime::now(),
    };
    let failed = DeliveryOutcome {
        status: DeliveryStatus::Failed,
        ..retry
    };
    // One batch: both outcomes and the release, in order; a delivery that
    // no longer exists is skipped.
    store
        .finish_claim(
            w.id,
            "two",
            &[
                (pending[0].0.id, ok),
                (pending[1].0.id, failed),
                (u64::MAX / 2, DeliveryOutcome { ..held_outcome() }),
            ],
        )
        .await
        .unwrap();
    let first = store.delivery(pending[0].0.id).await.unwrap().unwrap();
    assert_eq!(
        (first.status, first.attempts, first.last_code),
        (DeliveryStatus::Delivered, 1, Some(200)),
        "redelivery reset the attempts"
    );
    let second = store.delivery(pending[1].0.id).await.unwrap().unwrap();
    assert_eq!(second.status, DeliveryStatus::Failed);
    assert!(store.pending_deliveries(w.id, 10).await.unwrap().is_empty());
    assert!(!store
        .claim_webhooks("three", lease, 100)
        .await
        .unwrap()
        .contains(&w.id));
    assert!(store
        .redeliver(u64::MAX / 2)
        .await
        .unwrap_err()
        .is_not_found());

    // Sweeping removes old events without pending deliveries.
    let swept = store
        .sweep_events(SystemTime::now() + Duration::from_secs(1), 10_000)
        .await
        .unwrap();
    assert!(swept >= 2);
    assert!(events_of(store, &space).await.is_empty());
    store.delete_webhook(w.id).await.unwrap();
}

fn held_outcome() -> DeliveryOutcome {
    DeliveryOutcome {
        status: DeliveryStatus::Delivered,
        code: Some(204),
        error: None,
        next_attempt: SystemTime::now(),
    }
}

/// Deleting a namespace retires its webhooks: they receive the deletion's
/// own event, nothing later (not even from a namespace created again under
/// the name), are no longer listed or counted, and go once delivered.
pub async fn events_retired_with_namespace(store: &dyn EventsAndMetadata) {
    let space = ns("conformance-events-retire");
    store.create_namespace(&space).await.unwrap();
    let w = store
        .create_webhook(hook(&space, &[], true), 1)
        .await
        .unwrap();
    store
        .delete_namespace_raising(
            &space,
            vec![event(EventType::NamespaceDeleted, &space, "gone")],
        )
        .await
        .unwrap();
    assert!(store.webhooks(Some(&space)).await.unwrap().is_empty());
    assert!(!store
        .pull_scopes()
        .await
        .unwrap()
        .contains(&Some(space.clone())));

    store.create_namespace(&space).await.unwrap();
    let fresh = store
        .create_webhook(hook(&space, &[], false), 1)
        .await
        .expect("the retired webhook does not count against the cap");
    store
        .append_events(vec![event(EventType::ManifestPushed, &space, "again")])
        .await
        .unwrap();
    let lease = Duration::from_secs(60);
    let claimed = store.claim_webhooks("r", lease, 1000).await.unwrap();
    assert!(claimed.contains(&w.id), "the deletion is still due");
    let pending = store.pending_deliveries(w.id, 10).await.unwrap();
    let subjects: Vec<_> = pending
        .iter()
        .map(|(_, e)| e.event.subject.clone().unwrap_or_default())
        .collect();
    assert_eq!(
        subjects,
        vec!["gone".to_owned()],
        "nothing after the deletion"
    );
    let outcomes: Vec<_> = pending
        .iter()
        .map(|(d, _)| (d.id, held_outcome()))
        .collect();
    store.finish_claim(w.id, "r", &outcomes).await.unwrap();
    assert!(store.webhook(w.id).await.unwrap().is_some());
    store
        .sweep_events(SystemTime::UNIX_EPOCH, 10)
        .await
        .unwrap();
    assert!(
        store.webhook(w.id).await.unwrap().is_none(),
        "removed once nothing is pending"
    );
    if claimed.contains(&fresh.id) {
        store.finish_claim(fresh.id, "r", &[]).await.unwrap();
    }
    store.delete_webhook(fresh.id).await.unwrap();
    store.delete_namespace(&space).await.unwrap();
}

/// `tag.moved` is decided in the push's transaction: recorded (with
/// `previous_digest`) only for a tag that pointed at another manifest,
/// before the push's own events; `put_manifest` returns the moves.
pub async fn events_tag_moved_in_the_push(store: &dyn EventsAndMetadata) {
    let space = ns("conformance-events-moved");
    store.create_namespace(&space).await.unwrap();
    let r = repo("conformance-events-moved/app");
    let push = |seed: &str| {
        let mut m = manifest_for_events(&r, seed);
        m.tags = vec![tag("v1"), tag("v2")];
        m.tag_moved = m
            .tags
            .iter()
            .map(|t| (t.clone(), event(EventType::TagMoved, &space, t.as_str())))
            .collect();
        m.events = vec![event(EventType::ManifestPushed, &space, seed)];
        m
    };
    let first = push("moved-a");
    assert!(
        store.put_manifest(first.clone()).await.unwrap().is_empty(),
        "created, not moved"
    );
    let mut second = push("moved-b");
    second.tags.truncate(1);
    let moved = store.put_manifest(second.clone()).await.unwrap();
    assert_eq!(
        moved,
        vec![crate::MovedTag {
            tag: tag("v1"),
            previous: first.digest.clone()
        }]
    );
    // The same push again moves nothing.
    let mut again = push("moved-b");
    again.tags.truncate(1);
    assert!(store.put_manifest(again).await.unwrap().is_empty());

    let recorded: Vec<(EventType, Option<String>)> = events_of(store, &space)
        .await
        .into_iter()
        .map(|e| (e.event_type, e.subject))
        .collect();
    let subject = |s: &str| Some(s.to_owned());
    assert_eq!(
        recorded,
        vec![
            (EventType::ManifestPushed, subject("moved-a")),
            (EventType::TagMoved, subject("v1")),
            (EventType::ManifestPushed, subject("moved-b")),
            (EventType::ManifestPushed, subject("moved-b")),
        ]
    );
    let moved_event = events_of(store, &space)
        .await
        .into_iter()
        .find(|e| e.event_type == EventType::TagMoved)
        .unwrap();
    assert_eq!(moved_event.data["previous_digest"], first.digest.as_str());
    store.delete_namespace(&space).await.unwrap();
}

/// Cluster-wide sinks follow the configuration, matched by URL.
pub async fn events_cluster_sinks(store: &dyn EventsAndMetadata) {
    let sink = |url: &str| NewWebhook {
        namespace: None,
        url: url.to_owned(),
        events: vec![EventType::UserCreated],
        secret: "k".to_owned(),
        include_pulls: false,
    };
    store
        .sync_cluster_webhooks(&[sink("http://a.invalid/"), sink("http://b.invalid/")])
        .await
        .unwrap();
    let before = store.webhooks(None).await.unwrap();
    assert_eq!(before.len(), 2);
    let mut changed = sink("http://b.invalid/");
    changed.include_pulls = true;
    store.sync_cluster_webhooks(&[changed]).await.unwrap();
    let after = store.webhooks(None).await.unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, before[1].id, "kept by URL");
    assert!(after[0].webhook.include_pulls);
    store.sync_cluster_webhooks(&[]).await.unwrap();
    assert!(store.webhooks(None).await.unwrap().is_empty());
}

/// Runs every events conformance test against `store`.
pub async fn run_events_suite(store: &dyn EventsAndMetadata) {
    events_share_the_transaction(store).await;
    events_fan_out(store).await;
    events_claims_and_retries(store).await;
    events_tag_moved_in_the_push(store).await;
    events_retired_with_namespace(store).await;
    events_cluster_sinks(store).await;
}

/// A store under test for [`auth_events_share_the_transaction`]: auth
/// records and the outbox in one database.
pub trait AuthAndEvents: EventStore + registry_auth::AuthStore {}
impl<T: EventStore + registry_auth::AuthStore> AuthAndEvents for T {}

/// An auth change and its events commit together: the store records
/// events; a change that fails records none; events that cannot be
/// recorded (here: an id already taken) undo the change.
pub async fn auth_events_share_the_transaction(store: &dyn AuthAndEvents) {
    use registry_auth::{AuthChange, User};
    assert!(store.records_events());
    let user = |name: &str| User {
        name: name.parse().unwrap(),
        password_hash: None,
        created: time::OffsetDateTime::now_utc(),
    };
    let created = |subject: &str| NewEvent {
        namespace: None,
        ..event(EventType::UserCreated, &ns("unused"), subject)
    };
    let audit = |subject: &str| {
        let subject = subject.to_owned();
        async move {
            let filter = EventFilter {
                event_type: Some(EventType::UserCreated),
                ..EventFilter::default()
            };
            store
                .events(&filter, None, 10_000)
                .await
                .unwrap()
                .into_iter()
                .filter(|r| r.event.subject.as_deref() == Some(subject.as_str()))
                .count()
        }
    };

    let first = created("conformance-auth-ev-1");
    store
        .apply_raising(
            &AuthChange::CreateUser(user("conformance-auth-ev-1")),
            std::slice::from_ref(&first),
        )
        .await
        .unwrap();
    assert!(store
        .get_user(&"conformance-auth-ev-1".parse().unwrap())
        .await
        .unwrap()
        .is_some());
    assert_eq!(audit("conformance-auth-ev-1").await, 1);

    // The change fails (the user exists): no event.
    let again = store
        .apply_raising(
            &AuthChange::CreateUser(user("conformance-auth-ev-1")),
            &[created("conformance-auth-ev-1")],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(again, registry_auth::AuthStoreError::AlreadyExists(_)),
        "{again:?}"
    );
    assert_eq!(audit("conformance-auth-ev-1").await, 1);

    // The events fail (the first event's id again): no change.
    let mut clash = created("conformance-auth-ev-2");
    clash.id = first.id.clone();
    store
        .apply_raising(
            &AuthChange::CreateUser(user("conformance-auth-ev-2")),
            &[clash],
        )
        .await
        .unwrap_err();
    assert!(store
        .get_user(&"conformance-auth-ev-2".parse().unwrap())
        .await
        .unwrap()
        .is_none());
    assert_eq!(audit("conformance-auth-ev-2").await, 0);

    store
        .delete_user(&"conformance-auth-ev-1".parse().unwrap())
        .await
        .unwrap();
}
