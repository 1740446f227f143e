//! Prometheus metrics: counted by a tower layer on every route, served at
//! `GET /extensions/v2/metrics` in the text exposition format (0.0.4) to
//! callers with the `metrics-viewer` cluster role (or `cluster-admin`; open
//! when access control is off).
//!
//! Recording costs a few relaxed atomic adds per request: the counters are
//! fixed arrays indexed by endpoint × method × status class, and the
//! endpoint is one of a small fixed set classified from the path without
//! allocating (never the raw path, so label cardinality stays bounded).
//! Only blob downloads and upload requests get their body wrapped, to count
//! bytes.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `registry_http_requests_total` | counter | `endpoint`, `method`, `status` (`2xx`…) |
//! | `registry_http_request_duration_seconds` | histogram | `endpoint` (time to response headers) |
//! | `registry_http_requests_in_flight` | gauge | |
//! | `registry_blob_bytes_received_total` | counter | blob bytes in upload request bodies |
//! | `registry_blob_bytes_sent_total` | counter | blob bytes in `GET` blob responses |
//! | `registry_upload_sessions_total` | counter | `event`: `started`, `committed`, `cancelled` |
//! | `registry_uploads_in_progress` | gauge | open sessions in the upload store at scrape time |
//! | `registry_auth_failures_total` | counter | `reason`: `unauthorized` (401 despite credentials), `denied` (403) |
//! | `registry_gc_runs_total` | counter | every prune, dry runs included |
//! | `registry_gc_blobs_deleted_total`, `registry_gc_bytes_freed_total`, `registry_gc_uploads_expired_total` | counter | real runs only |
//! | `registry_proxy_requests_total` | counter | `result`: `hit`, `miss`, `stale`, `error` (proxy namespaces) |
//! | `registry_events_raised_total` | counter | `type`: the event type |
//! | `registry_webhook_deliveries_total` | counter | `result`: `delivered`, `retry`, `failed` |
//! | `registry_webhook_queue_depth`, `registry_webhook_queue_oldest_age_seconds` | gauge | pending deliveries, as the delivery worker last counted |
//! | `registry_namespace_bytes`, `registry_namespace_blobs` | gauge | `namespace`: the [`NAMESPACE_SERIES`] largest by bytes, the rest summed as `_other` |

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Instant;

use axum::http::{Method, StatusCode};
use registry_storage::GcReport;

mod events;
mod layer;
mod open_uploads;
mod proxy;
mod serve;
mod usage;

pub use events::EventCounters;
pub(crate) use layer::MetricsLayer;
pub(crate) use open_uploads::{CountingUploads, OpenUploads};
pub use proxy::ProxyCounters;
pub(crate) use serve::{serve, METRICS_PATH};
pub use usage::NAMESPACE_SERIES;

/// The endpoint label: what kind of request it was, never its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndpointClass {
    Base,
    Catalog,
    Tags,
    Manifest,
    Blob,
    Upload,
    Referrers,
    Token,
    Admin,
    Image,
    Health,
    Metrics,
    Other,
}

const ENDPOINTS: [EndpointClass; 13] = [
    EndpointClass::Base,
    EndpointClass::Catalog,
    EndpointClass::Tags,
    EndpointClass::Manifest,
    EndpointClass::Blob,
    EndpointClass::Upload,
    EndpointClass::Referrers,
    EndpointClass::Token,
    EndpointClass::Admin,
    EndpointClass::Image,
    EndpointClass::Health,
    EndpointClass::Metrics,
    EndpointClass::Other,
];
const N_ENDPOINTS: usize = ENDPOINTS.len();

