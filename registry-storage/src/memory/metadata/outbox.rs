//! The in-memory store's outbox: events, webhooks and deliveries under the
//! store's one lock, so an event recorded with a change is atomic with it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use registry_core::Namespace;

use super::MemoryMetadataStore;
use crate::error::{Result, StorageError};
use crate::events::{
    DeliveryOutcome, DeliveryQueue, DeliveryRecord, DeliveryStatus, EventFilter, EventRecord,
    EventStore, NewEvent, NewWebhook, WebhookRecord,
};

#[derive(Debug, Default)]
pub(in crate::memory) struct Outbox {
    next_seq: u64,
    next_webhook: u64,
    next_delivery: u64,
    events: BTreeMap<u64, NewEvent>,
    webhooks: BTreeMap<u64, Hook>,
    deliveries: BTreeMap<u64, DeliveryRecord>,
}

#[derive(Debug)]
struct Hook {
    record: WebhookRecord,
    retry_at: Option<SystemTime>,
    lease: Option<(String, SystemTime)>,
    /// Its namespace was deleted: it receives no new event, and goes once
    /// what it still has to deliver is delivered.
    retired: bool,
}

impl Outbox {
    /// Records events with a delivery per matching webhook.
    pub(in crate::memory) fn record(&mut self, events: Vec<NewEvent>, now: SystemTime) {
        for event in events {
            self.next_seq += 1;
            let seq = self.next_seq;
            for hook in self.webhooks.values().filter(|h| !h.retired) {
                let w = &hook.record.webhook;
                if !w.matches(event.event_type, event.namespace.as_ref()) {
                    continue;
                }
                self.next_delivery += 1;
                let id = self.next_delivery;
                self.deliveries.insert(
                    id,
                    DeliveryRecord {
                        id,
                        webhook: hook.record.id,
                        event_seq: seq,
                        event_id: event.id.clone(),
                        event_type: event.event_type,
                        status: DeliveryStatus::Pending,
                        attempts: 0,
                        last_code: None,
                        last_error: None,
                        next_attempt: now,
                        updated: now,
                    },
                );
            }
            self.events.insert(seq, event);
        }
    }

    fn insert_webhook(&mut self, webhook: NewWebhook, now: SystemTime) -> WebhookRecord {
        self.next_webhook += 1;
        let record = WebhookRecord {
            id: self.next_webhook,
            webhook,
            created: now,
        };
        self.webhooks.insert(
            record.id,
            Hook {
                record: record.clone(),
                retry_at: None,
                lease: None,
                retired: false,
            },
        );
        record
    }

    /// Retires the webhooks of a deleted namespace (after the deletion's
    /// own events were recorded, so they still receive those).
    pub(in crate::memory) fn retire(&mut self, namespace: &Namespace) {
        for hook in self.webhooks.values_mut() {
            if hook.record.webhook.namespace.as_ref() == Some(namespace) {
                hook.retired = true;
            }
        }
    }

    /// Removes retired webhooks that have nothing pending any more.
    fn drop_retired(&mut self) {
        let done: Vec<u64> = self
            .webhooks
            .values()
            .filter(|h| h.retired)
            .map(|h| h.record.id)
            .filter(|id| {
                !self
                    .deliveries
                    .values()
                    .any(|d| d.webhook == *id && d.status == DeliveryStatus::Pending)
            })
            .collect();
        for id in done {
            self.remove_webhook(id);
        }
    }

    fn remove_webhook(&mut self, id: u64) -> bool {
        self.deliveries.retain(|_, d| d.webhook != id);
        self.webhooks.remove(&id).is_some()
    }

    fn due(&self, id: u64, now: SystemTime) -> bool {
        self.deliveries
            .values()
            .any(|d| d.webhook == id && d.status == DeliveryStatus::Pending)
            && self.webhooks[&id].retry_at.is_none_or(|t| t <= now)
    }
}

fn record_of(seq: u64, event: &NewEvent) -> EventRecord {
    EventRecord {
        seq,
        event: event.clone(),
    }
}

