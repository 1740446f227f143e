//! The web UI (`examples/web-ui/`) as served by the `registry-server`
//! example binary.
//!
//! - `ui_is_served_with_its_headers_and_can_be_turned_off` (always runs):
//!   the app shell on every `/ui/*` path, the assets with their types,
//!   security and cache headers, `304` on a current `ETag`, the redirects,
//!   and `--no-ui` / `REGISTRY_NO_UI` / TOML `ui = false`.
//! - `browser_walkthrough`: real content pushed over HTTP, then headless
//!   Chromium driven through chromedriver (fantoccini): the anonymous
//!   landing page, login, clicking through a namespace, an ImageStream, a
//!   tag's history and an image's layers, an index's platforms and
//!   referrers, logout. Screenshots of every page at 390 px and desktop
//!   width go to `target/ci-artifacts/web-ui/`, and no page may scroll
//!   sideways at 390 px. It needs `chromium` and `chromedriver`: it runs
//!   when `REGISTRY_TEST_BROWSER=1` (set by `.ci/run`; then a missing
//!   browser fails it) and otherwise says that it skipped.

use fantoccini::{Client, Locator};
use reqwest::StatusCode;
use serde_json::json;

mod browser;
#[path = "../common/examples.rs"]
mod examples;
mod seed;

use browser::{
    assert_no_csp_violations, browser, eventually, link, screenshots, script, wait_for_text,
    watch_csp,
};
use examples::ServerProcess;
use seed::{seed, Seeded, SIGNATURE_TYPE};

const ALICE_PASSWORD: &str = "alice-pass-1";

// ---------------------------------------------------------------------------
// Serving
// ---------------------------------------------------------------------------

fn plain_client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client")
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("{} has no {name} header", response.url()))
}

