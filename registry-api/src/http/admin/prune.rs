//! `POST /apis/admin/v1/prune`: garbage collection on demand (cluster-admin).
//!
//! The optional JSON body `{"dry_run":bool,"grace_period_seconds":n,
//! "upload_max_age_seconds":n}` overrides the defaults of
//! [`GcOptions`]; the run applies the namespaces' retention rules, then
//! sweeps blobs. The answer is the run's report: counts, the manifests
//! retention removed with the reason and the digests of deleted blobs (at
//! most [`GcReport::MAX_LISTED`] of each; `*_unlisted` counts the others,
//! which the log lists).

use std::time::Duration;

use crate::http::body::SmallBody;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use registry_storage::{GcOptions, GcReport};

use super::optional_json;
use crate::http::error::ApiResult;
use crate::model::admin::{PruneReport, PruneRequest, PrunedManifest};
use crate::service::{Caller, Registry};

/// The collector's options for a request (every field is optional).
fn options(request: &PruneRequest) -> GcOptions {
    let defaults = GcOptions::default();
    GcOptions {
        grace_period: request
            .grace_period_seconds
            .map_or(defaults.grace_period, Duration::from_secs),
        upload_max_age: request
            .upload_max_age_seconds
            .map_or(defaults.upload_max_age, Duration::from_secs),
        dry_run: request.dry_run,
        ..defaults
    }
}

/// The report as the API shows it.
fn report_json(report: &GcReport) -> PruneReport {
    PruneReport {
        dry_run: report.dry_run,
        blobs_scanned: report.blobs_scanned,
        blobs_referenced: report.blobs_referenced,
        blobs_young: report.blobs_young,
        blobs_deleted: report.blobs_deleted,
        bytes_freed: report.bytes_freed,
        uploads_expired: report.uploads_expired,
        duration_seconds: report.duration.as_secs_f64(),
        // At most `GcReport::MAX_LISTED` digests; the run's log lines
        // name every one.
        deleted: report.deleted.clone(),
        deleted_unlisted: report.deleted_unlisted,
        manifests_raced: report.retention.manifests_raced,
        manifests_removed: report.retention.manifests_removed,
        manifests_scanned: report.retention.manifests_scanned,
        removed: report
            .retention
            .removed
            .iter()
            .map(|m| PrunedManifest {
                repository: m.repository.clone(),
                digest: m.digest.clone(),
                reason: m.reason.to_string(),
            })
            .collect(),
        removed_unlisted: report.retention.removed_unlisted,
    }
}

/// `POST /apis/admin/v1/prune`.
pub(crate) async fn prune(
    State(r): State<Registry>,
    caller: Caller,
    SmallBody(body): SmallBody,
) -> ApiResult<Response> {
    let request: PruneRequest = optional_json(&body)?;
    let report = r.prune(&caller, options(&request)).await?;
    Ok(Json(report_json(&report)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_defaults_and_overrides() {
        let defaults = options(&PruneRequest::default());
        assert_eq!(defaults, GcOptions::default());
        let r: PruneRequest =
            serde_json::from_str(r#"{"dry_run":true,"grace_period_seconds":0}"#).unwrap();
        let o = options(&r);
        assert!(o.dry_run);
        assert_eq!(o.grace_period, Duration::ZERO);
        assert_eq!(o.upload_max_age, GcOptions::default().upload_max_age);
        assert!(serde_json::from_str::<PruneRequest>(r#"{"grace":1}"#).is_err());
    }
}
