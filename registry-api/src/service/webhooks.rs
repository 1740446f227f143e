//! Webhooks of a namespace (its registry-admins manage them) and the audit
//! trail (cluster-admins see everything, a namespace's registry-admins
//! their namespace): the service side of `docs/events.md`.

use std::time::SystemTime;

use registry_auth::{Action, Resource};
use registry_core::Namespace;
use registry_storage::{
    DeliveryRecord, EventFilter, EventType, NewWebhook, StorageError, WebhookRecord,
};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{Caller, Registry, RegistryError, RegistryResult};
use crate::events::{guard, CloudEvent, Events};
use crate::model::events::{
    AuditEntry, AuditPage, AuditQuery, CreatedWebhook, Delivery, DeliveryList, NewWebhookRequest,
    Webhook, WebhookList,
};

/// Shortest and longest secret a caller may choose.
const SECRET_LEN: std::ops::RangeInclusive<usize> = 16..=256;

/// Most event types one webhook may list.
const MAX_EVENT_TYPES: usize = 64;

impl Registry {
    fn outbox(&self) -> RegistryResult<&Events> {
        self.events().ok_or_else(|| {
            RegistryError::Conflict(
                "this registry's stores keep no events (no event store configured)".to_owned(),
            )
        })
    }

    /// The registry-admin permission on a namespace's webhooks.
    fn manage_webhooks(&self, caller: &Caller, ns: &Namespace) -> RegistryResult<&Events> {
        let ns = &Resource::Namespace(ns);
        self.authorize_as(caller, Action::ManageBindings, ns, "manage webhooks")?;
        self.outbox()
    }

    /// Creates a webhook in a namespace (registry-admin there). The secret
    /// is generated unless given, and returned only here.
    pub async fn create_webhook(
        &self,
        caller: &Caller,
        ns: &Namespace,
        request: NewWebhookRequest,
    ) -> RegistryResult<CreatedWebhook> {
        let events = self.manage_webhooks(caller, ns)?;
        let config = &events.config;
        guard::validate_url(&request.url, config.allow_private)
            .map_err(|e| RegistryError::invalid("url", e))?;
        let types = parse_types(&request.events)?;
        let secret = match request.secret {
            Some(s) if !SECRET_LEN.contains(&s.len()) => {
                return Err(RegistryError::invalid(
                    "secret",
                    format!(
                        "it must be {} to {} bytes long (or absent: the server makes one)",
                        SECRET_LEN.start(),
                        SECRET_LEN.end()
                    ),
                ))
            }
            Some(s) => s,
            None => generate_secret(),
        };
        self.existing_namespace(ns).await?;
        let new = NewWebhook {
            namespace: Some(ns.clone()),
            url: request.url,
            events: types,
            secret: secret.clone(),
            include_pulls: request.include_pulls,
        };
        let record = match events
            .store
            .create_webhook(new, config.max_webhooks_per_namespace)
            .await
        {
            Ok(record) => record,
            Err(StorageError::LimitReached { what }) => {
                return Err(RegistryError::invalid("webhooks", what))
            }
            Err(e) => return Err(e.into()),
        };
        events.webhooks_changed();
        tracing::info!(target: "audit", actor = %caller.subject(), namespace = %ns,
            webhook = record.id, url = %record.webhook.url, "webhook created");
        Ok(CreatedWebhook {
            secret,
            webhook: webhook_doc(&record),
        })
    }

    /// A namespace's webhooks (registry-admin there).
    pub async fn webhooks(&self, caller: &Caller, ns: &Namespace) -> RegistryResult<WebhookList> {
        let events = self.manage_webhooks(caller, ns)?;
        self.existing_namespace(ns).await?;
        let records = events.store.webhooks(Some(ns)).await?;
        Ok(WebhookList {
            items: records.iter().map(webhook_doc).collect(),
        })
    }