#[tokio::test(flavor = "multi_thread")]
async fn ui_is_served_with_its_headers_and_can_be_turned_off() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_server, base) = ServerProcess::start(dir.path(), &[]);
    let http = plain_client();

    for path in [
        "/ui/",
        "/ui/namespaces/team",
        "/ui/namespaces/team/imagestreams/tools/build",
        "/ui/namespaces/team/imagestreamtags/app:v1",
        "/ui/images/sha256:0123",
    ] {
        let response = http.get(format!("{base}{path}")).send().await.expect(path);
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        assert_eq!(
            header(&response, "content-type"),
            "text/html; charset=utf-8"
        );
        let csp = header(&response, "content-security-policy");
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert_eq!(header(&response, "cache-control"), "no-cache");
        let body = response.text().await.expect("shell");
        assert!(body.contains(r#"<script type="module" src="/ui/assets/app.js">"#));
    }

    for (asset, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("views.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("icon.svg", "image/svg+xml"),
    ] {
        let url = format!("{base}/ui/assets/{asset}");
        let response = http.get(&url).send().await.expect(asset);
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
        assert_eq!(header(&response, "content-type"), content_type);
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        let etag = header(&response, "etag").to_owned();
        let again = http
            .get(&url)
            .header("If-None-Match", &etag)
            .send()
            .await
            .expect(asset);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED, "{asset}");
        assert!(again.bytes().await.expect("304 body").is_empty());
    }
    let missing = http
        .get(format!("{base}/ui/assets/nothing.js"))
        .send()
        .await
        .expect("missing asset");
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    for path in ["/", "/ui"] {
        let response = http.get(format!("{base}{path}")).send().await.expect(path);
        assert!(response.status().is_redirection(), "{path}");
        assert_eq!(header(&response, "location"), "/ui/", "{path}");
    }
    // The registry's own routes are unchanged beside the UI.
    let v2 = http.get(format!("{base}/v2/")).send().await.expect("/v2/");
    assert_eq!(v2.status(), StatusCode::UNAUTHORIZED);

    // Off by flag, by environment variable, by config file.
    let config = dir.path().join("registry.toml");
    std::fs::write(&config, "ui = false\n").expect("config file");
    let config = config.to_str().expect("utf-8 path").to_owned();
    let off = tempfile::tempdir().expect("temp dir");
    let mut by_env = ServerProcess::command(off.path(), &[]);
    by_env.env("REGISTRY_NO_UI", "true");
    for (what, command) in [
        ("--no-ui", ServerProcess::command(off.path(), &["--no-ui"])),
        ("REGISTRY_NO_UI", by_env),
        (
            "ui = false",
            ServerProcess::command(off.path(), &["--config", &config]),
        ),
    ] {
        let (mut server, base) = ServerProcess::spawn(command);
        for path in ["/ui/", "/ui/assets/app.js", "/"] {
            let response = http.get(format!("{base}{path}")).send().await.expect(path);
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{what}: {path}");
        }
        let v2 = http.get(format!("{base}/v2/")).send().await.expect("/v2/");
        assert_eq!(v2.status(), StatusCode::UNAUTHORIZED, "{what}");
        // One data directory, one server at a time.
        assert!(server.terminate().success(), "{what}: clean shutdown");
    }
}

fn browser_wanted() -> bool {
    std::env::var("REGISTRY_TEST_BROWSER").is_ok_and(|v| v == "1")
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_walkthrough() {
    if !browser_wanted() {
        eprintln!(
            "browser_walkthrough skipped: set REGISTRY_TEST_BROWSER=1 (needs chromium and chromium-driver)"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let (server, base) = ServerProcess::start(dir.path(), &[]);
    let seeded = seed(&base).await;
    let (_driver, client) = browser().await;
    let result = walkthrough(&client, &base, &seeded).await;
    let _ = client.close().await;
    if let Err(panic) = result {
        eprintln!("registry-server printed:\n{}", server.printed());
        std::panic::resume_unwind(panic);
    }
}

/// The steps, with panics caught so the browser session is closed.
async fn walkthrough(
    client: &Client,
    base: &str,
    seeded: &Seeded,
) -> Result<(), Box<dyn std::any::Any + Send>> {
    use futures::FutureExt as _;
    std::panic::AssertUnwindSafe(steps(client, base, seeded))
        .catch_unwind()
        .await
}

async fn steps(client: &Client, base: &str, seeded: &Seeded) {
    let http = plain_client();

    // Anonymous: the public namespace only.
    client
        .goto(&format!("{base}/ui/"))
        .await
        .expect("goto /ui/");
    let text = wait_for_text(client, "web-app").await;
    assert!(text.contains("public"), "{text}");
    assert!(text.contains("tools/builder"), "{text}");
    assert!(!text.contains("private"), "anonymous sees private: {text}");
    assert!(
        !text.contains("billing-api"),
        "anonymous sees private: {text}"
    );
    assert!(text.contains("Anonymous"), "{text}");
    screenshots(client, "1-repositories-anonymous").await;
    // Keyboard: the first Tab reaches the skip link.
    client
        .find(Locator::Css("body"))
        .await
        .expect("body")
        .send_keys("\u{E004}")
        .await
        .expect("Tab");
    let focused = script(client, "return document.activeElement.className;").await;
    assert_eq!(focused, json!("skip-link"));
    // The filter hides what does not match.
    let filter = client
        .find(Locator::Id("repo-filter"))
        .await
        .expect("filter");
    filter.send_keys("tools").await.expect("typing a filter");
    let shown = script(
        client,
        "return Array.from(document.querySelectorAll('.repo a'))\
         .filter(a => a.offsetParent !== null).map(a => a.textContent);",
    )
    .await;
    assert_eq!(shown, json!(["public/tools/builder"]));

    // A private page asks an anonymous visitor to sign in.
    client
        .goto(&format!("{base}/ui/namespaces/private"))
        .await
        .expect("goto private");
    wait_for_text(client, "Sign in to see this page").await;

    // Login: alice sees the private namespace too.
    client
        .goto(&format!("{base}/ui/"))
        .await
        .expect("goto /ui/");
    wait_for_text(client, "web-app").await;
    client
        .find(Locator::XPath(
            "//header//button[normalize-space()='Sign in']",
        ))
        .await
        .expect("Sign in button")
        .click()
        .await
        .expect("click Sign in");
    let user = eventually("the login form", client, || async {
        client.find(Locator::Id("login-user")).await.ok()
    })
    .await;
    user.send_keys("alice").await.expect("typing user");
    let password = client
        .find(Locator::Id("login-password"))
        .await
        .expect("password field");
    password
        .send_keys("wrong-password")
        .await
        .expect("typing password");
    client
        .find(Locator::Css("form.login button[type=submit]"))
        .await
        .expect("submit")
        .click()
        .await
        .expect("submit");
    wait_for_text(client, "Wrong user name or password").await;
    screenshots(client, "0-login").await;
    password.clear().await.expect("clearing password");
    password
        .send_keys(&format!("{ALICE_PASSWORD}\n"))
        .await
        .expect("typing password");
    let text = wait_for_text(client, "billing-api").await;
    assert!(text.contains("web-app"), "{text}");
    assert!(text.contains("alice"), "{text}");
    let stored = script(
        client,
        "return [localStorage.length, JSON.parse(sessionStorage.getItem('registry-ui.session'))];",
    )
    .await;
    assert_eq!(stored[0], json!(0), "nothing in localStorage");
    let session = &stored[1];
    let token = session["token"]
        .as_str()
        .expect("a token in sessionStorage");
    assert!(session["expires"].is_string(), "{session}");
    assert!(
        !session.to_string().contains(ALICE_PASSWORD),
        "the password is not stored"
    );
    screenshots(client, "2-repositories-alice").await;
    watch_csp(client).await;

    // Namespace → ImageStream → tag history → image, by clicking.
    link(client, "public")
        .await
        .click()
        .await
        .expect("click public");
    let text = wait_for_text(client, "ImageStreams").await;
    assert!(
        text.contains("web-app") && text.contains("tools/builder"),
        "{text}"
    );
    // What the namespace stores, from the Image API's namespace document
    // (labels are upper-cased by the style sheet, which innerText follows).
    let lower = text.to_lowercase();
    assert!(
        lower.contains("usage") && lower.contains("stored") && lower.contains("quota"),
        "{text}"
    );
    screenshots(client, "3-namespace").await;

    link(client, "web-app")
        .await
        .click()
        .await
        .expect("click web-app");
    let text = wait_for_text(client, "v1.1.0").await;
    assert!(text.contains("latest") && text.contains("v1.0.0"), "{text}");
    assert!(
        text.contains(&format!(
            "podman pull {}",
            base.trim_start_matches("http://")
        )),
        "{text}"
    );
    screenshots(client, "4-imagestream").await;
    client
        .find(Locator::Css("button.copy__button"))
        .await
        .expect("the pull command's Copy button")
        .click()
        .await
        .expect("click Copy");
    let toast = eventually("the copy confirmation", client, || async {
        let text = client
            .find(Locator::Id("toast"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        (!text.is_empty()).then_some(text)
    })
    .await;
    assert!(
        toast.starts_with("Copied") || toast.starts_with("Selected"),
        "{toast}"
    );

    link(client, "latest")
        .await
        .click()
        .await
        .expect("click latest");
    let text = wait_for_text(client, "Every move of the tag").await;
    let rows = client
        .find_all(Locator::Css("table.history tbody tr"))
        .await
        .expect("history rows");
    assert_eq!(rows.len(), 3, "latest moved twice: {text}");
    for row in &rows {
        let row = row.text().await.expect("row text");
        assert!(row.contains("admin"), "the actor: {row}");
    }
    assert!(text.contains("Created") && text.contains("Moved"), "{text}");
    screenshots(client, "5-tag-history").await;

    // The oldest move points at v1.0.0: its layers.
    let first = &seeded.first;
    client
        .find(Locator::Css(&format!(
            "table.history tbody tr:last-child a[title='{first}']"
        )))
        .await
        .expect("the first image's link")
        .click()
        .await
        .expect("click the first image");
    let text = wait_for_text(client, "Layers").await;
    let layers = client
        .find_all(Locator::Css("table.layers tbody tr"))
        .await
        .expect("layer rows");
    assert_eq!(layers.len(), 2, "{text}");
    assert!(
        text.contains("2.68 MiB"),
        "human-readable layer size: {text}"
    );
    assert!(
        text.contains("183 KiB"),
        "human-readable layer size: {text}"
    );
    assert!(
        text.contains("org.opencontainers.image.version") && text.contains("1.0.0"),
        "labels: {text}"
    );
    assert!(
        text.contains("COPY ./dist/server /app/server"),
        "build history: {text}"
    );
    assert!(text.contains("linux/amd64"), "{text}");
    assert!(
        text.contains(&format!("public/web-app@{first}")),
        "pull by digest: {text}"
    );
    screenshots(client, "6-image").await;

    assert_no_csp_violations(client, "while clicking through").await;

    // The index `latest` ends on: platforms and referrers. Reached by a
    // deep link, as a bookmark or a reload would.
    client
        .goto(&format!("{base}/ui/images/{}", seeded.index))
        .await
        .expect("goto index");
    let text = wait_for_text(client, "Platforms").await;
    assert!(
        text.contains("linux/amd64") && text.contains("linux/arm64/v8"),
        "{text}"
    );
    let text = wait_for_text(client, "Signature").await;
    assert!(text.contains("SBOM"), "{text}");
    assert!(text.contains(SIGNATURE_TYPE), "{text}");
    assert!(
        text.contains("alice"),
        "still signed in after a reload: {text}"
    );
    screenshots(client, "7-image-index").await;
    watch_csp(client).await;
    // A child of the index, by clicking its platform.
    link(client, "linux/arm64/v8")
        .await
        .click()
        .await
        .expect("click arm64");
    wait_for_text(client, "Build history").await;
    assert_no_csp_violations(client, "on the image pages").await;

    // Logout deletes the token on the server.
    let bearer = |token: &str| {
        http.get(format!("{base}/apis/image/v1/repositories"))
            .bearer_auth(token)
            .send()
    };
    assert_eq!(
        bearer(token).await.expect("with the token").status(),
        StatusCode::OK
    );
    client
        .find(Locator::XPath(
            "//header//button[normalize-space()='Sign out']",
        ))
        .await
        .expect("Sign out")
        .click()
        .await
        .expect("click Sign out");
    eventually("the token to be gone", client, || async {
        (bearer(token).await.expect("after logout").status() == StatusCode::UNAUTHORIZED)
            .then_some(())
    })
    .await;
    let stored = script(client, "return sessionStorage.length;").await;
    assert_eq!(stored, json!(0));
    client
        .goto(&format!("{base}/ui/"))
        .await
        .expect("goto /ui/");
    let text = wait_for_text(client, "web-app").await;
    assert!(!text.contains("billing-api"), "{text}");

    // Anonymous visitors get a public image's referrers too (from /v2/).
    client
        .goto(&format!("{base}/ui/images/{}", seeded.index))
        .await
        .expect("goto index");
    let text = wait_for_text(client, "SBOM").await;
    assert!(
        text.contains("Signature") && text.contains("Anonymous"),
        "{text}"
    );
}
