//! `registryctl webhook add|list|remove|deliveries`: a namespace's webhooks
//! and what was delivered to them (`/apis/admin/v1/namespaces/{ns}/webhooks`,
//! docs/events.md).

use registry::api::model::events::{Delivery, NewWebhookRequest};

use crate::admin::{print_json, table};
use crate::cli::{Global, WebhookCmd};
use crate::session::Connection;
use crate::{say, CliError, Io};

/// Runs a `webhook` command over an open connection.
pub(crate) async fn run(
    g: &Global,
    conn: &Connection,
    cmd: WebhookCmd,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let api = &conn.client;
    match cmd {
        WebhookCmd::Add {
            namespace,
            url,
            events,
            include_pulls,
            secret_stdin,
        } => {
            let mut request = NewWebhookRequest::new(url);
            request.events = events;
            request.include_pulls = include_pulls;
            if secret_stdin {
                let mut secret = String::new();
                io.stdin
                    .read_to_string(&mut secret)
                    .map_err(CliError::Stdin)?;
                request.secret = Some(secret.trim_end_matches(['\r', '\n']).to_owned());
            }
            let created = conn.run(api.create_webhook(&namespace, &request)).await?;
            if g.json {
                return print_json(io, &created);
            }
            say!(
                io.out,
                "webhook/{} created in {namespace} -> {}\nsecret (shown once; deliveries carry \
                 X-Registry-Signature-256: sha256=HMAC-SHA256(body, secret)): {}",
                created.webhook.id,
                created.webhook.url,
                created.secret
            )
        }
        WebhookCmd::List { namespace } => {
            let doc = conn.run(api.webhooks(&namespace)).await?;
            if g.json {
                return print_json(io, &doc);
            }
            if doc.items.is_empty() {
                return say!(io.err, "no webhooks in {namespace}");
            }
            let rows = doc
                .items
                .iter()
                .map(|w| {
                    let events = match w.events.is_empty() {
                        true => "all".to_owned(),
                        false => w.events.join(","),
                    };
                    let pulls = if w.include_pulls { "yes" } else { "no" };
                    vec![w.id.to_string(), w.url.clone(), events, pulls.to_owned()]
                })
                .collect::<Vec<_>>();
            say!(
                io.out,
                "{}",
                table(&["ID", "URL", "EVENTS", "PULLS"], &rows)
            )
        }
        WebhookCmd::Remove { namespace, id } => {
            conn.run(api.delete_webhook(&namespace, id)).await?;
            say!(io.out, "webhook/{id} removed from {namespace}")
        }
        WebhookCmd::Deliveries {
            namespace,
            id,
            redeliver,
            limit,
        } => {
            if let Some(delivery) = redeliver {
                let d = conn.run(api.redeliver(&namespace, id, delivery)).await?;
                if g.json {
                    return print_json(io, &d);
                }
                return say!(io.out, "delivery {delivery} of webhook/{id} queued again");
            }
            let page = conn
                .run(api.webhook_deliveries(&namespace, id, None, Some(limit)))
                .await?;
            if g.json {
                return print_json(io, &page);
            }
            if page.items.is_empty() {
                return say!(io.err, "no deliveries for webhook/{id}");
            }
            let rows = page.items.iter().map(row).collect::<Vec<_>>();
            let headers = ["ID", "EVENT", "TYPE", "STATUS", "ATTEMPTS", "CODE", "ERROR"];
            say!(io.out, "{}", table(&headers, &rows))
        }
    }
}

fn row(d: &Delivery) -> Vec<String> {
    vec![
        d.id.to_string(),
        d.event_id.clone(),
        d.event_type.trim_start_matches("io.registry.").to_owned(),
        d.status.clone(),
        d.attempts.to_string(),
        d.last_code.map(|c| c.to_string()).unwrap_or_default(),
        d.last_error.clone().unwrap_or_default(),
    ]
}

#[cfg(test)]
#[path = "webhook_tests.rs"]
mod tests;
