//! Events, webhooks and their deliveries: the outbox of the registry.
//!
//! An event ([`NewEvent`]) is written by the same transaction as the change
//! that raised it: [`NewManifest::events`](crate::NewManifest::events) and
//! the `*_raising` methods of [`MetadataStore`](crate::MetadataStore) carry
//! them. In that transaction the store also creates one pending
//! [`DeliveryRecord`] per webhook the event matches ([`NewWebhook::matches`]
//! says which), so an acknowledged change always has its deliveries, a
//! rolled-back one never does, and no fan-out cursor has to follow commit
//! order. The same rows are the audit trail ([`EventStore::events`]).
//!
//! Delivery is claimed per webhook ([`EventStore::claim_webhooks`], a lease
//! with an owner and an expiry), so one worker at a time sends a webhook's
//! deliveries, oldest first, and several replicas over one database never
//! send the same delivery at once.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use registry_core::Namespace;
use serde::{Deserialize, Serialize};

use crate::error::Result;

pub use registry_core::event::{EventType, NewEvent, UnknownEventType};

/// A recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// Its position in the outbox: larger for later writes, the audit
    /// trail's paging cursor.
    pub seq: u64,
    /// What was recorded.
    pub event: NewEvent,
}

/// Which events an audit query wants; every field narrows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Only events of these namespaces (`None`: any, cluster-wide ones
    /// included).
    pub namespaces: Option<Vec<Namespace>>,
    /// Only events of this actor.
    pub actor: Option<String>,
    /// Only events of this type.
    pub event_type: Option<EventType>,
    /// Only events at or after this time.
    pub since: Option<SystemTime>,
    /// Only events before this time.
    pub until: Option<SystemTime>,
}

impl EventFilter {
    /// Whether `event` passes the filter.
    pub fn matches(&self, event: &NewEvent) -> bool {
        self.namespaces
            .as_ref()
            .is_none_or(|list| event.namespace.as_ref().is_some_and(|n| list.contains(n)))
            && self.actor.as_ref().is_none_or(|a| &event.actor == a)
            && self.event_type.is_none_or(|t| event.event_type == t)
            && self.since.is_none_or(|t| event.time >= t)
            && self.until.is_none_or(|t| event.time < t)
    }
}

/// A webhook to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhook {
    /// The namespace whose events it receives; `None` for a cluster-wide
    /// sink (server configuration), which receives every event.
    pub namespace: Option<Namespace>,
    /// Where deliveries are POSTed (validated by the caller).
    pub url: String,
    /// The event types it receives; empty for all.
    pub events: Vec<EventType>,
    /// The HMAC key deliveries are signed with.
    pub secret: String,
    /// Whether it receives pulls (high volume; off by default).
    pub include_pulls: bool,
}

impl NewWebhook {
    /// Whether an event of `event_type` in `namespace` goes to this webhook:
    /// the rule every store applies when it records an event.
    pub fn matches(&self, event_type: EventType, namespace: Option<&Namespace>) -> bool {
        let scope = match &self.namespace {
            None => true,
            Some(mine) => namespace == Some(mine),
        };
        scope
            && (self.events.is_empty() || self.events.contains(&event_type))
            && (!event_type.is_pull() || self.include_pulls)
    }

    /// The event list as stored in SQL (`,type,type,`, empty for all), so a
    /// store can match with a substring search of `,type,`.
    pub fn events_column(&self) -> String {
        if self.events.is_empty() {
            return String::new();
        }
        let mut s = String::from(",");
        for t in &self.events {
            s.push_str(t.as_str());
            s.push(',');
        }
        s
    }

    /// Parses [`events_column`](Self::events_column) back.
    pub fn parse_events_column(
        column: &str,
    ) -> std::result::Result<Vec<EventType>, UnknownEventType> {
        column
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect()
    }
}

/// A stored webhook. Its secret is here because the delivery worker signs
/// with it; APIs must not show it.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookRecord {
    /// Its id.
    pub id: u64,
    /// What was created.
    pub webhook: NewWebhook,
    /// When.
    pub created: SystemTime,
}

impl fmt::Debug for WebhookRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookRecord")
            .field("id", &self.id)
            .field("namespace", &self.webhook.namespace)
            .field("url", &self.webhook.url)
            .field("events", &self.webhook.events)
            .field("include_pulls", &self.webhook.include_pulls)
            .field("created", &self.created)
            .finish_non_exhaustive()
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Not delivered yet (new, or waiting for a retry).
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// The retry budget ran out; redeliverable.
    Failed,
}

impl DeliveryStatus {
    /// The stored form.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }
}

impl FromStr for DeliveryStatus {
    type Err = UnknownEventType;
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "pending" => Ok(DeliveryStatus::Pending),
            "delivered" => Ok(DeliveryStatus::Delivered),
            "failed" => Ok(DeliveryStatus::Failed),
            other => Err(UnknownEventType(other.to_owned())),
        }
    }
}

/// One event's delivery to one webhook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    /// Its id (larger for later events of the same webhook).
    pub id: u64,
    /// The webhook.
    pub webhook: u64,
    /// The event's [`EventRecord::seq`].
    pub event_seq: u64,
    /// The event's id.
    pub event_id: String,
    /// The event's type.
    pub event_type: EventType,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made.
    pub attempts: u32,
    /// The last HTTP status the receiver answered, if it answered.
    pub last_code: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// When it is (or was) next due.
    pub next_attempt: SystemTime,
    /// When it last changed.
    pub updated: SystemTime,
}

