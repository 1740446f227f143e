//! Namespace usage over HTTP: `GET /namespaces/{ns}/usage` (viewer) and
//! `POST /namespaces/{ns}/usage/recompute` (cluster-admin).

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::namespace;
use crate::http::error::ApiResult;
use crate::service::{Caller, Registry};

pub(crate) async fn namespace_usage(
    State(r): State<Registry>,
    caller: Caller,
    Path(ns): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(r.namespace_usage(&caller, &namespace(&ns)?).await?).into_response())
}

pub(crate) async fn recompute_usage(
    State(r): State<Registry>,
    caller: Caller,
    Path(ns): Path<String>,
) -> ApiResult<Response> {
    Ok(Json(r.recompute_usage(&caller, &namespace(&ns)?).await?).into_response())
}