impl EndpointClass {
    fn label(self) -> &'static str {
        match self {
            EndpointClass::Base => "base",
            EndpointClass::Catalog => "catalog",
            EndpointClass::Tags => "tags",
            EndpointClass::Manifest => "manifest",
            EndpointClass::Blob => "blob",
            EndpointClass::Upload => "upload",
            EndpointClass::Referrers => "referrers",
            EndpointClass::Token => "token",
            EndpointClass::Admin => "admin",
            EndpointClass::Image => "image",
            EndpointClass::Health => "health",
            EndpointClass::Metrics => "metrics",
            EndpointClass::Other => "other",
        }
    }

    /// Classifies a request path, from the right for `/v2/` paths as the
    /// distribution router does (repository names have any depth).
    pub(crate) fn of_path(path: &str) -> Self {
        if let Some(rest) = path.strip_prefix("/v2") {
            return match rest.strip_prefix('/') {
                None if rest.is_empty() => EndpointClass::Base,
                None => EndpointClass::Other,
                Some("") => EndpointClass::Base,
                Some("token") => EndpointClass::Token,
                Some("_catalog") => EndpointClass::Catalog,
                Some(rest) => Self::of_distribution_path(rest),
            };
        }
        if path.starts_with("/apis/admin/") {
            EndpointClass::Admin
        } else if path.starts_with("/apis/image/") {
            EndpointClass::Image
        } else if path == "/healthz" || path == "/readyz" {
            EndpointClass::Health
        } else if path == METRICS_PATH {
            EndpointClass::Metrics
        } else {
            EndpointClass::Other
        }
    }

    fn of_distribution_path(rest: &str) -> Self {
        if rest.ends_with("/tags/list") {
            return EndpointClass::Tags;
        }
        if rest.ends_with("/blobs/uploads/") || rest.ends_with("/blobs/uploads") {
            return EndpointClass::Upload;
        }
        let Some((head, _)) = rest.rsplit_once('/') else {
            return EndpointClass::Other;
        };
        if head.ends_with("/blobs/uploads") {
            return EndpointClass::Upload;
        }
        match head.rsplit_once('/').map(|(_, kind)| kind) {
            Some("manifests") => EndpointClass::Manifest,
            Some("blobs") => EndpointClass::Blob,
            Some("referrers") => EndpointClass::Referrers,
            _ => EndpointClass::Other,
        }
    }
}

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OTHER"];

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        _ => 6,
    }
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn class_index(status: StatusCode) -> usize {
    (status.as_u16() / 100).clamp(1, 5) as usize - 1
}

/// Upper bounds of the duration buckets in nanoseconds (`+Inf` is
/// implied): 1 ms to 30 s.
const BUCKETS_NANOS: [u64; 14] = [
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
    30_000_000_000,
];

/// A histogram of one endpoint: per-bucket (not cumulative) counts, the
/// last one for everything above the largest bound.
#[derive(Debug)]
struct Histogram {
    counts: [AtomicU64; BUCKETS_NANOS.len() + 1],
    sum_nanos: AtomicU64,
}

impl Histogram {
    const fn new() -> Self {
        Histogram {
            counts: [const { AtomicU64::new(0) }; BUCKETS_NANOS.len() + 1],
            sum_nanos: AtomicU64::new(0),
        }
    }

    fn observe(&self, nanos: u64) {
        let bucket = BUCKETS_NANOS.partition_point(|&bound| bound < nanos);
        self.counts[bucket].fetch_add(1, Relaxed);
        self.sum_nanos.fetch_add(nanos, Relaxed);
    }
}

/// The registry's metrics. One per [`Registry`](crate::Registry); read with
/// [`Registry::metrics`](crate::Registry::metrics).
#[derive(Debug)]
pub struct Metrics {
    requests: [AtomicU64; N_ENDPOINTS * METHODS.len() * CLASSES.len()],
    durations: [Histogram; N_ENDPOINTS],
    in_flight: AtomicI64,
    blob_bytes_received: AtomicU64,
    blob_bytes_sent: AtomicU64,
    uploads_started: AtomicU64,
    uploads_committed: AtomicU64,
    uploads_cancelled: AtomicU64,
    auth_unauthorized: AtomicU64,
    auth_denied: AtomicU64,
    gc_runs: AtomicU64,
    gc_blobs_deleted: AtomicU64,
    gc_bytes_freed: AtomicU64,
    gc_uploads_expired: AtomicU64,
    /// The open-sessions gauge, fed by [`CountingUploads`].
    pub(crate) open_uploads: Arc<OpenUploads>,
    /// Proxy namespaces' requests by outcome.
    pub proxy: ProxyCounters,
    /// Events raised and webhook deliveries.
    pub events: EventCounters,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            requests: [const { AtomicU64::new(0) }; N_ENDPOINTS * METHODS.len() * CLASSES.len()],
            durations: [const { Histogram::new() }; N_ENDPOINTS],
            in_flight: AtomicI64::new(0),
            blob_bytes_received: AtomicU64::new(0),
            blob_bytes_sent: AtomicU64::new(0),
            uploads_started: AtomicU64::new(0),
            uploads_committed: AtomicU64::new(0),
            uploads_cancelled: AtomicU64::new(0),
            auth_unauthorized: AtomicU64::new(0),
            auth_denied: AtomicU64::new(0),
            gc_runs: AtomicU64::new(0),
            gc_blobs_deleted: AtomicU64::new(0),
            gc_bytes_freed: AtomicU64::new(0),
            gc_uploads_expired: AtomicU64::new(0),
            open_uploads: Arc::default(),
            proxy: ProxyCounters::default(),
            events: EventCounters::default(),
        }
    }
}

