//! A small HTTP client of the registry's distribution and admin APIs for
//! process tests: Basic auth as `admin`, chunked uploads by hand.
#![allow(dead_code)]

use std::time::Duration;

use reqwest::{Method, StatusCode};

use super::examples::ADMIN_PASSWORD;

pub fn digest(data: &[u8]) -> String {
    registry::core::Digest::sha256_of(data).to_string()
}

pub fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u64 * 2_654_435_761) >> 7) as u8 ^ seed)
        .collect()
}

pub struct Api {
    pub user: String,
    pub password: String,
    pub http: reqwest::Client,
    pub url: String,
}

impl Api {
    pub fn new(url: &str) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Api {
            user: "admin".to_owned(),
            password: ADMIN_PASSWORD.to_owned(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(0)
                .build()
                .unwrap(),
            url: url.trim_end_matches('/').to_owned(),
        }
    }

    pub fn req(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.url)
        };
        self.http
            .request(method, url)
            .basic_auth(&self.user, Some(&self.password))
    }

    /// A JSON request that must succeed: its JSON answer (`null` if none).
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut req = self.req(method, path);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let r = req.send().await.expect("request");
        let status = r.status();
        let text = r.text().await.expect("body");
        assert!(status.is_success(), "{path}: {status}: {text}");
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    /// POST a session: its `Location`.
    pub async fn start_upload(&self, repo: &str) -> String {
        self.try_start_upload(repo).await.unwrap()
    }

    /// [`start_upload`](Self::start_upload) that returns what went wrong
    /// (a server killed in the middle) instead of panicking.
    pub async fn try_start_upload(&self, repo: &str) -> Result<String, String> {
        let path = format!("/v2/{repo}/blobs/uploads/");
        let r = self
            .req(Method::POST, &path)
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        let status = r.status();
        if status != StatusCode::ACCEPTED {
            return Err(format!("POST {path}: {status}"));
        }
        let location = r.headers().get("location");
        let location = location.ok_or_else(|| format!("POST {path}: no Location"))?;
        Ok(location.to_str().map_err(|e| e.to_string())?.to_owned())
    }

    /// PATCH one chunk at `offset`: the next `Location`.
    pub async fn patch(&self, location: &str, offset: usize, chunk: &[u8]) -> String {
        self.try_patch(location, offset, chunk).await.unwrap()
    }

    /// [`patch`](Self::patch) that returns what went wrong (a server killed
    /// in the middle) instead of panicking.
    pub async fn try_patch(
        &self,
        location: &str,
        offset: usize,
        chunk: &[u8],
    ) -> Result<String, String> {
        let r = self
            .req(Method::PATCH, location)
            .header("content-type", "application/octet-stream")
            .header(
                "content-range",
                format!("{offset}-{}", offset + chunk.len() - 1),
            )
            .body(chunk.to_vec())
            .send()
            .await
            .map_err(|e| format!("PATCH {location}: {e}"))?;
        let status = r.status();
        let next = r.headers().get("location").cloned();
        if status != StatusCode::ACCEPTED {
            let text = r.text().await.unwrap_or_default();
            return Err(format!("PATCH {location}: {status}: {text}"));
        }
        let next = next.ok_or_else(|| format!("PATCH {location}: no Location"))?;
        Ok(next.to_str().map_err(|e| e.to_string())?.to_owned())
    }

    /// PUT the end of a session whose bytes (`blob`) were all sent before.
    pub async fn finish(&self, location: &str, blob: &[u8]) {
        self.try_finish(location, Vec::new(), &digest(blob))
            .await
            .unwrap();
    }

    /// PUT the end of a session with a last `body` and the blob's `digest`,
    /// returning what went wrong (a server killed in the middle) instead of
    /// panicking.
    pub async fn try_finish(
        &self,
        location: &str,
        body: Vec<u8>,
        digest: &str,
    ) -> Result<(), String> {
        let sep = if location.contains('?') { '&' } else { '?' };
        let r = self
            .req(Method::PUT, &format!("{location}{sep}digest={digest}"))
            .body(body)
            .send()
            .await
            .map_err(|e| format!("PUT {location}: {e}"))?;
        let status = r.status();
        if status != StatusCode::CREATED {
            let text = r.text().await.unwrap_or_default();
            return Err(format!("PUT {location}: {status}: {text}"));
        }
        Ok(())
    }

    pub async fn get(&self, path: &str, range: Option<&str>) -> (StatusCode, Vec<u8>) {
        let mut req = self.req(Method::GET, path);
        if let Some(range) = range {
            req = req.header("range", range);
        }
        let r = req.send().await.unwrap();
        (r.status(), r.bytes().await.unwrap().to_vec())
    }
}

impl Api {
    /// The same client acting as `user`.
    pub fn as_user(&self, user: &str, password: &str) -> Api {
        Api {
            user: user.to_owned(),
            password: password.to_owned(),
            http: self.http.clone(),
            url: self.url.clone(),
        }
    }
}
