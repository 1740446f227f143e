//! The events' metrics: `registry_events_raised_total{type}`,
//! `registry_webhook_deliveries_total{result}`, and the delivery queue's
//! depth and oldest age (`registry_webhook_queue_depth`,
//! `registry_webhook_queue_oldest_age_seconds`, as the delivery worker
//! last saw them).

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use registry_storage::{DeliveryStatus, EventType};

/// Counters and gauges of events and webhook deliveries.
#[derive(Debug)]
pub struct EventCounters {
    raised: Vec<AtomicU64>,
    delivered: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    queue_depth: AtomicU64,
    oldest_age_millis: AtomicU64,
}

impl Default for EventCounters {
    fn default() -> Self {
        EventCounters {
            raised: EventType::ALL.iter().map(|_| AtomicU64::new(0)).collect(),
            delivered: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            queue_depth: AtomicU64::new(0),
            oldest_age_millis: AtomicU64::new(0),
        }
    }
}

impl EventCounters {
    /// Counts events raised (recorded with their change).
    pub(crate) fn raised(&self, events: &[registry_storage::NewEvent]) {
        for e in events {
            if let Some(i) = EventType::ALL.iter().position(|t| *t == e.event_type) {
                self.raised[i].fetch_add(1, Relaxed);
            }
        }
    }

    /// Counts one delivery attempt by what it came to.
    pub(crate) fn delivery(&self, status: DeliveryStatus) {
        match status {
            DeliveryStatus::Delivered => &self.delivered,
            DeliveryStatus::Pending => &self.retried,
            DeliveryStatus::Failed => &self.failed,
        }
        .fetch_add(1, Relaxed);
    }

    /// Sets the queue gauges.
    pub(crate) fn set_queue(&self, pending: u64, oldest_age: Duration) {
        self.queue_depth.store(pending, Relaxed);
        let millis = u64::try_from(oldest_age.as_millis()).unwrap_or(u64::MAX);
        self.oldest_age_millis.store(millis, Relaxed);
    }

    /// Events of `event_type` raised by this process.
    pub fn raised_count(&self, event_type: EventType) -> u64 {
        EventType::ALL
            .iter()
            .position(|t| *t == event_type)
            .map_or(0, |i| self.raised[i].load(Relaxed))
    }

    /// Delivery attempts by result: `delivered`, `retry`, `failed`.
    pub fn deliveries(&self, result: &str) -> u64 {
        match result {
            "delivered" => self.delivered.load(Relaxed),
            "retry" => self.retried.load(Relaxed),
            "failed" => self.failed.load(Relaxed),
            _ => 0,
        }
    }

    pub(crate) fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP registry_events_raised_total Events recorded with the change that raised them, by type.\n\
             # TYPE registry_events_raised_total counter"
        );
        for (t, count) in EventType::ALL.iter().zip(&self.raised) {
            let _ = writeln!(
                out,
                "registry_events_raised_total{{type=\"{t}\"}} {}",
                count.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP registry_webhook_deliveries_total Webhook delivery attempts by result: \
             delivered (2xx), retry (failed, will retry), failed (retry budget spent).\n\
             # TYPE registry_webhook_deliveries_total counter"
        );
        for result in ["delivered", "retry", "failed"] {
            let _ = writeln!(
                out,
                "registry_webhook_deliveries_total{{result=\"{result}\"}} {}",
                self.deliveries(result)
            );
        }
        let _ = writeln!(
            out,
            "# HELP registry_webhook_queue_depth Pending webhook deliveries.\n\
             # TYPE registry_webhook_queue_depth gauge\n\
             registry_webhook_queue_depth {}\n\
             # HELP registry_webhook_queue_oldest_age_seconds Age of the oldest pending delivery's event.\n\
             # TYPE registry_webhook_queue_oldest_age_seconds gauge\n\
             registry_webhook_queue_oldest_age_seconds {:.3}",
            self.queue_depth.load(Relaxed),
            self.oldest_age_millis.load(Relaxed) as f64 / 1000.0
        );
    }
}
