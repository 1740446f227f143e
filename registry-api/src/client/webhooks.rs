//! Webhooks and the audit trail of the admin API (`docs/events.md`).

use registry_core::Namespace;
use reqwest::Method;

use super::admin::{call, Call};
use super::{Client, ClientError};
use crate::model::events::{
    AuditPage, AuditQuery, CreatedWebhook, Delivery, DeliveryList, NewWebhookRequest, Webhook,
    WebhookList,
};

impl Client {
    /// `GET /namespaces/{ns}/webhooks`.
    pub async fn webhooks(&self, ns: &Namespace) -> Result<WebhookList, ClientError> {
        let path = ["namespaces", ns.as_str(), "webhooks"];
        self.admin(call(Method::GET, &path)).await
    }

    /// `POST /namespaces/{ns}/webhooks`: the answer holds the secret, shown
    /// this once.
    pub async fn create_webhook(
        &self,
        ns: &Namespace,
        request: &NewWebhookRequest,
    ) -> Result<CreatedWebhook, ClientError> {
        let path = ["namespaces", ns.as_str(), "webhooks"];
        self.admin(call(Method::POST, &path).with(request)).await
    }

    /// `GET /namespaces/{ns}/webhooks/{id}`.
    pub async fn webhook(&self, ns: &Namespace, id: u64) -> Result<Webhook, ClientError> {
        let id = id.to_string();
        let path = ["namespaces", ns.as_str(), "webhooks", &id];
        self.admin(call(Method::GET, &path)).await
    }

    /// `DELETE /namespaces/{ns}/webhooks/{id}`, with its deliveries.
    pub async fn delete_webhook(&self, ns: &Namespace, id: u64) -> Result<(), ClientError> {
        let id = id.to_string();
        let path = ["namespaces", ns.as_str(), "webhooks", &id];
        self.admin_send(call(Method::DELETE, &path)).await.map(drop)
    }

    /// `GET /namespaces/{ns}/webhooks/{id}/deliveries[?n=&before=]`, newest first.
    pub async fn webhook_deliveries(
        &self,
        ns: &Namespace,
        id: u64,
        before: Option<u64>,
        n: Option<usize>,
    ) -> Result<DeliveryList, ClientError> {
        let id = id.to_string();
        let path = ["namespaces", ns.as_str(), "webhooks", &id, "deliveries"];
        let (before, n) = (before.map(|b| b.to_string()), n.map(|n| n.to_string()));
        let mut query = Vec::new();
        if let Some(b) = &before {
            query.push(("before", b.as_str()));
        }
        if let Some(n) = &n {
            query.push(("n", n.as_str()));
        }
        let call = Call {
            query: &query,
            ..call(Method::GET, &path)
        };
        self.admin(call).await
    }

    /// `POST /namespaces/{ns}/webhooks/{id}/deliveries/{delivery}/redeliver`.
    pub async fn redeliver(
        &self,
        ns: &Namespace,
        id: u64,
        delivery: u64,
    ) -> Result<Delivery, ClientError> {
        let (id, delivery) = (id.to_string(), delivery.to_string());
        let path = [
            "namespaces",
            ns.as_str(),
            "webhooks",
            &id,
            "deliveries",
            &delivery,
            "redeliver",
        ];
        self.admin(call(Method::POST, &path)).await
    }

    /// `GET /audit` with the query's filters.
    pub async fn audit(&self, query: &AuditQuery) -> Result<AuditPage, ClientError> {
        let (last, n) = (
            query.last.map(|l| l.to_string()),
            query.n.map(|n| n.to_string()),
        );
        let mut pairs: Vec<(&str, &str)> = Vec::new();
        for (key, value) in [
            ("actor", query.actor.as_deref()),
            ("last", last.as_deref()),
            ("n", n.as_deref()),
            ("namespace", query.namespace.as_deref()),
            ("since", query.since.as_deref()),
            ("type", query.event_type.as_deref()),
            ("until", query.until.as_deref()),
        ] {
            if let Some(value) = value {
                pairs.push((key, value));
            }
        }
        let call = Call {
            query: &pairs,
            ..call(Method::GET, &["audit"])
        };
        self.admin(call).await
    }
}
