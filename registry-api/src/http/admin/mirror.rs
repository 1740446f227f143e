//! `POST /apis/admin/v1/namespaces/{ns}/mirror/sync`: mirror an upstream
//! repository's tags into a proxy namespace ahead of time (registry-admin
//! of the namespace). The body is a [`MirrorSyncRequest`]; the answer,
//! once the caller and arguments are checked, is `200` with one
//! [`MirrorSyncEvent`] per line (`application/x-ndjson`) as the sync goes,
//! so a long sync keeps its connection busy and the client shows progress.
//! A client that goes away stops the sync after the tag in progress; what
//! was stored stays, and the next sync skips it.
//!
//! [`MirrorSyncEvent`]: crate::model::admin::MirrorSyncEvent

use axum::body::{Body, Bytes};

use crate::http::body::SmallBody;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures::StreamExt;

use super::{bad_request, namespace};
use crate::http::error::ApiResult;
use crate::model::admin::{MirrorSyncEvent, MirrorSyncRequest};
use crate::service::{Caller, Registry};

/// `POST /apis/admin/v1/namespaces/{ns}/mirror/sync`.
pub(crate) async fn sync(
    State(r): State<Registry>,
    caller: Caller,
    Path(ns): Path<String>,
    SmallBody(body): SmallBody,
) -> ApiResult<Response> {
    let ns = namespace(&ns)?;
    let request: MirrorSyncRequest =
        serde_json::from_slice(&body).map_err(|e| bad_request("request body", e))?;
    let prepared = r.prepare_mirror_sync(&caller, &ns, &request)?;
    // Unbounded, yet bounded by the sync: one event per tag (at most
    // MAX_SYNC_TAGS) plus two.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<MirrorSyncEvent>();
    tokio::spawn(async move {
        let last_word = tx.clone();
        let sync = tokio::spawn(async move {
            let progress = |event: MirrorSyncEvent| tx.send(event).is_ok();
            // Failures are reported as a `failed` event (`run_mirror_sync`
            // sends one for any error) and logged there.
            let _ = r.run_mirror_sync(prepared, progress).await;
        });
        // A sync task that died says so rather than ending the answer
        // without a word.
        if sync.await.is_err() {
            let _ = last_word.send(MirrorSyncEvent::Failed {
                message: "the sync stopped unexpectedly".into(),
            });
        }
    });
    let lines = futures::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, std::convert::Infallible>(Bytes::from(line)), rx))
    })
    .boxed();
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}
