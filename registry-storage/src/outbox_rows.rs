//! The outbox's rows as both SQL backends read them (the same columns in
//! SQLite and PostgreSQL), and their conversion into the records of
//! [`crate::events`]. A value that does not parse back is [`Corrupt`], which
//! each backend turns into its own error.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::BoxError;
use crate::events::{DeliveryRecord, EventRecord, NewEvent, NewWebhook, WebhookRecord};

/// The columns of [`EventRow`].
pub(crate) const EVENT_COLUMNS: &str = "seq, id, type, namespace, subject, actor, time, data";

/// The columns of [`WebhookRow`].
pub(crate) const WEBHOOK_COLUMNS: &str =
    "id, namespace, url, events, secret, include_pulls, created";

/// The columns a [`PendingRow`] has beyond a backend's delivery columns,
/// from `webhook_deliveries d JOIN events e`.
pub(crate) const PENDING_EVENT_COLUMNS: &str = "e.namespace, e.subject, e.actor, e.time, e.data";

/// A stored value that does not parse back into its type.
#[derive(Debug, thiserror::Error)]
#[error("stored value {value:?} of {column} does not parse: {source}")]
pub(crate) struct Corrupt {
    pub(crate) column: &'static str,
    pub(crate) value: String,
    pub(crate) source: BoxError,
}

impl From<Corrupt> for crate::StorageError {
    fn from(c: Corrupt) -> Self {
        crate::StorageError::backend(c)
    }
}

fn parse<T>(column: &'static str, value: &str) -> Result<T, Corrupt>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    value.parse().map_err(|e: T::Err| Corrupt {
        column,
        value: value.to_owned(),
        source: Box::new(e),
    })
}

fn parse_opt<T>(column: &'static str, value: Option<&str>) -> Result<Option<T>, Corrupt>
where
    T: std::str::FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    value.map(|v| parse(column, v)).transpose()
}

/// A stored id as the records hold it.
pub(crate) fn id(column: &'static str, v: i64) -> Result<u64, Corrupt> {
    u64::try_from(v).map_err(|e| Corrupt {
        column,
        value: v.to_string(),
        source: Box::new(e),
    })
}

/// Unix nanoseconds as stored (saturating at the epoch before 1970).
fn time(nanos: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
}

/// A row of `events`.
#[derive(sqlx::FromRow)]
pub(crate) struct EventRow {
    seq: i64,
    id: String,
    r#type: String,
    namespace: Option<String>,
    subject: Option<String>,
    actor: String,
    time: i64,
    data: String,
}

impl EventRow {
    pub(crate) fn into_record(self) -> Result<EventRecord, Corrupt> {
        let data = serde_json::from_str(&self.data).map_err(|e| Corrupt {
            column: "events.data",
            value: self.data.clone(),
            source: Box::new(e),
        })?;
        Ok(EventRecord {
            seq: id("events.seq", self.seq)?,
            event: NewEvent {
                id: self.id,
                event_type: parse("events.type", &self.r#type)?,
                namespace: parse_opt("events.namespace", self.namespace.as_deref())?,
                subject: self.subject,
                actor: self.actor,
                time: time(self.time),
                data,
            },
        })
    }
}

/// A row of `webhooks`.
#[derive(sqlx::FromRow)]
pub(crate) struct WebhookRow {
    id: i64,
    namespace: Option<String>,
    url: String,
    events: String,
    secret: String,
    include_pulls: bool,
    created: i64,
}

impl WebhookRow {
    pub(crate) fn into_record(self) -> Result<WebhookRecord, Corrupt> {
        let events = NewWebhook::parse_events_column(&self.events).map_err(|e| Corrupt {
            column: "webhooks.events",
            value: self.events.clone(),
            source: Box::new(e),
        })?;
        Ok(WebhookRecord {
            id: id("webhooks.id", self.id)?,
            webhook: NewWebhook {
                namespace: parse_opt("webhooks.namespace", self.namespace.as_deref())?,
                url: self.url,
                events,
                secret: self.secret,
                include_pulls: self.include_pulls,
            },
            created: time(self.created),
        })
    }
}

/// A row of `webhook_deliveries` joined with its event's id and type.
#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    id: i64,
    webhook: i64,
    event: i64,
    event_id: String,
    event_type: String,
    status: String,
    attempts: i64,
    last_code: Option<i64>,
    last_error: Option<String>,
    next_attempt: i64,
    updated: i64,
}

impl DeliveryRow {
    pub(crate) fn into_record(self) -> Result<DeliveryRecord, Corrupt> {
        Ok(DeliveryRecord {
            id: id("webhook_deliveries.id", self.id)?,
            webhook: id("webhook_deliveries.webhook", self.webhook)?,
            event_seq: id("webhook_deliveries.event", self.event)?,
            event_id: self.event_id,
            event_type: parse("events.type", &self.event_type)?,
            status: parse("webhook_deliveries.status", &self.status)?,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            last_code: self.last_code.and_then(|c| u16::try_from(c).ok()),
            last_error: self.last_error,
            next_attempt: time(self.next_attempt),
            updated: time(self.updated),
        })
    }
}

/// A delivery with the rest of its event: what the worker sends, read in
/// one query.
#[derive(sqlx::FromRow)]
pub(crate) struct PendingRow {
    #[sqlx(flatten)]
    delivery: DeliveryRow,
    namespace: Option<String>,
    subject: Option<String>,
    actor: String,
    time: i64,
    data: String,
}

impl PendingRow {
    pub(crate) fn into_records(self) -> Result<(DeliveryRecord, EventRecord), Corrupt> {
        let event = EventRow {
            seq: self.delivery.event,
            id: self.delivery.event_id.clone(),
            r#type: self.delivery.event_type.clone(),
            namespace: self.namespace,
            subject: self.subject,
            actor: self.actor,
            time: self.time,
            data: self.data,
        };
        Ok((self.delivery.into_record()?, event.into_record()?))
    }
}
