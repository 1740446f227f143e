//! The delivery worker: claims webhooks with due deliveries (a lease in
//! the store, so one replica at a time serves a webhook), sends a batch of
//! their pending deliveries oldest first, and records the batch's outcomes
//! with the end of the claim in one store transaction. A failed attempt
//! ends the batch and is retried after an exponential back-off with a cap,
//! holding the webhook's later deliveries back (order per webhook); after
//! the retry budget it is marked failed and the next one goes. It wakes
//! on a local commit, a moment later so that a burst of pushes is sent as
//! one batch, and polls for other replicas' deliveries.
//!
//! The store work per batch is fixed (claim, read, record and release), so
//! a burst of pushes costs the single SQLite writer a few statements per
//! batch, not per event.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use registry_storage::{
    DeliveryOutcome, DeliveryRecord, DeliveryStatus, EventRecord, EventStore, WebhookRecord,
};

use super::{guard, CloudEvent, Events, EventsConfig, SIGNATURE_HEADER};
use crate::metrics::Metrics;

/// Largest part of a receiver's answer kept in a delivery's `last_error`.
const MAX_ERROR_LEN: usize = 200;

/// The running worker; stopped when dropped (with the registry).
#[derive(Debug)]
pub(crate) struct DeliveryWorker(tokio::task::AbortHandle);

impl Drop for DeliveryWorker {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the worker when a Tokio runtime runs (a registry built outside
/// one delivers nothing: a warning says so).
pub(crate) fn start(events: &Arc<Events>, metrics: &Arc<Metrics>) -> Option<DeliveryWorker> {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("registry built outside a Tokio runtime: webhook deliveries wait for a registry built inside one");
        return None;
    };
    let task = runtime.spawn(run(events.clone(), metrics.clone()));
    Some(DeliveryWorker(task.abort_handle()))
}

async fn run(events: Arc<Events>, metrics: Arc<Metrics>) {
    let owner = uuid::Uuid::new_v4().to_string();
    let config = &events.config;
    let mut last_sweep: Option<std::time::Instant> = None;
    let mut last_gauges: Option<std::time::Instant> = None;
    loop {
        let claimed = match events
            .store
            .claim_webhooks(&owner, config.lease, config.concurrency)
            .await
        {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "claiming webhook deliveries failed");
                Vec::new()
            }
        };
        if !claimed.is_empty() {
            futures::stream::iter(claimed)
                .for_each_concurrent(config.concurrency, |id| {
                    serve_webhook(&events, &metrics, &owner, id)
                })
                .await;
            // What the burst committed meanwhile goes out as the next batch.
            tokio::time::sleep(config.coalesce).await;
            continue;
        }
        if last_gauges.is_none_or(|t| t.elapsed() >= config.poll_interval) {
            update_gauges(events.store.as_ref(), &metrics).await;
            last_gauges = Some(std::time::Instant::now());
        }
        if last_sweep.is_none_or(|t| t.elapsed() > Duration::from_secs(600)) {
            sweep(&events).await;
            last_sweep = Some(std::time::Instant::now());
        }
        tokio::select! {
            () = events.wake.notified() => {
                // Let the rest of a burst commit: it goes out as one batch.
                tokio::time::sleep(config.coalesce).await;
            }
            () = tokio::time::sleep(config.poll_interval) => {}
        }
    }
}

async fn update_gauges(store: &dyn EventStore, metrics: &Metrics) {
    if let Ok(queue) = store.delivery_queue().await {
        let age = queue
            .oldest
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .unwrap_or_default();
        metrics.events.set_queue(queue.pending, age);
    }
}

async fn sweep(events: &Events) {
    let Some(retention) = events.config.retention else {
        return;
    };
    let Some(before) = SystemTime::now().checked_sub(retention) else {
        return;
    };
    const BATCH: usize = 1000;
    loop {
        match events.store.sweep_events(before, BATCH).await {
            Ok(n) if n == BATCH as u64 => continue,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, "sweeping old events failed");
                return;
            }
        }
    }
}

