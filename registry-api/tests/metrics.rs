//! `/extensions/v2/metrics` in process: the counters move with requests,
//! the output is Prometheus text, and only `metrics-viewer` (or
//! `cluster-admin`) may read it when access control is on.

mod common;

use std::collections::HashMap;

use axum::http::{Method, StatusCode};
use common::{basic, with_access_control, Client, PASSWORD};
use registry_api::Registry;
use registry_auth::ClusterRole;
use registry_core::Digest;

const METRICS: &str = "/extensions/v2/metrics";
/// One sample: metric name with its sorted labels.
type Samples = HashMap<String, f64>;

/// Parses the text exposition format strictly enough for a test: every
/// non-comment line is `name{k="v",…} value` or `name value`.
fn parse(text: &str) -> Samples {
    let mut samples = Samples::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let kind = rest.split(' ').nth(1).unwrap_or("");
                assert!(
                    ["counter", "gauge", "histogram"].contains(&kind),
                    "bad TYPE line {line:?}"
                );
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value of {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels.strip_suffix('}').expect("closing brace");
                for pair in labels.split(',') {
                    let (k, v) = pair.split_once('=').expect("label=value");
                    assert!(
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                        "label name in {line:?}"
                    );
                    assert!(
                        v.len() >= 2 && v.starts_with('"') && v.ends_with('"'),
                        "label value in {line:?}"
                    );
                }
                (name, labels)
            }
            None => (series, ""),
        };
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "metric name in {line:?}"
        );
        assert!(
            samples
                .insert(format!("{name}{{{labels}}}"), value)
                .is_none(),
            "duplicate series {series}"
        );
    }
    samples
}

async fn scrape(c: &Client, auth: Option<&str>) -> Samples {
    let headers: Vec<(&str, &str)> = auth.map(|a| ("authorization", a)).into_iter().collect();
    let r = c.bare(Method::GET, METRICS, &headers).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert!(r
        .header("content-type")
        .starts_with("text/plain; version=0.0.4"));
    parse(std::str::from_utf8(&r.body).expect("utf-8"))
}