/// What one attempt of a delivery came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryOutcome {
    /// The status after it: `Delivered`, `Pending` (retry at
    /// `next_attempt`) or `Failed`.
    pub status: DeliveryStatus,
    /// The receiver's HTTP status, if it answered.
    pub code: Option<u16>,
    /// Why it failed, if it did.
    pub error: Option<String>,
    /// When to retry (for `Pending`).
    pub next_attempt: SystemTime,
}

/// How much is waiting to be delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeliveryQueue {
    /// Pending deliveries.
    pub pending: u64,
    /// When the oldest pending delivery's event happened.
    pub oldest: Option<SystemTime>,
}

/// The outbox: events, webhooks and deliveries.
///
/// # Contract
/// - Recording an event (here with [`append_events`](Self::append_events),
///   or through a metadata write that carries it) creates, in the same
///   transaction, one `Pending` delivery per webhook the event
///   [matches](NewWebhook::matches), due at once. A webhook created later
///   receives only later events.
/// - [`claim_webhooks`](Self::claim_webhooks) leases webhooks that have a
///   due pending delivery to `owner` until `lease` has passed; a leased
///   webhook is not claimed by another owner until its lease expires or
///   is released. Only a lease holder sends a webhook's deliveries, in
///   id order, so they arrive in order.
/// - A delivery leaves `Pending` only through
///   [`finish_claim`](Self::finish_claim), which records the outcomes of a
///   claim's attempts and ends the claim in one transaction; a `Pending`
///   last outcome with a later `next_attempt` holds the webhook back until
///   then.
/// - Listings are bounded by `limit`.
#[async_trait]
pub trait EventStore: Send + Sync + fmt::Debug + 'static {
    /// Records events that belong to no other write (pulls, changes of
    /// another store), with their deliveries, in one transaction.
    async fn append_events(&self, events: Vec<NewEvent>) -> Result<()>;

    /// Events passing `filter`, oldest first: those after seq `after`, at
    /// most `limit`.
    async fn events(
        &self,
        filter: &EventFilter,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<EventRecord>>;

    /// An event by seq.
    async fn event(&self, seq: u64) -> Result<Option<EventRecord>>;

    /// Deletes events older than `before` that have no pending delivery
    /// (with their deliveries), at most `limit`; returns how many.
    async fn sweep_events(&self, before: SystemTime, limit: usize) -> Result<u64>;

    /// Creates a webhook, unless its namespace has `max_per_namespace`
    /// already (`QuotaExceeded`-like refusal: `AlreadyExists` naming the
    /// cap). Checked in the insert's transaction.
    async fn create_webhook(
        &self,
        webhook: NewWebhook,
        max_per_namespace: usize,
    ) -> Result<WebhookRecord>;

    /// Makes the cluster-wide sinks (`namespace: None`) exactly `sinks`,
    /// matched by URL: new ones are created, changed ones updated, the
    /// others deleted with their deliveries.
    async fn sync_cluster_webhooks(&self, sinks: &[NewWebhook]) -> Result<()>;

    /// The webhooks of a namespace (`None`: the cluster-wide sinks), by id.
    async fn webhooks(&self, namespace: Option<&Namespace>) -> Result<Vec<WebhookRecord>>;

    /// Every webhook's scope that receives pulls (`None`: a cluster-wide
    /// sink): what a cached "does anyone want pulls here" flag is built from.
    async fn pull_scopes(&self) -> Result<Vec<Option<Namespace>>>;

    /// A webhook by id.
    async fn webhook(&self, id: u64) -> Result<Option<WebhookRecord>>;

    /// Deletes a webhook and its deliveries. Missing is `NotFound`.
    async fn delete_webhook(&self, id: u64) -> Result<()>;

    /// Leases up to `limit` webhooks with a due pending delivery and no
    /// live lease to `owner` for `lease`; returns their ids.
    async fn claim_webhooks(&self, owner: &str, lease: Duration, limit: usize) -> Result<Vec<u64>>;

    /// A webhook's first `limit` pending deliveries in id order, with
    /// their events.
    async fn pending_deliveries(
        &self,
        webhook: u64,
        limit: usize,
    ) -> Result<Vec<(DeliveryRecord, EventRecord)>>;

    /// Ends `owner`'s claim of a webhook and records, in the same
    /// transaction, the outcomes of the attempts made under it (delivery
    /// id and outcome, in the order they were made; attempts + 1 each; a
    /// delivery deleted meanwhile is skipped). When the last outcome is
    /// `Pending`, the webhook is held back until its `next_attempt`; any
    /// other last outcome (or none) lifts a hold.
    ///
    /// One transaction per claim rather than one per attempt: the worker
    /// sends a batch, then records it, so a crash in between sends the
    /// batch again (at-least-once; receivers deduplicate by event id).
    async fn finish_claim(
        &self,
        webhook: u64,
        owner: &str,
        outcomes: &[(u64, DeliveryOutcome)],
    ) -> Result<()>;

    /// A webhook's deliveries, newest first: those with an id below
    /// `before`, at most `limit`.
    async fn deliveries(
        &self,
        webhook: u64,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>>;

    /// A delivery by id.
    async fn delivery(&self, id: u64) -> Result<Option<DeliveryRecord>>;

    /// Makes a delivery pending again, due now, with its attempts reset.
    /// Missing is `NotFound`.
    async fn redeliver(&self, id: u64) -> Result<()>;

    /// Pending deliveries and the age of the oldest.
    async fn delivery_queue(&self) -> Result<DeliveryQueue>;
}
