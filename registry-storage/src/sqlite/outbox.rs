//! The outbox in SQLite: events, webhooks and deliveries (migration
//! `0017_events.sql`). [`record_events`] adds its statements to a batch of
//! the transaction of the change that raised the events.

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use registry_core::Namespace;
use sqlx::SqliteConnection;

use super::batch::Batch;
use super::connections::{Readers, Slot};

use super::error::{from_nanos, now, parse_opt, sql_limit, to_nanos, Error, Result};
use super::SqliteMetadataStore;
use crate::error::Result as StorageResult;
use crate::events::{
    DeliveryOutcome, DeliveryQueue, DeliveryRecord, DeliveryStatus, EventFilter, EventRecord,
    EventStore, NewEvent, NewWebhook, WebhookRecord,
};
use crate::outbox_rows::{
    DeliveryRow, EventRow, PendingRow, WebhookRow, EVENT_COLUMNS, PENDING_EVENT_COLUMNS,
    WEBHOOK_COLUMNS,
};

/// Adds to `batch` the statements recording `events` and a pending
/// delivery per matching webhook (the rule of [`NewWebhook::matches`], in
/// SQL); the batch runs in the transaction of the change that raised them.
pub(super) fn record_events<'a>(
    batch: &mut Batch<'a>,
    events: &'a [NewEvent],
    now: i64,
) -> Result<()> {
    for e in events {
        let namespace = e.namespace.as_ref().map(Namespace::as_str);
        batch.push(
            "INSERT INTO events (id, type, namespace, subject, actor, time, data) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        );
        batch
            .bind(e.id.as_str())?
            .bind(e.event_type.as_str())?
            .bind(namespace)?
            .bind(e.subject.as_deref())?
            .bind(e.actor.as_str())?
            .bind(to_nanos(e.time))?
            .bind(serde_json::to_string(&e.data)?)?;
        // The event by its unique id, not `last_insert_rowid()`: that
        // changes with each delivery row this statement inserts.
        batch.push(
            "INSERT INTO webhook_deliveries (webhook, event, status, next_attempt, updated) \
             SELECT id, (SELECT seq FROM events WHERE id = ?), 'pending', ?, ? FROM webhooks \
             WHERE retired IS NULL AND (namespace IS NULL OR namespace = ?) \
               AND (events = '' OR instr(events, ?) > 0) \
               AND (? = 0 OR include_pulls = 1) ORDER BY id",
        );
        batch
            .bind(e.id.as_str())?
            .bind(now)?
            .bind(now)?
            .bind(namespace)?
            .bind(format!(",{},", e.event_type))?
            .bind(e.event_type.is_pull())?;
    }
    Ok(())
}

/// Deletes the webhooks retired with their namespace that have nothing
/// pending any more (their deliveries go with them).
const RETIRED_DONE: &str = "DELETE FROM webhooks WHERE retired IS NOT NULL \
     AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
         WHERE d.webhook = webhooks.id AND d.status = 'pending')";

/// Retires the webhooks of a deleted namespace; part of the deleting
/// transaction, after its events were recorded (so they still receive
/// those, and nothing later).
pub(super) async fn retire_webhooks(
    conn: &mut SqliteConnection,
    namespace: &Namespace,
    now: i64,
) -> Result<()> {
    sqlx::query("UPDATE webhooks SET retired = ? WHERE namespace = ? AND retired IS NULL")
        .bind(now)
        .bind(namespace.as_str())
        .execute(conn)
        .await?;
    Ok(())
}

const DELIVERY_COLUMNS: &str = "d.id, d.webhook, d.event, e.id AS event_id, e.type AS event_type, \
     d.status, d.attempts, d.last_code, d.last_error, d.next_attempt, d.updated";

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

async fn insert_webhook(conn: &mut SqliteConnection, w: &NewWebhook) -> Result<WebhookRecord> {
    let row: WebhookRow = sqlx::query_as(&format!(
        "INSERT INTO webhooks (namespace, url, events, secret, include_pulls, created) \
         VALUES (?, ?, ?, ?, ?, ?) RETURNING {WEBHOOK_COLUMNS}"
    ))
    .bind(w.namespace.as_ref().map(Namespace::as_str))
    .bind(&w.url)
    .bind(w.events_column())
    .bind(&w.secret)
    .bind(w.include_pulls)
    .bind(now())
    .fetch_one(&mut *conn)
    .await?;
    Ok(row.into_record()?)
}

