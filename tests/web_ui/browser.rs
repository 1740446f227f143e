//! chromedriver and headless Chromium: starting them, waiting for pages,
//! and screenshots at phone and desktop widths.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// chromedriver, stopped on drop.
pub(crate) struct Driver {
    child: Child,
    url: String,
    /// Chromium's profile and chromedriver's log.
    dir: tempfile::TempDir,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    names.iter().find_map(|name| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// Starts chromedriver and a headless Chromium session.
pub(crate) async fn browser() -> (Driver, Client) {
    let chromedriver = find_program(&["chromedriver"]).expect(
        "REGISTRY_TEST_BROWSER=1 but chromedriver is not on PATH (Debian: chromium-driver)",
    );
    let chromium = find_program(&["chromium", "chromium-browser", "google-chrome"])
        .expect("REGISTRY_TEST_BROWSER=1 but chromium is not on PATH (Debian: chromium)");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        listener.local_addr().expect("port").port()
    };
    let dir = tempfile::tempdir().expect("profile dir");
    let log = dir.path().join("chromedriver.log");
    let child = Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .arg(format!("--log-path={}", log.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting chromedriver");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
        dir,
    };
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                "--force-device-scale-factor=1",
                "--window-size=1280,900",
                format!("--user-data-dir={}", driver.dir.path().join("profile").display()),
            ],
        }),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = loop {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match ClientBuilder::new(connector)
            .capabilities(capabilities.clone())
            .connect(&driver.url)
            .await
        {
            Ok(client) => break client,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!(
                "no WebDriver session from {chromedriver:?}: {e}\nits log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        }
    };
    (driver, client)
}

/// Polls `check` until it returns `Some`, for at most 20 s (a login
/// hashes a password: slow in a debug build on a loaded machine).
pub(crate) async fn eventually<T, F, Fut>(what: &str, client: &Client, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        if Instant::now() > deadline {
            let text = main_text(client).await;
            panic!("timed out waiting for {what}; the page shows:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn main_text(client: &Client) -> String {
    match client.find(Locator::Css("body")).await {
        Ok(body) => body.text().await.unwrap_or_default(),
        Err(e) => format!("(no body: {e})"),
    }
}

/// Waits until the page's text contains `needle`; the text.
pub(crate) async fn wait_for_text(client: &Client, needle: &str) -> String {
    eventually(&format!("{needle:?}"), client, || async {
        let text = main_text(client).await;
        text.contains(needle).then_some(text)
    })
    .await
}

/// The first link whose text is `text`, once there is one.
pub(crate) async fn link(client: &Client, text: &str) -> Element {
    eventually(&format!("a link {text:?}"), client, || async {
        client.find(Locator::LinkText(text)).await.ok()
    })
    .await
}

/// Starts recording Content-Security-Policy violations of this page load
/// (the UI renders every page of the session in it).
pub(crate) async fn watch_csp(client: &Client) {
    script(
        client,
        "window.cspViolations = []; document.addEventListener('securitypolicyviolation', \
         e => window.cspViolations.push(e.violatedDirective + ' ' + e.blockedURI));",
    )
    .await;
}

pub(crate) async fn assert_no_csp_violations(client: &Client, when: &str) {
    let seen = script(client, "return window.cspViolations;").await;
    assert_eq!(seen, json!([]), "CSP violations {when}");
}

pub(crate) async fn script(client: &Client, source: &str) -> Value {
    client
        .execute(source, Vec::new())
        .await
        .unwrap_or_else(|e| panic!("script {source:?}: {e}"))
}

/// Sets the viewport (not the window) to `width` × `height` CSS pixels.
async fn viewport(client: &Client, width: u32, height: u32) {
    client
        .set_window_size(width, height)
        .await
        .expect("set_window_size");
    let inner = script(client, "return [window.innerWidth, window.innerHeight];").await;
    let (iw, ih) = (
        inner[0].as_u64().unwrap_or(0) as u32,
        inner[1].as_u64().unwrap_or(0) as u32,
    );
    if iw != width || ih != height {
        let w = width + width.saturating_sub(iw);
        let h = height + height.saturating_sub(ih);
        client.set_window_size(w, h).await.expect("set_window_size");
        let inner = script(client, "return window.innerWidth;").await;
        assert_eq!(
            inner.as_u64(),
            Some(u64::from(width)),
            "cannot make the viewport {width} px wide"
        );
    }
}

fn artifact_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ci-artifacts/web-ui");
    std::fs::create_dir_all(&dir).expect("creating target/ci-artifacts/web-ui");
    dir
}

/// Screenshots of the whole page at 390 px and at 1280 px; at 390 px the
/// page must not be wider than the viewport.
pub(crate) async fn screenshots(client: &Client, name: &str) {
    for (label, width) in [("mobile", 390_u32), ("desktop", 1280)] {
        viewport(client, width, 844).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let widths = script(
            client,
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];",
        )
        .await;
        let (scroll, client_width) = (
            widths[0].as_u64().unwrap_or(u64::MAX),
            widths[1].as_u64().unwrap_or(0),
        );
        assert!(
            scroll <= client_width,
            "{name} at {width} px scrolls sideways: scrollWidth {scroll} > clientWidth {client_width}"
        );
        if width == 390 {
            let wide = script(
                client,
                "return Array.from(document.querySelectorAll('main *'))\
                 .filter(e => !e.closest('.visually-hidden, .offscreen, table.data thead'))\
                 .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 0.5)\
                 .slice(0, 5).map(e => e.tagName + '.' + e.className + ': ' + e.textContent.slice(0, 40));",
            )
            .await;
            assert_eq!(
                wide,
                json!([]),
                "{name}: elements past the right edge at 390 px"
            );
        }
        let height = script(client, "return document.documentElement.scrollHeight;")
            .await
            .as_u64()
            .unwrap_or(844)
            .clamp(600, 6000) as u32;
        viewport(client, width, height).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let png = client.screenshot().await.expect("screenshot");
        let path = artifact_dir().join(format!("{name}-{label}.png"));
        std::fs::write(&path, png).expect("writing screenshot");
        println!("screenshot: {}", path.display());
    }
    viewport(client, 1280, 900).await;
}
