//! Webhook and audit documents of the admin API (`docs/events.md`).
//!
//! - `POST /apis/admin/v1/namespaces/{ns}/webhooks`: [`NewWebhookRequest`]
//!   in, [`CreatedWebhook`] out (the only time the secret is shown).
//! - `GET /apis/admin/v1/namespaces/{ns}/webhooks`: [`WebhookList`];
//!   `GET …/webhooks/{id}`: [`Webhook`]; `DELETE …/webhooks/{id}`.
//! - `GET …/webhooks/{id}/deliveries?n=&before=`: [`DeliveryList`];
//!   `POST …/webhooks/{id}/deliveries/{delivery}/redeliver`: [`Delivery`].
//! - `GET /apis/admin/v1/audit?namespace=&actor=&type=&since=&until=&n=&last=`:
//!   [`AuditPage`].

use serde::{Deserialize, Serialize};

use crate::events::CloudEvent;

/// A webhook to create. Fields in alphabetical order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewWebhookRequest {
    /// The event types to receive (`io.registry.manifest.pushed`, …);
    /// empty or absent for all.
    #[serde(default)]
    pub events: Vec<String>,
    /// Whether to receive pulls too (high volume).
    #[serde(default)]
    pub include_pulls: bool,
    /// The signing secret; the server generates one when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// Where deliveries are POSTed (`http` or `https`, no credentials).
    pub url: String,
}

impl NewWebhookRequest {
    /// A webhook to `url` for every event type but pulls, with a generated secret.
    pub fn new(url: impl Into<String>) -> Self {
        NewWebhookRequest {
            url: url.into(),
            ..Default::default()
        }
    }
}

/// A webhook as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Webhook {
    /// When it was created (RFC 3339).
    pub created: String,
    /// The event types it receives (empty: all).
    pub events: Vec<String>,
    /// Its id.
    pub id: u64,
    /// Whether it receives pulls.
    pub include_pulls: bool,
    /// Its namespace.
    pub namespace: String,
    /// Where deliveries go.
    pub url: String,
}

/// The answer to creating a webhook: the webhook and its secret, shown
/// this once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CreatedWebhook {
    /// The signing secret: deliveries carry
    /// `X-Registry-Signature-256: sha256=<hex HMAC-SHA256(body, secret)>`.
    pub secret: String,
    /// The webhook.
    pub webhook: Webhook,
}

/// A namespace's webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct WebhookList {
    /// By id.
    pub items: Vec<Webhook>,
}

/// One event's delivery to one webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Delivery {
    /// Attempts made.
    pub attempts: u32,
    /// The event's id (the CloudEvents `id`).
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// The delivery's id (redeliver with it).
    pub id: u64,
    /// The receiver's last HTTP status, if it answered.
    pub last_code: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
    /// When it is (or was) next due (RFC 3339).
    pub next_attempt: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// When it last changed (RFC 3339).
    pub updated: String,
}

/// A page of a webhook's deliveries, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DeliveryList {
    /// The deliveries.
    pub items: Vec<Delivery>,
    /// Pass as `before` for the next (older) page; absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

/// One audit record: an event and its position in the trail.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditEntry {
    /// The event, as webhooks receive it.
    pub event: CloudEvent,
    /// Its position (the `last` cursor of the next page).
    pub seq: u64,
}

/// A page of the audit trail, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditPage {
    /// The events.
    pub items: Vec<AuditEntry>,
    /// Pass as `last` for the next page; absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

/// The filters of `GET /apis/admin/v1/audit`, every one optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only this actor's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Events after this seq (the previous page's `next`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<u64>,
    /// Page size (default and cap: the server's page limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<usize>,
    /// Only this namespace's events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Only events at or after this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<String>,
    /// Only this event type.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// Only events before this time (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<String>,
}