async fn events(
    reader: &Readers,
    filter: &EventFilter,
    after: Option<u64>,
    limit: usize,
) -> Result<Vec<EventRecord>> {
    let mut query =
        sqlx::QueryBuilder::new(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq > "));
    query.push_bind(after.map_or(0, to_i64));
    if let Some(namespaces) = &filter.namespaces {
        query.push(" AND namespace IN (");
        let mut list = query.separated(", ");
        for ns in namespaces {
            list.push_bind(ns.as_str().to_owned());
        }
        // `IN ()` is a syntax error: an empty list matches nothing.
        if namespaces.is_empty() {
            list.push("NULL");
        }
        query.push(")");
    }
    if let Some(actor) = &filter.actor {
        query.push(" AND actor = ").push_bind(actor.clone());
    }
    if let Some(t) = filter.event_type {
        query.push(" AND type = ").push_bind(t.as_str());
    }
    if let Some(since) = filter.since {
        query.push(" AND time >= ").push_bind(to_nanos(since));
    }
    if let Some(until) = filter.until {
        query.push(" AND time < ").push_bind(to_nanos(until));
    }
    query
        .push(" ORDER BY seq LIMIT ")
        .push_bind(sql_limit(limit));
    let rows: Vec<EventRow> = query.build_query_as().fetch_all(reader).await?;
    Ok(rows
        .into_iter()
        .map(EventRow::into_record)
        .collect::<Result<_, _>>()?)
}

#[async_trait]
impl EventStore for SqliteMetadataStore {
    async fn append_events(&self, events: Vec<NewEvent>) -> StorageResult<()> {
        let result: Result<()> = async {
            let mut batch = Batch::new();
            record_events(&mut batch, &events, now())?;
            self.writer.transact(batch).await?;
            Ok(())
        }
        .await;
        Ok(result?)
    }

    async fn events(
        &self,
        filter: &EventFilter,
        after: Option<u64>,
        limit: usize,
    ) -> StorageResult<Vec<EventRecord>> {
        Ok(events(&self.reader, filter, after, limit).await?)
    }

    async fn event(&self, seq: u64) -> StorageResult<Option<EventRecord>> {
        let row: Option<EventRow> =
            sqlx::query_as(&format!("SELECT {EVENT_COLUMNS} FROM events WHERE seq = ?"))
                .bind(to_i64(seq))
                .fetch_optional(&self.reader)
                .await
                .map_err(Error::from)?;
        Ok(row.map(EventRow::into_record).transpose()?)
    }

    async fn sweep_events(&self, before: SystemTime, limit: usize) -> StorageResult<u64> {
        // Deliveries go with their events (foreign key cascade).
        let done = sqlx::query(
            "DELETE FROM events WHERE seq IN (SELECT seq FROM events e WHERE time < ? \
             AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d \
                 WHERE d.event = e.seq AND d.status = 'pending') ORDER BY seq LIMIT ?)",
        )
        .bind(to_nanos(before))
        .bind(sql_limit(limit))
        .execute(&self.writer)
        .await
        .map_err(Error::from)?;
        sqlx::query(RETIRED_DONE)
            .execute(&self.writer)
            .await
            .map_err(Error::from)?;
        Ok(done.rows_affected())
    }

    async fn create_webhook(
        &self,
        webhook: NewWebhook,
        max_per_namespace: usize,
    ) -> StorageResult<WebhookRecord> {
        let result: Result<WebhookRecord> = async {
            let mut tx = self.writer.begin().await?;
            let count: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM webhooks WHERE namespace IS ? AND retired IS NULL",
            )
            .bind(webhook.namespace.as_ref().map(Namespace::as_str))
            .fetch_one(&mut *tx)
            .await?;
            if count >= sql_limit(max_per_namespace) {
                return Err(Error::LimitReached(format!(
                    "at most {max_per_namespace} webhooks per namespace"
                )));
            }
            let record = insert_webhook(&mut tx, &webhook).await?;
            tx.commit().await?;
            Ok(record)
        }
        .await;
        Ok(result?)
    }

    async fn sync_cluster_webhooks(&self, sinks: &[NewWebhook]) -> StorageResult<()> {
        let result: Result<()> = async {
            let mut tx = self.writer.begin().await?;
            let existing: Vec<(i64, String)> =
                sqlx::query_as("SELECT id, url FROM webhooks WHERE namespace IS NULL")
                    .fetch_all(&mut *tx)
                    .await?;
            for (id, url) in &existing {
                if !sinks.iter().any(|s| &s.url == url) {
                    sqlx::query("DELETE FROM webhooks WHERE id = ?")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            for sink in sinks {
                match existing.iter().find(|(_, url)| url == &sink.url) {
                    Some((id, _)) => {
                        sqlx::query(
                            "UPDATE webhooks SET events = ?, secret = ?, include_pulls = ? \
                             WHERE id = ?",
                        )
                        .bind(sink.events_column())
                        .bind(&sink.secret)
                        .bind(sink.include_pulls)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    }
                    None => {
                        insert_webhook(&mut tx, sink).await?;
                    }
                }
            }
            tx.commit().await?;
            Ok(())
        }
        .await;
        Ok(result?)
    }

    async fn webhooks(&self, namespace: Option<&Namespace>) -> StorageResult<Vec<WebhookRecord>> {
        let rows: Vec<WebhookRow> = sqlx::query_as(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE namespace IS ? AND retired IS NULL \
             ORDER BY id"
        ))
        .bind(namespace.map(Namespace::as_str))
        .fetch_all(&self.reader)
        .await
        .map_err(Error::from)?;
        Ok(rows
            .into_iter()
            .map(WebhookRow::into_record)
            .collect::<Result<_, _>>()?)
    }

    async fn pull_scopes(&self) -> StorageResult<Vec<Option<Namespace>>> {
        let rows: Vec<Option<String>> = sqlx::query_scalar(
            "SELECT DISTINCT namespace FROM webhooks WHERE include_pulls = 1 AND retired IS NULL",
        )
        .fetch_all(&self.reader)
        .await
        .map_err(Error::from)?;
        Ok(rows
            .iter()
            .map(|n| parse_opt("webhooks.namespace", n.as_deref()))
            .collect::<Result<_, _>>()?)
    }

    async fn webhook(&self, id: u64) -> StorageResult<Option<WebhookRecord>> {
        let row: Option<WebhookRow> = sqlx::query_as(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?"
        ))
        .bind(to_i64(id))
        .fetch_optional(&self.reader)
        .await
        .map_err(Error::from)?;
        Ok(row.map(WebhookRow::into_record).transpose()?)
    }

    async fn delete_webhook(&self, id: u64) -> StorageResult<()> {
        let done = sqlx::query("DELETE FROM webhooks WHERE id = ?")
            .bind(to_i64(id))
            .execute(&self.writer)
            .await
            .map_err(Error::from)?;
        if done.rows_affected() == 0 {
            return Err(Error::NotFound(format!("webhook {id}")).into());
        }
        Ok(())
    }

    async fn claim_webhooks(
        &self,
        owner: &str,
        lease: Duration,
        limit: usize,
    ) -> StorageResult<Vec<u64>> {
        // Asked on the read pool first: an UPDATE that matches nothing
        // still takes the single write lock the pushes wait for, and the
        // worker asks after every commit, webhooks or not.
        let pending: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM webhook_deliveries WHERE status = 'pending')",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(Error::from)?;
        if !pending {
            return Ok(Vec::new());
        }
        let now = now();
        let until = to_nanos(SystemTime::now() + lease);
        let ids: Vec<i64> = sqlx::query_scalar(
            "UPDATE webhooks SET lease_owner = ?1, lease_until = ?2 WHERE id IN ( \
               SELECT w.id FROM webhooks w \
               WHERE (w.lease_until IS NULL OR w.lease_until <= ?3) \
                 AND (w.retry_at IS NULL OR w.retry_at <= ?3) \
                 AND EXISTS (SELECT 1 FROM webhook_deliveries d \
                     WHERE d.webhook = w.id AND d.status = 'pending') \
               ORDER BY w.id LIMIT ?4) RETURNING id",
        )
        .bind(owner)
        .bind(until)
        .bind(now)
        .bind(sql_limit(limit))
        .fetch_all(&self.writer)
        .await
        .map_err(Error::from)?;
        Ok(ids
            .into_iter()
            .map(|id| crate::outbox_rows::id("webhooks.id", id))
            .collect::<Result<_, _>>()?)
    }

    async fn pending_deliveries(
        &self,
        webhook: u64,
        limit: usize,
    ) -> StorageResult<Vec<(DeliveryRecord, EventRecord)>> {
        let rows: Vec<PendingRow> = sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS}, {PENDING_EVENT_COLUMNS} FROM webhook_deliveries d \
             JOIN events e ON e.seq = d.event \
             WHERE d.webhook = ? AND d.status = 'pending' ORDER BY d.id LIMIT ?"
        ))
        .bind(to_i64(webhook))
        .bind(sql_limit(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(Error::from)?;
        Ok(rows
            .into_iter()
            .map(PendingRow::into_records)
            .collect::<Result<_, _>>()?)
    }

    async fn finish_claim(
        &self,
        webhook: u64,
        owner: &str,
        outcomes: &[(u64, DeliveryOutcome)],
    ) -> StorageResult<()> {
        // One round trip: the outcomes and the lease's end in one batch.
        let result: Result<()> = async {
            let mut batch = Batch::new();
            if !outcomes.is_empty() {
                // One statement for the whole batch: SQLite names a VALUES
                // list's columns column1, column2, …
                let rows = vec!["(?, ?, ?, ?, ?)"; outcomes.len()].join(", ");
                batch.push(format!(
                    "UPDATE webhook_deliveries SET status = o.column2, attempts = attempts + 1, \
                     last_code = o.column3, last_error = o.column4, next_attempt = o.column5, \
                     updated = ? FROM (VALUES {rows}) AS o \
                     WHERE webhook_deliveries.id = o.column1 AND webhook_deliveries.webhook = ?"
                ));
                batch.bind(now())?;
                for (id, o) in outcomes {
                    batch
                        .bind(to_i64(*id))?
                        .bind(o.status.as_str())?
                        .bind(o.code.map(i64::from))?
                        .bind(o.error.as_deref())?
                        .bind(to_nanos(o.next_attempt))?;
                }
                batch.bind(to_i64(webhook))?;
            }
            let retry_at = outcomes
                .last()
                .filter(|(_, o)| o.status == DeliveryStatus::Pending)
                .map(|(_, o)| to_nanos(o.next_attempt));
            // The SET expressions all see the row as it was.
            batch.push(
                "UPDATE webhooks SET retry_at = ?, \
                 lease_owner = CASE WHEN lease_owner = ? THEN NULL ELSE lease_owner END, \
                 lease_until = CASE WHEN lease_owner = ? THEN NULL ELSE lease_until END \
                 WHERE id = ?",
            );
            batch
                .bind(retry_at)?
                .bind(owner)?
                .bind(owner)?
                .bind(to_i64(webhook))?;
            self.writer.transact(batch).await?;
            Ok(())
        }
        .await;
        Ok(result?)
    }

    async fn deliveries(
        &self,
        webhook: u64,
        before: Option<u64>,
        limit: usize,
    ) -> StorageResult<Vec<DeliveryRecord>> {
        let rows: Vec<DeliveryRow> = sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN events e ON e.seq = d.event \
             WHERE d.webhook = ? AND d.id < ? ORDER BY d.id DESC LIMIT ?"
        ))
        .bind(to_i64(webhook))
        .bind(before.map_or(i64::MAX, to_i64))
        .bind(sql_limit(limit))
        .fetch_all(&self.reader)
        .await
        .map_err(Error::from)?;
        Ok(rows
            .into_iter()
            .map(DeliveryRow::into_record)
            .collect::<Result<_, _>>()?)
    }

    async fn delivery(&self, id: u64) -> StorageResult<Option<DeliveryRecord>> {
        let row: Option<DeliveryRow> = sqlx::query_as(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries d JOIN events e ON e.seq = d.event \
             WHERE d.id = ?"
        ))
        .bind(to_i64(id))
        .fetch_optional(&self.reader)
        .await
        .map_err(Error::from)?;
        Ok(row.map(DeliveryRow::into_record).transpose()?)
    }

    async fn redeliver(&self, id: u64) -> StorageResult<()> {
        let result: Result<()> = async {
            let mut tx = self.writer.begin().await?;
            let now = now();
            let webhook: Option<i64> = sqlx::query_scalar(
                "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, \
                 next_attempt = ?1, updated = ?1 WHERE id = ?2 RETURNING webhook",
            )
            .bind(now)
            .bind(to_i64(id))
            .fetch_optional(&mut *tx)
            .await?;
            let Some(webhook) = webhook else {
                return Err(Error::NotFound(format!("delivery {id}")));
            };
            sqlx::query("UPDATE webhooks SET retry_at = NULL WHERE id = ?")
                .bind(webhook)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(())
        }
        .await;
        Ok(result?)
    }

    async fn delivery_queue(&self) -> StorageResult<DeliveryQueue> {
        let (pending, oldest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT count(*), min(e.time) FROM webhook_deliveries d \
             JOIN events e ON e.seq = d.event WHERE d.status = 'pending'",
        )
        .fetch_one(&self.reader)
        .await
        .map_err(Error::from)?;
        Ok(DeliveryQueue {
            pending: u64::try_from(pending).unwrap_or(0),
            oldest: oldest.map(from_nanos),
        })
    }
}

/// A process opening the database is the only one using it (SQLite is one
/// process): leases a killed process held are dropped at open.
pub(super) async fn release_all_leases(writer: &Slot) -> Result<()> {
    sqlx::query("UPDATE webhooks SET lease_owner = NULL, lease_until = NULL")
        .execute(writer)
        .await?;
    Ok(())
}