#[async_trait]
impl EventStore for MemoryMetadataStore {
    async fn append_events(&self, events: Vec<NewEvent>) -> Result<()> {
        self.write().outbox.record(events, SystemTime::now());
        Ok(())
    }

    async fn events(
        &self,
        filter: &EventFilter,
        after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<EventRecord>> {
        let state = self.read();
        let start = after.map_or(0, |a| a.saturating_add(1));
        Ok(state
            .outbox
            .events
            .range(start..)
            .filter(|(_, e)| filter.matches(e))
            .take(limit)
            .map(|(seq, e)| record_of(*seq, e))
            .collect())
    }

    async fn event(&self, seq: u64) -> Result<Option<EventRecord>> {
        Ok(self
            .read()
            .outbox
            .events
            .get(&seq)
            .map(|e| record_of(seq, e)))
    }

    async fn sweep_events(&self, before: SystemTime, limit: usize) -> Result<u64> {
        let mut state = self.write();
        let outbox = &mut state.outbox;
        let old: Vec<u64> = outbox
            .events
            .iter()
            .filter(|(seq, e)| {
                e.time < before
                    && !outbox
                        .deliveries
                        .values()
                        .any(|d| d.event_seq == **seq && d.status == DeliveryStatus::Pending)
            })
            .map(|(seq, _)| *seq)
            .take(limit)
            .collect();
        for seq in &old {
            outbox.events.remove(seq);
        }
        outbox.deliveries.retain(|_, d| !old.contains(&d.event_seq));
        outbox.drop_retired();
        Ok(old.len() as u64)
    }

    async fn create_webhook(
        &self,
        webhook: NewWebhook,
        max_per_namespace: usize,
    ) -> Result<WebhookRecord> {
        let mut state = self.write();
        let count = state
            .outbox
            .webhooks
            .values()
            .filter(|h| !h.retired && h.record.webhook.namespace == webhook.namespace)
            .count();
        if count >= max_per_namespace {
            return Err(too_many(max_per_namespace));
        }
        Ok(state.outbox.insert_webhook(webhook, SystemTime::now()))
    }

    async fn sync_cluster_webhooks(&self, sinks: &[NewWebhook]) -> Result<()> {
        let mut state = self.write();
        let outbox = &mut state.outbox;
        let stale: Vec<u64> = outbox
            .webhooks
            .values()
            .filter(|h| h.record.webhook.namespace.is_none())
            .filter(|h| !sinks.iter().any(|s| s.url == h.record.webhook.url))
            .map(|h| h.record.id)
            .collect();
        for id in stale {
            outbox.remove_webhook(id);
        }
        for sink in sinks {
            let existing = outbox
                .webhooks
                .values_mut()
                .find(|h| h.record.webhook.namespace.is_none() && h.record.webhook.url == sink.url);
            match existing {
                Some(hook) => hook.record.webhook = sink.clone(),
                None => {
                    outbox.insert_webhook(sink.clone(), SystemTime::now());
                }
            }
        }
        Ok(())
    }

    async fn webhooks(&self, namespace: Option<&Namespace>) -> Result<Vec<WebhookRecord>> {
        Ok(self
            .read()
            .outbox
            .webhooks
            .values()
            .filter(|h| !h.retired && h.record.webhook.namespace.as_ref() == namespace)
            .map(|h| h.record.clone())
            .collect())
    }

    async fn pull_scopes(&self) -> Result<Vec<Option<Namespace>>> {
        Ok(self
            .read()
            .outbox
            .webhooks
            .values()
            .filter(|h| !h.retired && h.record.webhook.include_pulls)
            .map(|h| h.record.webhook.namespace.clone())
            .collect())
    }

    async fn webhook(&self, id: u64) -> Result<Option<WebhookRecord>> {
        Ok(self
            .read()
            .outbox
            .webhooks
            .get(&id)
            .map(|h| h.record.clone()))
    }

    async fn delete_webhook(&self, id: u64) -> Result<()> {
        if self.write().outbox.remove_webhook(id) {
            Ok(())
        } else {
            Err(StorageError::not_found(format_args!("webhook {id}")))
        }
    }

    async fn claim_webhooks(&self, owner: &str, lease: Duration, limit: usize) -> Result<Vec<u64>> {
        let now = SystemTime::now();
        let mut state = self.write();
        let outbox = &mut state.outbox;
        let free: Vec<u64> = outbox
            .webhooks
            .values()
            .filter(|h| h.lease.as_ref().is_none_or(|(_, until)| *until <= now))
            .map(|h| h.record.id)
            .filter(|id| outbox.due(*id, now))
            .take(limit)
            .collect();
        for id in &free {
            if let Some(hook) = outbox.webhooks.get_mut(id) {
                hook.lease = Some((owner.to_owned(), now + lease));
            }
        }
        Ok(free)
    }

    async fn pending_deliveries(
        &self,
        webhook: u64,
        limit: usize,
    ) -> Result<Vec<(DeliveryRecord, EventRecord)>> {
        let state = self.read();
        let outbox = &state.outbox;
        Ok(outbox
            .deliveries
            .values()
            .filter(|d| d.webhook == webhook && d.status == DeliveryStatus::Pending)
            .filter_map(|d| {
                let event = outbox.events.get(&d.event_seq)?;
                Some((d.clone(), record_of(d.event_seq, event)))
            })
            .take(limit)
            .collect())
    }

    async fn finish_claim(
        &self,
        webhook: u64,
        owner: &str,
        outcomes: &[(u64, DeliveryOutcome)],
    ) -> Result<()> {
        let now = SystemTime::now();
        let mut state = self.write();
        let outbox = &mut state.outbox;
        for (id, outcome) in outcomes {
            let Some(delivery) = outbox.deliveries.get_mut(id) else {
                continue;
            };
            delivery.status = outcome.status;
            delivery.attempts += 1;
            delivery.last_code = outcome.code;
            delivery.last_error = outcome.error.clone();
            delivery.next_attempt = outcome.next_attempt;
            delivery.updated = now;
        }
        if let Some(hook) = outbox.webhooks.get_mut(&webhook) {
            hook.retry_at = outcomes
                .last()
                .filter(|(_, o)| o.status == DeliveryStatus::Pending)
                .map(|(_, o)| o.next_attempt);
            if hook.lease.as_ref().is_some_and(|(o, _)| o == owner) {
                hook.lease = None;
            }
        }
        Ok(())
    }

    async fn deliveries(
        &self,
        webhook: u64,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeliveryRecord>> {
        let state = self.read();
        let end = before.unwrap_or(u64::MAX);
        Ok(state
            .outbox
            .deliveries
            .range(..end)
            .rev()
            .map(|(_, d)| d)
            .filter(|d| d.webhook == webhook)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn delivery(&self, id: u64) -> Result<Option<DeliveryRecord>> {
        Ok(self.read().outbox.deliveries.get(&id).cloned())
    }

    async fn redeliver(&self, id: u64) -> Result<()> {
        let now = SystemTime::now();
        let mut state = self.write();
        let outbox = &mut state.outbox;
        let delivery = outbox
            .deliveries
            .get_mut(&id)
            .ok_or_else(|| StorageError::not_found(format_args!("delivery {id}")))?;
        delivery.status = DeliveryStatus::Pending;
        delivery.attempts = 0;
        delivery.next_attempt = now;
        delivery.updated = now;
        let webhook = delivery.webhook;
        if let Some(hook) = outbox.webhooks.get_mut(&webhook) {
            hook.retry_at = None;
        }
        Ok(())
    }

    async fn delivery_queue(&self) -> Result<DeliveryQueue> {
        let state = self.read();
        let outbox = &state.outbox;
        let pending = outbox
            .deliveries
            .values()
            .filter(|d| d.status == DeliveryStatus::Pending);
        let mut queue = DeliveryQueue::default();
        for d in pending {
            queue.pending += 1;
            let time = outbox.events.get(&d.event_seq).map(|e| e.time);
            queue.oldest = match (queue.oldest, time) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        Ok(queue)
    }
}

/// The refusal of a webhook past the per-namespace cap.
pub(crate) fn too_many(max: usize) -> StorageError {
    StorageError::LimitReached {
        what: format!("at most {max} webhooks per namespace"),
    }
}
