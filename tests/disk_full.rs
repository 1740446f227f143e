//! The `registry-server` binary on a disk that fills up (issue 8, item 9):
//! while the data directory's filesystem is full, pushes answer 507
//! `UNAVAILABLE` naming the problem (not 500 `UNKNOWN`) and `/readyz` says
//! not ready; as soon as space is freed, without a restart, pushes work
//! again, readiness comes back, and what was stored before is intact.
//!
//! The data directory is a small tmpfs mounted by the test, which needs
//! root (CAP_SYS_ADMIN). Without it the test says it skipped, unless
//! `REGISTRY_TEST_TMPFS=1` (set by `.ci/run`) requires it.
#![cfg(target_os = "linux")]

#[path = "common/examples.rs"]
mod examples;
#[path = "common/mount.rs"]
mod mount;

use std::fs::OpenOptions;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use examples::ServerProcess;
use mount::Mount;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

/// Writes `path` until the filesystem refuses a byte (ENOSPC).
fn fill(path: &Path) {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("creating the filler");
    let chunk = vec![0x5au8; 64 * 1024];
    for _ in 0..4096 {
        if let Err(e) = file.write_all(&chunk).and_then(|()| file.sync_all()) {
            assert_eq!(e.raw_os_error(), Some(28), "filling: {e}");
            return;
        }
    }
    panic!("the filesystem never filled up");
}

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex_lower(&Sha256::digest(bytes)))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

struct Api {
    client: reqwest::Client,
    url: String,
}

impl Api {
    /// Monolithic push of `bytes`: status and the OCI error code, if any.
    async fn push_blob(&self, bytes: &[u8]) -> (u16, String) {
        let r = self
            .client
            .post(format!(
                "{}/v2/team/app/blobs/uploads/?digest={}",
                self.url,
                sha256(bytes)
            ))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .expect("push");
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let code = body["errors"][0]["code"].as_str().unwrap_or("").to_owned();
        (status, code)
    }

    async fn ready(&self) -> (u16, String) {
        // Readiness answers are reused for a second.
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let r = self
            .client
            .get(format!("{}/readyz", self.url))
            .send()
            .await
            .expect("readyz");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }
}

#[test]
fn a_full_disk_is_507_and_not_ready_until_space_returns() {
    let dir = tempfile::tempdir().expect("tempdir");
    let disk = dir.path().join("disk");
    std::fs::create_dir(&disk).expect("mount point");
    let _tmpfs = match Mount::new(&["-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs"], &disk) {
        Ok(tmpfs) => tmpfs,
        Err(e) if std::env::var("REGISTRY_TEST_TMPFS").as_deref() == Ok("1") => {
            panic!("REGISTRY_TEST_TMPFS=1 requires a tmpfs: {e}")
        }
        Err(e) => {
            eprintln!(
                "SKIPPED a_full_disk_is_507_and_not_ready_until_space_returns: {e} \
                 (needs root; REGISTRY_TEST_TMPFS=1 makes this a failure)"
            );
            return;
        }
    };
    let (_server, url) = ServerProcess::start(&disk, &["--no-auth"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let api = Api {
        // No pooled connections: a 507 answered before the server read a
        // whole body ends that connection, and a pooled client could pick
        // it for the next request while it is closing (a broken pipe that
        // says nothing about the registry).
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(0)
            .build()
            .expect("client"),
        url,
    };
    let config = br#"{"architecture":"amd64","os":"linux"}"#.to_vec();
    let layer: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect();

    runtime.block_on(async {
        assert_eq!(api.push_blob(&config).await, (201, String::new()));
        assert_eq!(api.ready().await.0, 200);

        let filler = disk.join("filler");
        fill(&filler);
        let (status, code) = api.push_blob(&layer).await;
        assert_eq!(
            (status, code.as_str()),
            (507, "UNAVAILABLE"),
            "a push on a full disk"
        );
        // Starting a session writes one database row, which may still fit
        // in space the database file or its log already holds (a log
        // emptied by a checkpoint is rewritten from its start); its first
        // bytes cannot.
        let session = api
            .client
            .post(format!("{}/v2/team/app/blobs/uploads/", api.url))
            .send()
            .await
            .expect("start upload");
        match session.status().as_u16() {
            507 => {}
            202 => {
                let location = session.headers()["location"]
                    .to_str()
                    .expect("location")
                    .to_owned();
                let url = match location.starts_with('/') {
                    true => format!("{}{location}", api.url),
                    false => location,
                };
                let chunk = api
                    .client
                    .patch(url)
                    .header("content-type", "application/octet-stream")
                    .body(layer.clone())
                    .send()
                    .await
                    .expect("upload a chunk");
                assert_eq!(chunk.status().as_u16(), 507, "a chunk on a full disk");
                let body: Value = chunk.json().await.unwrap_or(Value::Null);
                assert_eq!(body["errors"][0]["code"], "UNAVAILABLE", "{body}");
            }
            other => panic!("an upload session on a full disk answered {other}"),
        }
        let (status, text) = api.ready().await;
        assert_eq!(status, 503, "readyz on a full disk: {text}");
        assert!(text.contains("storage full"), "readyz says why: {text}");

        // Space returns: everything works again, no restart.
        std::fs::remove_file(&filler).expect("removing the filler");
        assert_eq!(api.ready().await.0, 200, "readyz once space is back");
        assert_eq!(api.push_blob(&layer).await, (201, String::new()));
        let manifest = format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{}","size":{}}},"layers":[{{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"{}","size":{}}}]}}"#,
            sha256(&config),
            config.len(),
            sha256(&layer),
            layer.len()
        );
        let put = api
            .client
            .put(format!("{}/v2/team/app/manifests/v1", api.url))
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.clone())
            .send()
            .await
            .expect("manifest put");
        assert_eq!(put.status().as_u16(), 201, "manifest put once space is back");
        for (digest, expected) in [(sha256(&config), &config), (sha256(&layer), &layer)] {
            let got = api
                .client
                .get(format!("{}/v2/team/app/blobs/{digest}", api.url))
                .send()
                .await
                .expect("blob get");
            assert_eq!(got.status().as_u16(), 200);
            assert_eq!(&got.bytes().await.expect("blob body")[..], &expected[..]);
        }
    });
}
