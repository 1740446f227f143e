//! Events and webhooks: what the service core raises, how it is delivered.
//!
//! The service core builds a [`NewEvent`] for every change it makes (see
//! [`EventType`]) and hands it to the metadata write that makes the change,
//! so the store records it in the same transaction (see
//! [`registry_storage::events`]); admin changes kept in the auth store go
//! through [`registry_auth::AuthStore::apply_raising`] for the same
//! guarantee. Pulls are appended to the outbox on their own, right after
//! the pull.
//! The delivery worker sends each recorded event to the webhooks
//! it matches as a CloudEvents 1.0 JSON document ([`CloudEvent`]), signed
//! with the webhook's secret ([`SIGNATURE_HEADER`]).

mod cloudevent;
pub mod guard;
pub(crate) mod worker;

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

use registry_core::Namespace;
use registry_storage::{EventStore, EventType, NewEvent, NewWebhook};

pub use cloudevent::{signature, CloudEvent, SIGNATURE_HEADER};

use crate::Caller;

/// How events are delivered and kept. Start from
/// [`EventsConfig::default`] and set what you need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct EventsConfig {
    /// The CloudEvents `source` of every event: the registry's public URL.
    pub source: String,
    /// Whether webhooks may reach loopback, private and link-local
    /// addresses (tests, internal receivers). Off by default: a webhook URL
    /// is a server-side request forgery vector.
    pub allow_private: bool,
    /// Cluster-wide sinks (server configuration): they receive every event.
    /// [`crate::RegistryBuilder::build`] records them in the event store
    /// (replacing the sinks recorded before) before the registry accepts a
    /// change.
    pub sinks: Vec<NewWebhook>,
    /// How long events stay in the audit trail (`None`: for ever).
    pub retention: Option<Duration>,
    /// Most webhooks per namespace.
    pub max_webhooks_per_namespace: usize,
    /// How often the worker looks for deliveries other replicas recorded
    /// (its own wake it at once).
    pub poll_interval: Duration,
    /// The first retry's delay; each further one doubles, up to `max_backoff`.
    pub initial_backoff: Duration,
    /// The longest delay between two attempts.
    pub max_backoff: Duration,
    /// Attempts before a delivery is marked failed (redeliverable).
    pub max_attempts: u32,
    /// Connect timeout of one delivery.
    pub connect_timeout: Duration,
    /// Total timeout of one delivery (connect, send, answer).
    pub request_timeout: Duration,
    /// How long the worker waits after a local commit woke it before it
    /// claims, so that the events of a burst go out as one batch (and
    /// cost the store one claim and one record, not one per event).
    pub coalesce: Duration,
    /// Webhooks served at once by one worker.
    pub concurrency: usize,
    /// Deliveries of one webhook sent in one lease.
    pub batch: usize,
    /// How long a claim on a webhook lasts before another replica may take
    /// it over (a crashed replica's claims expire after this; SQLite and
    /// memory stores drop them at start). A worker starts a delivery only
    /// while `request_timeout` still fits in its claim.
    pub lease: Duration,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            source: "/".to_owned(),
            allow_private: false,
            sinks: Vec::new(),
            retention: Some(Duration::from_secs(90 * 24 * 3600)),
            max_webhooks_per_namespace: 20,
            poll_interval: Duration::from_secs(2),
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            max_attempts: 10,
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            coalesce: Duration::from_millis(50),
            concurrency: 16,
            batch: 64,
            lease: Duration::from_secs(20),
        }
    }
}

/// The registry's events: the outbox, the settings, the worker's wake-up.
#[derive(Debug)]
pub(crate) struct Events {
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) config: EventsConfig,
    pub(crate) wake: Arc<tokio::sync::Notify>,
    /// Which scopes have a webhook with `include_pulls`, refreshed now and
    /// then so that a pull costs no database round trip.
    pulls: RwLock<PullScopes>,
}

#[derive(Debug)]
struct PullScopes {
    cluster: bool,
    namespaces: HashSet<Namespace>,
    loaded: Option<Instant>,
}

impl Events {
    pub(crate) fn new(store: Arc<dyn EventStore>, config: EventsConfig) -> Self {
        Events {
            store,
            config,
            wake: Arc::default(),
            pulls: RwLock::new(PullScopes {
                cluster: false,
                namespaces: HashSet::new(),
                loaded: None,
            }),
        }
    }

    /// Wakes the worker after a commit that recorded deliveries.
    pub(crate) fn committed(&self) {
        self.wake.notify_one();
    }