/// Sends one claimed webhook's pending deliveries in order, until one
/// fails or the batch ends, then records their outcomes and releases the
/// claim in one store call.
async fn serve_webhook(events: &Events, metrics: &Metrics, owner: &str, id: u64) {
    let store = events.store.as_ref();
    let mut outcomes = Vec::new();
    let sent = async {
        let Some(webhook) = store.webhook(id).await? else {
            return Ok(());
        };
        let pending = store.pending_deliveries(id, events.config.batch).await?;
        let claimed = std::time::Instant::now();
        let mut connection = None;
        for (delivery, event) in pending {
            // Another replica may take the webhook over once the claim
            // expires: never send past it.
            if claimed.elapsed() + events.config.request_timeout >= events.config.lease {
                break;
            }
            let outcome =
                attempt(&events.config, &webhook, &delivery, &event, &mut connection).await;
            metrics.events.delivery(outcome.status);
            let retry = outcome.status == DeliveryStatus::Pending;
            outcomes.push((delivery.id, outcome));
            if retry {
                break;
            }
        }
        Ok::<_, registry_storage::StorageError>(())
    }
    .await;
    if let Err(e) = sent {
        tracing::warn!(webhook = id, error = %e, "reading a webhook's deliveries failed");
    }
    if let Err(e) = store.finish_claim(id, owner, &outcomes).await {
        tracing::warn!(webhook = id, error = %e, sent = outcomes.len(),
            "recording webhook deliveries failed: they will be sent again");
    }
}

/// One attempt of one delivery, and what it came to.
async fn attempt(
    config: &EventsConfig,
    webhook: &WebhookRecord,
    delivery: &DeliveryRecord,
    event: &EventRecord,
    connection: &mut Option<Connection>,
) -> DeliveryOutcome {
    let (code, error) = match send(config, webhook, event, connection).await {
        Ok(code) if (200..300).contains(&code) => {
            return DeliveryOutcome {
                status: DeliveryStatus::Delivered,
                code: Some(code),
                error: None,
                next_attempt: SystemTime::now(),
            }
        }
        Ok(code) => (Some(code), format!("receiver answered {code}")),
        Err(e) => (None, e),
    };
    let attempts = delivery.attempts + 1;
    tracing::debug!(webhook = webhook.id, delivery = delivery.id, attempts, %error, "webhook delivery failed");
    let status = if attempts >= config.max_attempts {
        tracing::warn!(webhook = webhook.id, delivery = delivery.id, event = %event.event.id, %error, "webhook delivery failed for good after {attempts} attempts");
        DeliveryStatus::Failed
    } else {
        DeliveryStatus::Pending
    };
    DeliveryOutcome {
        status,
        code,
        error: Some(error),
        next_attempt: SystemTime::now() + backoff(config, attempts),
    }
}

/// The delay after the `attempts`-th failed attempt: doubling from the
/// initial back-off, capped.
pub(crate) fn backoff(config: &EventsConfig, attempts: u32) -> Duration {
    config
        .initial_backoff
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20))
        .min(config.max_backoff)
}

/// A client bound to the address a webhook's host resolved to: reused
/// (keep-alive) while the host keeps resolving to it.
pub(crate) struct Connection {
    addr: SocketAddr,
    client: reqwest::Client,
}

/// POSTs the event to the webhook, connecting to the address the guard
/// checked (resolved again for every delivery); the receiver's status, or
/// why there was none.
async fn send(
    config: &EventsConfig,
    webhook: &WebhookRecord,
    event: &EventRecord,
    connection: &mut Option<Connection>,
) -> Result<u16, String> {
    let url = guard::validate_url(&webhook.webhook.url, config.allow_private)
        .map_err(|e| e.to_string())?;
    let addr = guard::resolve(&url, config.allow_private)
        .await
        .map_err(|e| e.to_string())?;
    let client = match connection {
        Some(c) if c.addr == addr => c.client.clone(),
        _ => {
            let host = url.host_str().unwrap_or_default().to_owned();
            // reqwest is built without a bundled crypto provider.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(config.connect_timeout)
                .timeout(config.request_timeout)
                .resolve(&host, addr)
                .user_agent(concat!("registry-webhooks/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| e.to_string())?;
            *connection = Some(Connection {
                addr,
                client: client.clone(),
            });
            client
        }
    };
    let body = serde_json::to_vec(&CloudEvent::from_record(event, &config.source))
        .map_err(|e| e.to_string())?;
    let response = client
        .post(url)
        .header("Content-Type", "application/cloudevents+json")
        .header(
            SIGNATURE_HEADER,
            super::signature(&webhook.webhook.secret, &body),
        )
        .header("X-Registry-Event-Id", &event.event.id)
        .body(body)
        .send()
        .await
        .map_err(|e| truncate(&error_chain(&e)))?;
    Ok(response.status().as_u16())
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn truncate(text: &str) -> String {
    match text.char_indices().nth(MAX_ERROR_LEN) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let config = EventsConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..EventsConfig::default()
        };
        let delays: Vec<u128> = (1..=6).map(|n| backoff(&config, n).as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1000, 1000]);
        assert_eq!(backoff(&config, 1000), Duration::from_secs(1));
    }
}