fn get(samples: &Samples, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn counters_move_without_access_control() {
    let c = Client::new();
    let before = scrape(&c, None).await;
    let blob_gets = r#"registry_http_requests_total{endpoint="blob",method="GET",status="2xx"}"#;
    assert_eq!(get(&before, blob_gets), 0.0);

    // Monolithic pushes and a manifest.
    let (_, _, layer) = c.push_image("team/app", "v1", "metrics").await;
    let layer_len = "layer of metrics".len() as f64;
    let r = c.get(&format!("/v2/team/app/blobs/{layer}")).await;
    assert_eq!(r.status, StatusCode::OK);
    let r = c
        .bare(
            Method::GET,
            &format!("/v2/team/app/blobs/{layer}"),
            &[("range", "bytes=0-4")],
        )
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    let r = c.get("/v2/team/app/manifests/missing").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // A chunked upload, committed; another, cancelled.
    let data = b"chunked upload data";
    let r = c
        .bare(Method::POST, "/v2/team/app/blobs/uploads/", &[])
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let location = r.header("location").to_owned();
    let r = c
        .call(
            Method::PATCH,
            &location,
            &[("content-range", "0-18")],
            data.to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let digest = Digest::sha256_of(data);
    let r = c
        .bare(Method::PUT, &format!("{location}?digest={digest}"), &[])
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = c
        .bare(Method::POST, "/v2/team/app/blobs/uploads/", &[])
        .await;
    let open = r.header("location").to_owned();
    let after_open = scrape(&c, None).await;
    assert_eq!(get(&after_open, "registry_uploads_in_progress{}"), 1.0);
    let r = c.bare(Method::DELETE, &open, &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);

    let s = scrape(&c, None).await;
    assert_eq!(get(&s, blob_gets), 2.0);
    assert_eq!(
        get(
            &s,
            r#"registry_http_requests_total{endpoint="manifest",method="GET",status="4xx"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            &s,
            r#"registry_http_requests_total{endpoint="manifest",method="PUT",status="2xx"}"#
        ),
        1.0
    );
    // Two monolithic uploads, two session starts, a PATCH, a PUT, a DELETE.
    assert_eq!(
        get(
            &s,
            r#"registry_http_requests_total{endpoint="upload",method="POST",status="2xx"}"#
        ),
        4.0
    );
    assert_eq!(get(&s, "registry_blob_bytes_sent_total{}"), layer_len + 5.0);
    let config_len = get(&s, "registry_blob_bytes_received_total{}") - layer_len - 19.0;
    assert!(config_len > 0.0, "config bytes counted too");
    assert_eq!(
        get(&s, r#"registry_upload_sessions_total{event="started"}"#),
        2.0
    );
    assert_eq!(
        get(&s, r#"registry_upload_sessions_total{event="committed"}"#),
        1.0
    );
    assert_eq!(
        get(&s, r#"registry_upload_sessions_total{event="cancelled"}"#),
        1.0
    );
    assert_eq!(get(&s, "registry_uploads_in_progress{}"), 0.0);
    // The histogram: cumulative buckets ending in +Inf = count.
    let count = get(
        &s,
        r#"registry_http_request_duration_seconds_count{endpoint="blob"}"#,
    );
    assert_eq!(count, 2.0);
    assert_eq!(
        get(
            &s,
            r#"registry_http_request_duration_seconds_bucket{endpoint="blob",le="+Inf"}"#
        ),
        count
    );
    assert!(
        get(
            &s,
            r#"registry_http_request_duration_seconds_sum{endpoint="blob"}"#
        ) > 0.0
    );
    // Earlier scrapes are counted under their own endpoint, never a path.
    assert!(
        get(
            &s,
            r#"registry_http_requests_total{endpoint="metrics",method="GET",status="2xx"}"#
        ) >= 2.0
    );
    assert!(s.keys().all(|k| !k.contains("team/app")));
    assert_eq!(get(&s, "registry_http_requests_in_flight{}"), 1.0);
    for name in [
        "registry_gc_runs_total{}",
        "registry_gc_blobs_deleted_total{}",
        "registry_gc_bytes_freed_total{}",
        r#"registry_auth_failures_total{reason="unauthorized"}"#,
    ] {
        assert_eq!(s.get(name), Some(&0.0), "{name}");
    }
}

/// A registry with access control: `root` is cluster-admin, `prom` is
/// metrics-viewer, `nobody` has no role.
async fn guarded() -> Client {
    let cluster = [
        (ClusterRole::ClusterAdmin, "root"),
        (ClusterRole::MetricsViewer, "prom"),
    ];
    let users = ["root", "prom", "nobody"];
    let (registry, _) = with_access_control(Registry::in_memory(), &users, &[], &cluster).await;
    Client::with(registry)
}

#[tokio::test]
async fn metrics_need_the_metrics_viewer_role() {
    let c = guarded().await;
    let r = c.get(METRICS).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.header("www-authenticate").starts_with("Bearer realm="));
    let nobody = basic("nobody", PASSWORD);
    let r = c
        .bare(Method::GET, METRICS, &[("authorization", &nobody)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let wrong = basic("prom", "wrong-password");
    let r = c
        .bare(Method::GET, METRICS, &[("authorization", &wrong)])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let s = scrape(&c, Some(&basic("prom", PASSWORD))).await;
    // The anonymous 401 is a challenge, not a failure; the wrong password is.
    assert_eq!(
        get(&s, r#"registry_auth_failures_total{reason="unauthorized"}"#),
        1.0
    );
    assert_eq!(
        get(&s, r#"registry_auth_failures_total{reason="denied"}"#),
        1.0
    );
    assert_eq!(
        get(
            &s,
            r#"registry_http_requests_total{endpoint="metrics",method="GET",status="4xx"}"#
        ),
        3.0
    );
    // cluster-admin may read them too.
    scrape(&c, Some(&basic("root", PASSWORD))).await;
}

/// An upload store that counts how often it is listed.
#[derive(Debug)]
struct ListCounting {
    inner: registry_storage::memory::MemoryUploadStore,
    lists: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl registry_storage::UploadStore for ListCounting {
    async fn create_for(
        &self,
        repository: &registry_core::RepositoryName,
        owner: Option<registry_storage::SessionOwner<'_>>,
        announced: Option<registry_core::Algorithm>,
    ) -> registry_storage::Result<registry_storage::UploadStatus> {
        self.inner.create_for(repository, owner, announced).await
    }
    async fn open_sessions(&self, owner: &str) -> registry_storage::Result<usize> {
        self.inner.open_sessions(owner).await
    }
    async fn status(
        &self,
        id: &registry_storage::UploadId,
    ) -> registry_storage::Result<registry_storage::UploadStatus> {
        self.inner.status(id).await
    }
    async fn append(
        &self,
        id: &registry_storage::UploadId,
        offset: u64,
        body: registry_storage::ByteStream,
    ) -> registry_storage::Result<registry_storage::UploadStatus> {
        self.inner.append(id, offset, body).await
    }
    async fn commit(
        &self,
        id: &registry_storage::UploadId,
        expected: &Digest,
    ) -> registry_storage::Result<registry_storage::BlobInfo> {
        self.inner.commit(id, expected).await
    }
    async fn commit_last_chunk(
        &self,
        id: &registry_storage::UploadId,
        offset: u64,
        body: registry_storage::ByteStream,
        expected: &Digest,
    ) -> registry_storage::Result<registry_storage::BlobInfo> {
        self.inner
            .commit_last_chunk(id, offset, body, expected)
            .await
    }
    async fn cancel(&self, id: &registry_storage::UploadId) -> registry_storage::Result<()> {
        self.inner.cancel(id).await
    }
    async fn list(&self) -> registry_storage::Result<Vec<registry_storage::UploadStatus>> {
        self.lists.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.list().await
    }
}

/// The open-sessions gauge follows sessions as they open, commit, fail,
/// are cancelled and expire, and a scrape does not list the upload store
/// (before: every scrape listed every session, reading its state file).
#[tokio::test]
async fn open_uploads_gauge_does_not_list_sessions_per_scrape() {
    use registry_storage::memory::{MemoryBlobStore, MemoryMetadataStore, MemoryUploadStore};
    use registry_storage::UploadStore as _;
    use std::sync::atomic::Ordering::SeqCst;
    use std::sync::Arc;

    let blobs = MemoryBlobStore::default();
    let uploads = Arc::new(ListCounting {
        inner: MemoryUploadStore::in_memory(&blobs),
        lists: Default::default(),
    });
    // A session left by an earlier process: counted by the first scrape.
    uploads.create(&"team/app".parse().unwrap()).await.unwrap();
    let registry = Registry::new(registry_storage::Stores::new(
        Arc::new(blobs),
        uploads.clone(),
        Arc::new(MemoryMetadataStore::default()),
    ));
    let c = Client::with(registry.clone());
    let gauge = |s: &Samples| get(s, "registry_uploads_in_progress{}");
    assert_eq!(gauge(&scrape(&c, None).await), 1.0);

    let mut locations = Vec::new();
    for _ in 0..3 {
        let r = c
            .bare(Method::POST, "/v2/team/app/blobs/uploads/", &[])
            .await;
        assert_eq!(r.status, StatusCode::ACCEPTED);
        locations.push(r.header("location").to_owned());
    }
    assert_eq!(gauge(&scrape(&c, None).await), 4.0);
    // A monolithic push opens and commits: no change.
    c.push_blob("team/app", b"monolithic").await;
    // A digest mismatch at commit ends the session too.
    let wrong = Digest::sha256_of(b"something else");
    let r = c
        .bare(
            Method::PUT,
            &format!("{}&digest={wrong}", with_query(&locations[0])),
            &[],
        )
        .await;
    assert!(r.status.is_client_error(), "{:?}", r.status);
    let r = c.bare(Method::DELETE, &locations[1], &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(gauge(&scrape(&c, None).await), 2.0);
    // Expiry by garbage collection cancels through the same store.
    let report = registry
        .collect_garbage(registry_storage::GcOptions {
            upload_max_age: std::time::Duration::ZERO,
            ..Default::default()
        })
        .await
        .unwrap();
    let after_gc = gauge(&scrape(&c, None).await);
    assert_eq!(report.uploads_expired, 2);
    assert_eq!(after_gc, 0.0);
    let lists_by_gc = 1;
    assert_eq!(
        uploads.lists.load(SeqCst),
        1 + lists_by_gc,
        "one listing for the first scrape, one by garbage collection"
    );
}

/// `location` with a query string started, so more pairs can be added.
fn with_query(location: &str) -> String {
    if location.contains('?') {
        location.to_owned()
    } else {
        format!("{location}?")
    }
}