/// What the layer knows of a request until its response is ready.
#[derive(Debug, Clone, Copy)]
struct Pending {
    endpoint: EndpointClass,
    method: usize,
    credentials: bool,
    start: Instant,
}

impl Metrics {
    /// Records a garbage collection run (blobs and bytes only when it was
    /// not a dry run).
    pub fn record_gc(&self, report: &GcReport) {
        self.gc_runs.fetch_add(1, Relaxed);
        if !report.dry_run {
            self.gc_blobs_deleted
                .fetch_add(report.blobs_deleted, Relaxed);
            self.gc_bytes_freed.fetch_add(report.bytes_freed, Relaxed);
            self.gc_uploads_expired
                .fetch_add(report.uploads_expired, Relaxed);
        }
    }

    fn finish(&self, p: &Pending, status: StatusCode) {
        let e = p.endpoint as usize;
        let cell = (e * METHODS.len() + p.method) * CLASSES.len() + class_index(status);
        self.requests[cell].fetch_add(1, Relaxed);
        let nanos = u64::try_from(p.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.durations[e].observe(nanos);
        match status {
            StatusCode::UNAUTHORIZED if p.credentials => {
                self.auth_unauthorized.fetch_add(1, Relaxed);
            }
            StatusCode::FORBIDDEN => {
                self.auth_denied.fetch_add(1, Relaxed);
            }
            _ => {}
        }
        if p.endpoint == EndpointClass::Upload {
            let counter = match (p.method, status) {
                (2, StatusCode::ACCEPTED) => &self.uploads_started,
                (3, StatusCode::CREATED) => &self.uploads_committed,
                (5, StatusCode::NO_CONTENT) => &self.uploads_cancelled,
                _ => return,
            };
            counter.fetch_add(1, Relaxed);
        }
    }

    /// The metrics in the Prometheus text format. `uploads_in_progress` is
    /// the number of open upload sessions, when known.
    pub fn render(&self, uploads_in_progress: Option<usize>) -> String {
        let mut out = String::with_capacity(8 * 1024);
        self.render_requests(&mut out);
        self.render_durations(&mut out);
        let scalar = |out: &mut String, name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        };
        let _ = writeln!(
            out,
            "# HELP registry_http_requests_in_flight Requests being handled.\n\
             # TYPE registry_http_requests_in_flight gauge\n\
             registry_http_requests_in_flight {}",
            self.in_flight.load(Relaxed).max(0)
        );
        scalar(
            &mut out,
            "registry_blob_bytes_received_total",
            "counter",
            "Bytes received in blob upload request bodies.",
            self.blob_bytes_received.load(Relaxed),
        );
        scalar(
            &mut out,
            "registry_blob_bytes_sent_total",
            "counter",
            "Bytes sent in blob download responses.",
            self.blob_bytes_sent.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP registry_upload_sessions_total Upload session events seen by this process.\n\
             # TYPE registry_upload_sessions_total counter"
        );
        for (event, counter) in [
            ("started", &self.uploads_started),
            ("committed", &self.uploads_committed),
            ("cancelled", &self.uploads_cancelled),
        ] {
            let _ = writeln!(
                out,
                "registry_upload_sessions_total{{event=\"{event}\"}} {}",
                counter.load(Relaxed)
            );
        }
        if let Some(open) = uploads_in_progress {
            scalar(
                &mut out,
                "registry_uploads_in_progress",
                "gauge",
                "Open upload sessions in the upload store.",
                open as u64,
            );
        }
        let _ = writeln!(
            out,
            "# HELP registry_auth_failures_total Requests refused: 401 despite credentials, or 403.\n\
             # TYPE registry_auth_failures_total counter\n\
             registry_auth_failures_total{{reason=\"unauthorized\"}} {}\n\
             registry_auth_failures_total{{reason=\"denied\"}} {}",
            self.auth_unauthorized.load(Relaxed),
            self.auth_denied.load(Relaxed)
        );
        for (name, help, counter) in [
            (
                "registry_gc_runs_total",
                "Garbage collection runs, dry runs included.",
                &self.gc_runs,
            ),
            (
                "registry_gc_blobs_deleted_total",
                "Blobs deleted by garbage collection.",
                &self.gc_blobs_deleted,
            ),
            (
                "registry_gc_bytes_freed_total",
                "Bytes freed by garbage collection.",
                &self.gc_bytes_freed,
            ),
            (
                "registry_gc_uploads_expired_total",
                "Abandoned upload sessions expired by garbage collection.",
                &self.gc_uploads_expired,
            ),
        ] {
            scalar(&mut out, name, "counter", help, counter.load(Relaxed));
        }
        self.proxy.render(&mut out);
        self.events.render(&mut out);
        out
    }

