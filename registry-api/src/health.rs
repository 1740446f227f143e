//! `/healthz` (the process answers) and `/readyz` (its stores answer).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;

use crate::state::Registry;

/// Liveness: the process serves requests.
pub(crate) async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

/// Readiness: the metadata store answers a query.
pub(crate) async fn readyz(State(registry): State<Registry>) -> impl IntoResponse {
    match registry.metadata().list_namespaces().await {
        Ok(_) => (StatusCode::OK, "ready\n"),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "metadata store unavailable\n",
            )
        }
    }
}
