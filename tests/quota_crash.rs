//! Namespace usage survives a crash: `registry-server` is killed with
//! SIGKILL while clients push into a namespace with a quota (blobs shared
//! between its repositories, manifests linking them), restarted on the same
//! data directory, and the usage it reports equals what a recount rebuilds
//! from the links (`POST …/usage/recompute`, as `registryctl namespace
//! usage --recompute` calls it).
#![cfg(unix)]

#[path = "common/examples.rs"]
mod examples;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use examples::{ServerProcess, ADMIN_PASSWORD};
use serde_json::{json, Value};

fn digest(data: &[u8]) -> String {
    registry::core::Digest::sha256_of(data).to_string()
}

#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    url: String,
}

impl Api {
    fn new(url: &str) -> Self {
        // reqwest is built without a default TLS provider (plain HTTP here).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Api {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
            url: url.trim_end_matches('/').to_owned(),
        }
    }

    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.url))
            .basic_auth("admin", Some(ADMIN_PASSWORD))
    }

    async fn json(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.req(method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.expect("request");
        let status = r.status();
        let text = r.text().await.expect("body");
        assert!(status.is_success(), "{path}: {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// One image: a blob shared by every image of the namespace, one of
    /// its own, and a manifest. Errors are the crash's doing: ignored.
    async fn push_image(&self, repo: &str, i: usize) -> Result<(), reqwest::Error> {
        let shared = b"a layer every image shares".to_vec();
        let own: Vec<u8> = format!("layer {i} ")
            .bytes()
            .cycle()
            .take(2000 + i)
            .collect();
        for blob in [&shared, &own] {
            self.req(
                reqwest::Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={}", digest(blob)),
            )
            .body(blob.clone())
            .send()
            .await?
            .error_for_status()?;
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": digest(&shared), "size": shared.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": digest(&own), "size": own.len()}],
        });
        self.req(reqwest::Method::PUT, &format!("/v2/{repo}/manifests/v{i}"))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(serde_json::to_vec(&manifest).unwrap())
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn usage_is_exact_after_sigkill_during_pushes() {
    let dir = tempfile::tempdir().unwrap();
    let (mut server, url) = ServerProcess::start(dir.path(), &[]);
    let api = Api::new(&url);
    api.json(
        reqwest::Method::POST,
        "/apis/admin/v1/namespaces",
        Some(json!({"name": "team"})),
    )
    .await;
    api.json(
        reqwest::Method::PUT,
        "/apis/admin/v1/namespaces/team/policy",
        Some(json!({"quota_bytes": 100_000_000})),
    )
    .await;

    // Four clients push until the server dies under them.
    let pushed = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let (api, pushed) = (api.clone(), pushed.clone());
            tokio::spawn(async move {
                for i in (c..).step_by(4) {
                    let repo = format!("team/app{}", i % 3);
                    if api.push_image(&repo, i).await.is_err() {
                        return;
                    }
                    pushed.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    while pushed.load(Ordering::SeqCst) < 40 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    server.child.kill().expect("SIGKILL"); // std's kill is SIGKILL on unix
    server.child.wait().expect("wait");
    for client in clients {
        client.await.expect("client task");
    }
    drop(server);

    let (_server, url) = ServerProcess::start(dir.path(), &[]);
    let api = Api::new(&url);
    let shown = api
        .json(
            reqwest::Method::GET,
            "/apis/admin/v1/namespaces/team/usage",
            None,
        )
        .await;
    let usage = shown["usage"].clone();
    assert!(usage["bytes"].as_u64().unwrap_or(0) > 40 * 2000, "{shown}");
    assert!(usage["images"].as_u64().unwrap_or(0) >= 40, "{shown}");
    let recount = api
        .json(
            reqwest::Method::POST,
            "/apis/admin/v1/namespaces/team/usage/recompute",
            None,
        )
        .await;
    assert_eq!(recount["before"], usage, "{recount}");
    assert_eq!(
        recount["after"], usage,
        "usage after the crash is exact: {recount}"
    );
    assert_eq!(
        recount["sizes_learned"], 0,
        "every size was recorded: {recount}"
    );
}
