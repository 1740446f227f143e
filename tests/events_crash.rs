//! At-least-once delivery survives `kill -9`: `registry-server` (with a
//! webhook to a receiver in this test) is killed with SIGKILL during a
//! burst of 500 concurrent pushes, restarted on the same data (SQLite, and
//! PostgreSQL when `REGISTRY_TEST_DATABASE_URL` is set), and every push it
//! acknowledged ends with exactly one successful delivery recorded (read
//! through the admin API), each event signed and arrived.
#![cfg(unix)]

#[path = "common/crash.rs"]
mod crash;
#[path = "common/examples.rs"]
mod examples;
#[path = "common/http_api.rs"]
mod http_api;
#[path = "common/test_database.rs"]
mod test_database;
#[path = "../registry-api/tests/webhook_receiver/mod.rs"]
mod webhook_receiver;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use examples::ServerProcess;
use http_api::{digest, Api};
use reqwest::Method;
use serde_json::{json, Value};
use webhook_receiver::Receiver;

const SECRET: &str = "crash-test-secret-0123456789";
const PUSHES: usize = 500;
const CLIENTS: usize = 16;

/// Monolithic blob push and image pushes over the shared test client.
async fn push_blob(api: &Api, data: &[u8]) {
    api.req(
        Method::POST,
        &format!("/v2/team/app/blobs/uploads/?digest={}", digest(data)),
    )
    .body(data.to_vec())
    .send()
    .await
    .unwrap()
    .error_for_status()
    .unwrap();
}

/// Pushes image `i` (its own manifest over shared blobs) as tag `t{i}`.
async fn push(api: &Api, i: usize) -> Result<(), reqwest::Error> {
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(CONFIG), "size": CONFIG.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": digest(LAYER), "size": LAYER.len()}],
        "annotations": {"i": i.to_string()},
    });
    api.req(Method::PUT, &format!("/v2/team/app/manifests/t{i}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(serde_json::to_vec(&manifest).unwrap())
        .send()
        .await?
        .error_for_status()?;
    Ok(())
}

const CONFIG: &[u8] = b"{\"crash\":true}";
const LAYER: &[u8] = b"a layer every image shares";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_push_is_delivered_once_after_sigkill_sqlite() {
    crash_and_check(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_acknowledged_push_is_delivered_once_after_sigkill_postgres() {
    let Some((url, _server, _name)) = test_database::test_database("events_crash postgres").await
    else {
        return;
    };
    crash_and_check(&["--database-url", &url]).await;
}

async fn crash_and_check(extra: &[&str]) {
    let started = std::time::Instant::now();
    let stage = |what: &str| eprintln!("{:>6.1}s {what}", started.elapsed().as_secs_f64());
    let receiver = Receiver::start(SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["--webhook-allow-private"];
    args.extend_from_slice(extra);
    let (mut server, url) = ServerProcess::start(dir.path(), &args);
    let api = Arc::new(Api::new(&url));
    api.json(
        Method::POST,
        "/apis/admin/v1/namespaces",
        Some(json!({"name": "team"})),
    )
    .await;
    let created = api
        .json(
            Method::POST,
            "/apis/admin/v1/namespaces/team/webhooks",
            Some(json!({"url": receiver.url("team"), "secret": SECRET,
                        "events": ["io.registry.manifest.pushed"]})),
        )
        .await;
    let webhook = created["webhook"]["id"].as_u64().unwrap();
    push_blob(&api, CONFIG).await;
    push_blob(&api, LAYER).await;
    stage("pushing");

    // A burst of pushes from many clients; killed with SIGKILL half way.
    let pusher = api.clone();
    let push = move |i| {
        let api = pusher.clone();
        async move { push(&api, i).await.is_ok() }
    };
    let burst = crash::kill_mid_burst(
        &mut server,
        PUSHES,
        CLIENTS,
        |acks, _| acks >= PUSHES / 2,
        push,
        || {},
    )
    .await;
    stage("killed the server");
    drop(server);
    let acknowledged: HashSet<String> =
        burst.acknowledged.keys().map(|i| format!("t{i}")).collect();

    let (_server, url) = ServerProcess::start(dir.path(), &args);
    stage("restarted");
    let api = Api::new(&url);
    // Every acknowledged push's event arrives (signed: the receiver checks).
    receiver
        .wait_for(Duration::from_secs(60), "every acknowledged push", |got| {
            let tags: HashSet<String> = got
                .iter()
                .filter_map(|g| g.event.data["tags"][0].as_str().map(str::to_owned))
                .collect();
            acknowledged.is_subset(&tags)
        })
        .await;
    assert_eq!(receiver.bad_signatures(), 0);
    stage("every acknowledged push arrived");

    // The audit trail: each acknowledged push has its event.
    let mut event_of_tag: HashMap<String, String> = HashMap::new();
    let mut last: Option<u64> = None;
    loop {
        let mut path =
            "/apis/admin/v1/audit?namespace=team&type=io.registry.manifest.pushed&n=200".to_owned();
        if let Some(last) = last {
            path.push_str(&format!("&last={last}"));
        }
        let page = api.json(Method::GET, &path, None).await;
        for entry in page["items"].as_array().unwrap() {
            let tag = entry["event"]["data"]["tags"][0]
                .as_str()
                .unwrap()
                .to_owned();
            let id = entry["event"]["id"].as_str().unwrap().to_owned();
            assert!(event_of_tag.insert(tag, id).is_none(), "one event per push");
        }
        match page["next"].as_u64() {
            Some(next) => last = Some(next),
            None => break,
        }
    }
    for tag in &acknowledged {
        assert!(
            event_of_tag.contains_key(tag),
            "acknowledged {tag} has no event"
        );
    }

    // Deliveries through the admin API: exactly one, delivered, per event.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let deliveries = all_deliveries(&api, webhook).await;
        let mut per_event: HashMap<&str, Vec<&Value>> = HashMap::new();
        for d in &deliveries {
            per_event
                .entry(d["event_id"].as_str().unwrap())
                .or_default()
                .push(d);
        }
        let settled = acknowledged.iter().all(|tag| {
            per_event
                .get(event_of_tag[tag].as_str())
                .is_some_and(|ds| ds.len() == 1 && ds[0]["status"] == "delivered")
        });
        if settled {
            stage("deliveries settled");
            assert!(per_event.values().all(|ds| ds.len() == 1));
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "deliveries did not settle: {} recorded",
            deliveries.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // What the receiver saw twice (a delivery sent before the kill and
    // recorded after it) has one id per event: receivers deduplicate by it.
    let ids: HashSet<String> = receiver
        .received()
        .iter()
        .map(|r| r.event.id.clone())
        .collect();
    for tag in &acknowledged {
        assert!(ids.contains(&event_of_tag[tag]));
    }
}

async fn all_deliveries(api: &Api, webhook: u64) -> Vec<Value> {
    let mut all = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let mut path =
            format!("/apis/admin/v1/namespaces/team/webhooks/{webhook}/deliveries?n=500");
        if let Some(b) = before {
            path.push_str(&format!("&before={b}"));
        }
        let page = api.json(Method::GET, &path, None).await;
        all.extend(page["items"].as_array().unwrap().iter().cloned());
        match page["next"].as_u64() {
            Some(next) => before = Some(next),
            None => return all,
        }
    }
}
