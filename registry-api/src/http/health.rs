//! `/healthz` (the process answers) and `/readyz` (its stores answer and
//! can be written).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use bytes::Bytes;
use futures::StreamExt;
use registry_core::{Namespace, RepositoryName};
use registry_storage::StorageError;

use crate::service::Registry;

/// How long a readiness answer is reused: `/readyz` needs no credentials,
/// so a flood of probes must not become a flood of writes.
const PROBE_TTL: Duration = Duration::from_secs(1);

/// What the readiness probe appends to its upload session: a session row
/// alone may still fit in space the database's files already hold (a
/// write-ahead log emptied by a checkpoint is rewritten from its start),
/// and a full disk would then go unnoticed; a file's first block cannot.
static PROBE_BYTES: [u8; 4096] = [0; 4096];

/// The last readiness answer and when it was found.
#[derive(Debug, Default)]
pub(crate) struct ReadinessCache(Mutex<Option<(Instant, Result<(), &'static str>)>>);

/// Liveness: the process serves requests.
pub(crate) async fn healthz() -> impl IntoResponse {
    (StatusCode::OK, "ok\n")
}

/// Readiness: the metadata store answers a query and the storage takes a
/// write. Constant work whatever the registry holds: one point lookup and
/// one upload session started, given [`PROBE_BYTES`] (4 KiB) and cancelled (on a
/// data directory, a database row and a small file), at most once per
/// [`PROBE_TTL`].
pub(crate) async fn readyz(State(registry): State<Registry>) -> impl IntoResponse {
    let cache = &registry.inner.readiness;
    let cached = *cache.0.lock().unwrap_or_else(|e| e.into_inner());
    let verdict = match cached {
        Some((at, verdict)) if at.elapsed() < PROBE_TTL => verdict,
        _ => {
            let verdict = probe(&registry).await;
            *cache.0.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), verdict));
            verdict
        }
    };
    match verdict {
        Ok(()) => (StatusCode::OK, "ready\n"),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

async fn probe(registry: &Registry) -> Result<(), &'static str> {
    let probe_ns: Namespace = "readyz".parse().map_err(|_| "invalid probe namespace\n")?;
    if let Err(e) = registry.metadata().namespace_exists(&probe_ns).await {
        tracing::warn!(error = %e, "readiness check failed: metadata store");
        return Err("metadata store unavailable\n");
    }
    let repo: RepositoryName = "readyz/probe".parse().map_err(|_| "invalid probe name\n")?;
    let written = match registry.uploads().create(&repo).await {
        Ok(session) => {
            let body = futures::stream::iter([Ok(Bytes::from_static(&PROBE_BYTES))]).boxed();
            let appended = registry.uploads().append(&session.id, 0, body).await;
            let cancelled = registry.uploads().cancel(&session.id).await;
            appended.and(cancelled)
        }
        Err(e) => Err(e),
    };
    match written {
        Ok(()) => Ok(()),
        Err(e @ StorageError::StorageFull { .. }) => {
            tracing::warn!(error = %e, "readiness check failed: storage full");
            Err("storage full: writes fail until space is freed\n")
        }
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed: storage not writable");
            Err("storage not writable\n")
        }
    }
}
