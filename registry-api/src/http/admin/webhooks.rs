//! Webhooks, their deliveries and the audit trail over HTTP
//! (`docs/events.md`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::{invalid, namespace, JsonBody, QueryParams};
use crate::http::error::ApiResult;
use crate::model::events::{AuditQuery, NewWebhookRequest};
use crate::service::{Caller, Registry, RegistryError};

fn id(what: &str, text: &str) -> Result<u64, RegistryError> {
    text.parse()
        .map_err(|_| invalid(what, format!("{text:?} is not a number")))
}

pub(crate) async fn list(
    State(r): State<Registry>,
    caller: Caller,
    Path(ns): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(r.webhooks(&caller, &namespace(&ns)?).await?).into_response())
}

pub(crate) async fn create(
    State(r): State<Registry>,
    caller: Caller,
    Path(ns): Path<String>,
    JsonBody(body): JsonBody<NewWebhookRequest>,
) -> ApiResult<Response> {
    let created = r.create_webhook(&caller, &namespace(&ns)?, body).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

pub(crate) async fn show(
    State(r): State<Registry>,
    caller: Caller,
    Path((ns, hook)): Path<(String, String)>,
) -> ApiResult<Response> {
    let hook = id("webhook id", &hook)?;
    Ok(Json(r.webhook(&caller, &namespace(&ns)?, hook).await?).into_response())
}

pub(crate) async fn remove(
    State(r): State<Registry>,
    caller: Caller,
    Path((ns, hook)): Path<(String, String)>,
) -> ApiResult<Response> {
    let hook = id("webhook id", &hook)?;
    r.delete_webhook(&caller, &namespace(&ns)?, hook).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `?n=&before=` of a deliveries listing.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DeliveriesQuery {
    n: Option<usize>,
    before: Option<u64>,
}

pub(crate) async fn deliveries(
    State(r): State<Registry>,
    caller: Caller,
    Path((ns, hook)): Path<(String, String)>,
    QueryParams(query): QueryParams<DeliveriesQuery>,
) -> ApiResult<Response> {
    let hook = id("webhook id", &hook)?;
    let ns = namespace(&ns)?;
    let page = r
        .webhook_deliveries(&caller, &ns, hook, query.before, query.n)
        .await?;
    Ok(Json(page).into_response())
}

pub(crate) async fn redeliver(
    State(r): State<Registry>,
    caller: Caller,
    Path((ns, hook, delivery)): Path<(String, String, String)>,
) -> ApiResult<Response> {
    let hook = id("webhook id", &hook)?;
    let delivery = id("delivery id", &delivery)?;
    let ns = namespace(&ns)?;
    Ok(Json(r.redeliver(&caller, &ns, hook, delivery).await?).into_response())
}

pub(crate) async fn audit(
    State(r): State<Registry>,
    caller: Caller,
    QueryParams(query): QueryParams<AuditQuery>,
) -> ApiResult<Response> {
    Ok(Json(r.audit(&caller, query).await?).into_response())
}