    /// Whether some webhook wants pulls of `namespace`, from the cached
    /// scopes (reloaded after the poll interval, or at once after a local
    /// webhook change).
    pub(crate) async fn wants_pulls(&self, namespace: &Namespace) -> bool {
        let fresh = {
            let scopes = self.pulls.read().unwrap_or_else(|e| e.into_inner());
            scopes
                .loaded
                .is_some_and(|at| at.elapsed() < self.config.poll_interval)
                .then(|| scopes.cluster || scopes.namespaces.contains(namespace))
        };
        if let Some(answer) = fresh {
            return answer;
        }
        match self.store.pull_scopes().await {
            Ok(list) => {
                let mut scopes = self.pulls.write().unwrap_or_else(|e| e.into_inner());
                scopes.cluster = list.iter().any(Option::is_none);
                scopes.namespaces = list.into_iter().flatten().collect();
                scopes.loaded = Some(Instant::now());
                scopes.cluster || scopes.namespaces.contains(namespace)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read which webhooks want pulls");
                false
            }
        }
    }

    /// Forgets the cached pull scopes (a webhook was created or deleted here).
    pub(crate) fn webhooks_changed(&self) {
        self.pulls.write().unwrap_or_else(|e| e.into_inner()).loaded = None;
    }
}

/// A new event raised by `caller`, with `data` (an object) completed by
/// the actor and the request id.
pub(crate) fn event(
    caller: &Caller,
    event_type: EventType,
    namespace: Option<&Namespace>,
    subject: impl Into<String>,
    data: serde_json::Value,
) -> NewEvent {
    let mut data = match data {
        serde_json::Value::Object(map) => map,
        other => {
            let mut map = serde_json::Map::new();
            map.insert("value".to_owned(), other);
            map
        }
    };
    data.insert("actor".to_owned(), caller.actor().into());
    if let Some(ns) = namespace {
        data.entry("namespace")
            .or_insert_with(|| ns.as_str().to_owned().into());
    }
    if let Some(id) = caller.request_id() {
        data.insert("request_id".to_owned(), id.into());
    }
    NewEvent {
        id: uuid::Uuid::new_v4().to_string(),
        event_type,
        namespace: namespace.cloned(),
        subject: Some(subject.into()),
        actor: caller.actor(),
        time: SystemTime::now(),
        data: serde_json::Value::Object(data),
    }
}

impl crate::Registry {
    /// The outbox, when the stores keep events.
    pub(crate) fn events(&self) -> Option<&Events> {
        self.inner.events.as_deref()
    }

    /// An event to carry with a metadata write (none when the stores keep
    /// no events).
    pub(crate) fn raise(
        &self,
        caller: &Caller,
        event_type: EventType,
        namespace: Option<&Namespace>,
        subject: impl Into<String>,
        data: serde_json::Value,
    ) -> Vec<NewEvent> {
        match self.events() {
            Some(_) => vec![event(caller, event_type, namespace, subject, data)],
            None => Vec::new(),
        }
    }

    /// After the write carrying `events` committed: counts them and wakes
    /// the delivery worker.
    pub(crate) fn raised(&self, events: &[NewEvent]) {
        if events.is_empty() {
            return;
        }
        self.metrics().events.raised(events);
        if let Some(outbox) = self.events() {
            outbox.committed();
        }
    }

    /// Applies an auth-store change with the events it raised: in one
    /// transaction when the auth store [records
    /// events](registry_auth::AuthStore::records_events) (its database
    /// holds the outbox: the SQLite and PostgreSQL stores), else the change
    /// and then the events on their own (an auth store of your own, or the
    /// in-memory stores; a crash between the two loses the events).
    pub(crate) async fn apply_auth_change(
        &self,
        state: &crate::auth::AuthState,
        change: registry_auth::AuthChange,
        events: Vec<NewEvent>,
    ) -> crate::service::RegistryResult<()> {
        if events.is_empty() {
            change.apply(state.store.as_ref()).await?;
            return Ok(());
        }
        if state.store.records_events() {
            state.store.apply_raising(&change, &events).await?;
        } else {
            change.apply(state.store.as_ref()).await?;
            if let Some(outbox) = self.events() {
                if let Err(e) = outbox.store.append_events(events.clone()).await {
                    tracing::error!(error = %e, "recording the events of an auth change failed");
                    return Ok(());
                }
            }
        }
        self.raised(&events);
        Ok(())
    }

    /// Records the event of a pull on its own, right after the pull. A
    /// failure is logged: the pull itself stands.
    pub(crate) async fn record_event(
        &self,
        caller: &Caller,
        event_type: EventType,
        namespace: Option<&Namespace>,
        subject: impl Into<String>,
        data: serde_json::Value,
    ) {
        let Some(outbox) = self.events() else {
            return;
        };
        let events = vec![event(caller, event_type, namespace, subject, data)];
        match outbox.store.append_events(events.clone()).await {
            Ok(()) => self.raised(&events),
            Err(e) => {
                tracing::error!(error = %e, event_type = %event_type, "recording an event failed")
            }
        }
    }
}
