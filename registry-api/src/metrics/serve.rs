//! `GET /extensions/v2/metrics`.

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use registry_auth::{Action, Resource};

use crate::http::error::ApiResult;
use crate::service::{Caller, Registry};

/// Where the metrics are served.
pub(crate) const METRICS_PATH: &str = "/extensions/v2/metrics";

/// `GET /extensions/v2/metrics`: needs `ReadMetrics` on the cluster
/// (`metrics-viewer` or `cluster-admin`) when access control is on.
pub(crate) async fn serve(State(registry): State<Registry>, caller: Caller) -> ApiResult<Response> {
    registry.authorize(&caller, Action::ReadMetrics, &Resource::Cluster)?;
    // Constant work after the first scrape (see `open_uploads`).
    let open = match registry
        .metrics()
        .open_uploads
        .current(registry.uploads().as_ref())
        .await
    {
        Ok(open) => Some(open),
        Err(e) => {
            tracing::warn!(error = %e, "metrics: cannot list upload sessions");
            None
        }
    };
    let mut text = registry.metrics().render(open);
    // Read from the store at each scrape: one bounded query.
    match registry
        .metadata()
        .usage_summary(super::NAMESPACE_SERIES)
        .await
    {
        Ok(summary) => super::usage::render(&mut text, &summary),
        Err(e) => tracing::warn!(error = %e, "metrics: cannot read namespace usage"),
    }
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response())
}