    /// One webhook of a namespace (registry-admin there).
    pub async fn webhook(
        &self,
        caller: &Caller,
        ns: &Namespace,
        id: u64,
    ) -> RegistryResult<Webhook> {
        let events = self.manage_webhooks(caller, ns)?;
        Ok(webhook_doc(&webhook_in(events, ns, id).await?))
    }

    /// Deletes a webhook and its deliveries (registry-admin there).
    pub async fn delete_webhook(
        &self,
        caller: &Caller,
        ns: &Namespace,
        id: u64,
    ) -> RegistryResult<()> {
        let events = self.manage_webhooks(caller, ns)?;
        webhook_in(events, ns, id).await?;
        events.store.delete_webhook(id).await?;
        events.webhooks_changed();
        tracing::info!(target: "audit", actor = %caller.subject(), namespace = %ns,
            webhook = id, "webhook deleted");
        Ok(())
    }

    /// A webhook's deliveries, newest first: those before delivery
    /// `before`, at most `n` (capped by the page limit).
    pub async fn webhook_deliveries(
        &self,
        caller: &Caller,
        ns: &Namespace,
        id: u64,
        before: Option<u64>,
        n: Option<usize>,
    ) -> RegistryResult<DeliveryList> {
        let events = self.manage_webhooks(caller, ns)?;
        // At least one: a page of none would have no cursor.
        let n = self.page_size(n).max(1);
        webhook_in(events, ns, id).await?;
        let mut records = events.store.deliveries(id, before, n + 1).await?;
        let next = (records.len() > n).then(|| records[n - 1].id);
        records.truncate(n);
        Ok(DeliveryList {
            items: records.iter().map(delivery_doc).collect(),
            next,
        })
    }

    /// Sends a delivery again (a failed one, or a delivered one a receiver
    /// lost): pending, due now, attempts reset.
    pub async fn redeliver(
        &self,
        caller: &Caller,
        ns: &Namespace,
        id: u64,
        delivery: u64,
    ) -> RegistryResult<Delivery> {
        let events = self.manage_webhooks(caller, ns)?;
        webhook_in(events, ns, id).await?;
        let unknown =
            || RegistryError::RecordUnknown(format!("delivery {delivery} of webhook {id}"));
        let record = events.store.delivery(delivery).await?.ok_or_else(unknown)?;
        if record.webhook != id {
            return Err(unknown());
        }
        events.store.redeliver(delivery).await?;
        events.committed();
        tracing::info!(target: "audit", actor = %caller.subject(), namespace = %ns,
            webhook = id, delivery, "webhook delivery redelivered");
        let record = events.store.delivery(delivery).await?.ok_or_else(unknown)?;
        Ok(delivery_doc(&record))
    }

    /// A page of the audit trail: every event for a cluster-admin, the
    /// events of the namespaces where the caller is registry-admin
    /// otherwise.
    pub async fn audit(&self, caller: &Caller, query: AuditQuery) -> RegistryResult<AuditPage> {
        let n = self.page_size(query.n).max(1);
        let namespace = query
            .namespace
            .as_deref()
            .map(|ns| ns.parse::<Namespace>())
            .transpose()
            .map_err(|e| RegistryError::invalid_name("namespace", e))?;
        let event_type = query
            .event_type
            .as_deref()
            .map(str::parse::<EventType>)
            .transpose()
            .map_err(|e| RegistryError::invalid("type", e))?;
        let since = query
            .since
            .as_deref()
            .map(|t| parse_time("since", t))
            .transpose()?;
        let until = query
            .until
            .as_deref()
            .map(|t| parse_time("until", t))
            .transpose()?;
        let namespaces = self.audit_scope(caller, namespace).await?;
        let events = self.outbox()?;
        let filter = EventFilter {
            namespaces,
            actor: query.actor,
            event_type,
            since,
            until,
        };
        let mut records = events.store.events(&filter, query.last, n + 1).await?;
        let next = (records.len() > n).then(|| records[n - 1].seq);
        records.truncate(n);
        let source = &events.config.source;
        Ok(AuditPage {
            items: records
                .iter()
                .map(|r| AuditEntry {
                    event: CloudEvent::from_record(r, source),
                    seq: r.seq,
                })
                .collect(),
            next,
        })
    }