    fn render_requests(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP registry_http_requests_total HTTP requests by endpoint, method and status class.\n\
             # TYPE registry_http_requests_total counter"
        );
        for (e, endpoint) in ENDPOINTS.iter().enumerate() {
            for (m, method) in METHODS.iter().enumerate() {
                for (c, class) in CLASSES.iter().enumerate() {
                    let n =
                        self.requests[(e * METHODS.len() + m) * CLASSES.len() + c].load(Relaxed);
                    if n > 0 {
                        let _ = writeln!(
                            out,
                            "registry_http_requests_total{{endpoint=\"{}\",method=\"{method}\",status=\"{class}\"}} {n}",
                            endpoint.label()
                        );
                    }
                }
            }
        }
    }

    fn render_durations(&self, out: &mut String) {
        let name = "registry_http_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Time from request to response headers, by endpoint.\n# TYPE {name} histogram"
        );
        for (endpoint, histogram) in ENDPOINTS.iter().zip(&self.durations) {
            let counts: Vec<u64> = histogram.counts.iter().map(|c| c.load(Relaxed)).collect();
            let total: u64 = counts.iter().sum();
            if total == 0 {
                continue;
            }
            let label = endpoint.label();
            let mut cumulative = 0;
            for (bound, count) in BUCKETS_NANOS.iter().zip(&counts) {
                cumulative += count;
                let bound = *bound as f64 / 1e9;
                let _ = writeln!(
                    out,
                    "{name}_bucket{{endpoint=\"{label}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let sum = histogram.sum_nanos.load(Relaxed) as f64 / 1e9;
            let _ = writeln!(
                out,
                "{name}_bucket{{endpoint=\"{label}\",le=\"+Inf\"}} {total}\n\
                 {name}_sum{{endpoint=\"{label}\"}} {sum}\n\
                 {name}_count{{endpoint=\"{label}\"}} {total}"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_from_paths() {
        use EndpointClass as E;
        let d = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let cases = [
            ("/v2/", E::Base),
            ("/v2", E::Base),
            ("/v2x", E::Other),
            ("/v2/token", E::Token),
            ("/v2/_catalog", E::Catalog),
            ("/v2/a/b/tags/list", E::Tags),
            ("/v2/a/b/manifests/latest", E::Manifest),
            ("/v2/a/blobs/manifests/latest", E::Manifest),
            (&format!("/v2/a/manifests/blobs/{d}"), E::Blob),
            ("/v2/a/b/c/blobs/uploads/", E::Upload),
            ("/v2/a/b/blobs/uploads", E::Upload),
            (
                "/v2/a/b/blobs/uploads/0123456789abcdef0123456789abcdef",
                E::Upload,
            ),
            (&format!("/v2/a/b/referrers/{d}"), E::Referrers),
            ("/v2/a", E::Other),
            ("/apis/admin/v1/whoami", E::Admin),
            ("/apis/image/v1/repositories", E::Image),
            ("/healthz", E::Health),
            ("/readyz", E::Health),
            ("/extensions/v2/metrics", E::Metrics),
            ("/favicon.ico", E::Other),
        ];
        for (path, expected) in cases {
            assert_eq!(EndpointClass::of_path(path), expected, "{path}");
        }
    }

    #[test]
    fn histogram_buckets() {
        let h = Histogram::new();
        h.observe(500_000); // 0.5 ms: first bucket
        h.observe(1_000_000); // exactly 1 ms: le="0.001" includes it
        h.observe(60_000_000_000); // a minute: +Inf only
        assert_eq!(h.counts[0].load(Relaxed), 2);
        assert_eq!(h.counts[BUCKETS_NANOS.len()].load(Relaxed), 1);
        assert_eq!(ENDPOINTS.len(), N_ENDPOINTS);
        for (i, e) in ENDPOINTS.iter().enumerate() {
            assert_eq!(*e as usize, i);
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(class_index(StatusCode::OK), 1);
        assert_eq!(class_index(StatusCode::NOT_FOUND), 3);
        assert_eq!(class_index(StatusCode::INTERNAL_SERVER_ERROR), 4);
    }
}