    /// Which namespaces' events `caller` may read (`None`: all).
    async fn audit_scope(
        &self,
        caller: &Caller,
        asked: Option<Namespace>,
    ) -> RegistryResult<Option<Vec<Namespace>>> {
        if self.allows(caller, Action::ManageClusterBindings, &Resource::Cluster) {
            return Ok(asked.map(|ns| vec![ns]));
        }
        if let Some(ns) = asked {
            let namespace = &Resource::Namespace(&ns);
            self.authorize_as(
                caller,
                Action::ManageBindings,
                namespace,
                "read the audit log",
            )?;
            return Ok(Some(vec![ns]));
        }
        let mine: Vec<Namespace> = self
            .metadata()
            .list_namespaces()
            .await?
            .into_iter()
            .filter(|ns| self.allows(caller, Action::ManageBindings, &Resource::Namespace(ns)))
            .collect();
        if mine.is_empty() {
            // Says 401 or 403, as for any cluster-wide admin request.
            let cluster = &Resource::Cluster;
            self.authorize_as(
                caller,
                Action::ManageClusterBindings,
                cluster,
                "read the audit log",
            )?;
        }
        Ok(Some(mine))
    }
}

async fn webhook_in(events: &Events, ns: &Namespace, id: u64) -> RegistryResult<WebhookRecord> {
    match events.store.webhook(id).await? {
        Some(record) if record.webhook.namespace.as_ref() == Some(ns) => Ok(record),
        _ => Err(RegistryError::RecordUnknown(format!(
            "webhook {id} in namespace {ns}"
        ))),
    }
}

fn parse_types(names: &[String]) -> RegistryResult<Vec<EventType>> {
    if names.len() > MAX_EVENT_TYPES {
        return Err(RegistryError::invalid(
            "events",
            format!("at most {MAX_EVENT_TYPES} event types"),
        ));
    }
    let mut types = Vec::with_capacity(names.len());
    for name in names {
        let t: EventType = name.parse().map_err(|_| {
            let known: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
            RegistryError::invalid(
                "events",
                format!("unknown event type {name:?}; known: {}", known.join(", ")),
            )
        })?;
        if !types.contains(&t) {
            types.push(t);
        }
    }
    Ok(types)
}

/// 256 random bits, hex.
fn generate_secret() -> String {
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    format!("{}{}", a.simple(), b.simple())
}

fn parse_time(what: &str, text: &str) -> RegistryResult<SystemTime> {
    OffsetDateTime::parse(text, &Rfc3339)
        .map(SystemTime::from)
        .map_err(|e| RegistryError::invalid(what, format!("not an RFC 3339 time: {e}")))
}

fn rfc3339(t: SystemTime) -> String {
    OffsetDateTime::from(t).format(&Rfc3339).unwrap_or_default()
}

fn webhook_doc(record: &WebhookRecord) -> Webhook {
    let w = &record.webhook;
    Webhook {
        created: rfc3339(record.created),
        events: w.events.iter().map(|t| t.as_str().to_owned()).collect(),
        id: record.id,
        include_pulls: w.include_pulls,
        namespace: w
            .namespace
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        url: w.url.clone(),
    }
}

fn delivery_doc(d: &DeliveryRecord) -> Delivery {
    Delivery {
        attempts: d.attempts,
        event_id: d.event_id.clone(),
        event_type: d.event_type.as_str().to_owned(),
        id: d.id,
        last_code: d.last_code,
        last_error: d.last_error.clone(),
        next_attempt: rfc3339(d.next_attempt),
        status: d.status.as_str().to_owned(),
        updated: rfc3339(d.updated),
    }
}
