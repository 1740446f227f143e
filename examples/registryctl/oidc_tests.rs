//! The device flow against a scripted stand-in for an issuer's device
//! authorization and token endpoints (plain HTTP on 127.0.0.1).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use clap::Parser;
use serde_json::{json, Value};

use super::*;
use crate::cli::{Cli, Command};
use crate::Env;

/// What the stand-in answers, and what it saw.
#[derive(Default)]
struct Script {
    /// The device authorization answer (status, body).
    device: Option<(StatusCode, Value)>,
    /// Token endpoint answers, in order; the last one repeats.
    token: VecDeque<(StatusCode, Value)>,
    /// The forms received at the device endpoint.
    device_forms: Vec<HashMap<String, String>>,
    /// When each token poll arrived, and its form.
    polls: Vec<(Instant, HashMap<String, String>)>,
}

type Shared = Arc<Mutex<Script>>;

fn form(body: &str) -> HashMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

async fn device(State(s): State<Shared>, body: String) -> Response {
    let form = form(&body);
    let mut s = s.lock().unwrap();
    s.device_forms.push(form);
    let (status, body) = s.device.clone().unwrap_or((
        StatusCode::OK,
        json!({"device_code": "dc-1", "user_code": "WXYZ-1234",
               "verification_uri": "https://issuer.test/device",
               "verification_uri_complete": "https://issuer.test/device?user_code=WXYZ-1234",
               "expires_in": 60, "interval": 0}),
    ));
    (status, Json(body)).into_response()
}

async fn token(State(s): State<Shared>, body: String) -> Response {
    let form = form(&body);
    let mut s = s.lock().unwrap();
    s.polls.push((Instant::now(), form));
    let answer = if s.token.len() > 1 {
        s.token.pop_front()
    } else {
        s.token.front().cloned()
    };
    let (status, body) = answer.expect("a scripted token answer");
    (status, Json(body)).into_response()
}

fn pending() -> (StatusCode, Value) {
    (
        StatusCode::BAD_REQUEST,
        json!({"error": "authorization_pending"}),
    )
}

fn error(code: &str) -> (StatusCode, Value) {
    (
        StatusCode::BAD_REQUEST,
        json!({"error": code, "error_description": format!("{code} happened")}),
    )
}

fn granted() -> (StatusCode, Value) {
    (
        StatusCode::OK,
        json!({"access_token": "at", "token_type": "Bearer", "expires_in": 3600,
               "id_token": "header.payload.signature"}),
    )
}

async fn stand_in(script: Script) -> (Issuer, Shared) {
    let shared = Arc::new(Mutex::new(script));
    let app = Router::new()
        .route("/device", post(device))
        .route("/token", post(token))
        .with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let _ = rustls::crypto::ring::default_provider().install_default();
    let http = reqwest::Client::new();
    let issuer = Issuer::at(http, &format!("{base}/device"), &format!("{base}/token"));
    (issuer, shared)
}

fn settings(scopes: &[&str]) -> OidcContext {
    OidcContext {
        issuer: "https://issuer.test".into(),
        client_id: "registry".into(),
        ca_file: None,
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
    }
}

const FAST: Polling = Polling {
    default_interval: Duration::from_millis(10),
    slow_down_step: Duration::from_millis(300),
    max_wait: Duration::from_secs(10),
};

async fn run_flow(issuer: &Issuer, scopes: &[&str]) -> (Result<String, CliError>, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut io = Io {
        stdin: &mut &b""[..],
        out: &mut out,
        err: &mut err,
        env: Env::default(),
    };
    let result = device_flow(issuer, &settings(scopes), FAST, &mut io).await;
    (result, String::from_utf8(err).unwrap())
}

#[tokio::test]
async fn polls_while_pending_and_returns_the_id_token() {
    let script = Script {
        token: [pending(), pending(), granted()].into(),
        ..Script::default()
    };
    let (issuer, seen) = stand_in(script).await;
    let (result, err) = run_flow(&issuer, &["groups", "openid", "email"]).await;
    assert_eq!(result.unwrap(), "header.payload.signature");
    assert!(
        err.contains("open https://issuer.test/device?user_code=WXYZ-1234"),
        "{err}"
    );
    assert!(err.contains("enter the code WXYZ-1234"), "{err}");
    let seen = seen.lock().unwrap();
    let device_form = &seen.device_forms[0];
    assert_eq!(device_form["client_id"], "registry");
    assert_eq!(device_form["scope"], "openid groups email");
    assert_eq!(seen.polls.len(), 3);
    let form = &seen.polls[0].1;
    assert_eq!(form["grant_type"], DEVICE_GRANT);
    assert_eq!(form["device_code"], "dc-1");
    assert_eq!(form["client_id"], "registry");
}

#[tokio::test]
async fn slow_down_lengthens_the_interval() {
    let script = Script {
        token: [error("slow_down"), pending(), granted()].into(),
        ..Script::default()
    };
    let (issuer, seen) = stand_in(script).await;
    assert!(run_flow(&issuer, &[]).await.0.is_ok());
    let seen = seen.lock().unwrap();
    let gaps: Vec<Duration> = seen.polls.windows(2).map(|w| w[1].0 - w[0].0).collect();
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(300)),
        "{gaps:?}"
    );
    assert_eq!(seen.device_forms[0]["scope"], "openid");
}

#[tokio::test]
async fn denied_expired_and_tokenless_answers_end_the_login() {
    for (answer, expected) in [
        (
            error("access_denied"),
            "OIDC login refused: access_denied: access_denied happened",
        ),
        (
            error("expired_token"),
            "OIDC login expired before the sign-in was completed",
        ),
        (error("invalid_grant"), "OIDC login refused: invalid_grant"),
        (
            (StatusCode::OK, json!({"access_token": "at"})),
            "the OIDC issuer returned no ID token",
        ),
        (
            (StatusCode::BAD_GATEWAY, json!("upstream")),
            "OIDC login refused: HTTP 502",
        ),
    ] {
        let script = Script {
            token: [pending(), answer].into(),
            ..Script::default()
        };
        let (issuer, _) = stand_in(script).await;
        let message = run_flow(&issuer, &[]).await.0.unwrap_err().to_string();
        assert!(message.starts_with(expected), "{message}");
    }
}

#[tokio::test]
async fn a_code_that_expires_before_the_next_poll_ends_the_login() {
    let script = Script {
        device: Some((
            StatusCode::OK,
            json!({"device_code": "d", "user_code": "U", "verification_uri": "https://i/d",
                   "expires_in": 1, "interval": 2}),
        )),
        token: [pending()].into(),
        ..Script::default()
    };
    let (issuer, seen) = stand_in(script).await;
    let (result, err) = run_flow(&issuer, &[]).await;
    assert!(matches!(result, Err(CliError::OidcExpired)));
    assert!(err.contains("open https://i/d"), "{err}");
    assert!(seen.lock().unwrap().polls.is_empty());
}

#[tokio::test]
async fn a_refused_device_request_is_reported() {
    let script = Script {
        device: Some(error("invalid_client")),
        ..Script::default()
    };
    let (issuer, _) = stand_in(script).await;
    let message = run_flow(&issuer, &[]).await.0.unwrap_err().to_string();
    assert_eq!(
        message,
        "OIDC login refused: invalid_client: invalid_client happened"
    );
    let script = Script {
        device: Some((StatusCode::OK, json!({"user_code": "no device code"}))),
        ..Script::default()
    };
    let (issuer, _) = stand_in(script).await;
    let message = run_flow(&issuer, &[]).await.0.unwrap_err().to_string();
    assert!(message.contains("invalid document"), "{message}");
}

#[test]
fn discovery_must_offer_the_device_flow_over_https() {
    let metadata = |device: Option<&str>, token: Option<&str>| -> ProviderMetadata {
        serde_json::from_value(json!({
            "issuer": "https://i", "jwks_uri": "https://i/jwks",
            "device_authorization_endpoint": device, "token_endpoint": token,
        }))
        .unwrap()
    };
    let http = reqwest::Client::new();
    let ok = Issuer::from_metadata(
        http.clone(),
        &metadata(Some("https://i/d"), Some("https://i/t")),
    );
    assert!(ok.is_ok());
    let none = Issuer::from_metadata(http.clone(), &metadata(None, Some("https://i/t")));
    assert!(matches!(none, Err(CliError::OidcNoDeviceFlow(_))));
    let plain = Issuer::from_metadata(http, &metadata(Some("http://i/d"), Some("https://i/t")));
    assert!(plain.unwrap_err().to_string().contains("is not https"));
}

fn login_args(args: &[&str]) -> crate::cli::Login {
    let mut all = vec!["registryctl", "login", "registry.test"];
    all.extend_from_slice(args);
    match Cli::try_parse_from(all).unwrap().command {
        Command::Login(login) => login,
        other => panic!("{other:?}"),
    }
}

#[test]
fn settings_come_from_flags_then_the_context() {
    let args = login_args(&["--oidc"]);
    assert!(matches!(
        OidcContext::resolve(&args.oidc, None),
        Err(CliError::OidcSetting("--oidc-issuer-url"))
    ));
    let args = login_args(&["--oidc", "--oidc-issuer-url", "https://i"]);
    assert!(matches!(
        OidcContext::resolve(&args.oidc, None),
        Err(CliError::OidcSetting("--oidc-client-id"))
    ));
    let args = login_args(&[
        "--oidc",
        "--oidc-issuer-url",
        "https://i",
        "--oidc-client-id",
        "c",
        "--oidc-scope",
        "groups,email",
        "--oidc-ca-file",
        "ca.pem",
    ]);
    let resolved = OidcContext::resolve(&args.oidc, None).unwrap();
    assert_eq!(resolved.scopes, ["groups", "email"]);
    assert!(resolved.ca_file.unwrap().is_absolute());
    let context = Context {
        server: "https://registry.test/".into(),
        insecure: false,
        ca_file: None,
        oidc: Some(settings(&["groups"])),
    };
    let args = login_args(&["--oidc"]);
    assert_eq!(
        OidcContext::resolve(&args.oidc, Some(&context)).unwrap(),
        settings(&["groups"])
    );
    let args = login_args(&["--oidc", "--oidc-client-id", "other"]);
    let resolved = OidcContext::resolve(&args.oidc, Some(&context)).unwrap();
    assert_eq!(
        (resolved.issuer.as_str(), resolved.client_id.as_str()),
        ("https://issuer.test", "other")
    );
}

#[test]
fn login_flags_exclude_each_other() {
    let parse = |args: &[&str]| {
        let mut all = vec!["registryctl", "login", "registry.test"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).map(|_| ()).map_err(|e| e.kind())
    };
    use clap::error::ErrorKind;
    assert!(parse(&["--oidc"]).is_ok());
    assert!(parse(&["-u", "a", "--password-stdin"]).is_ok());
    assert_eq!(
        parse(&["--oidc", "-u", "a"]),
        Err(ErrorKind::ArgumentConflict)
    );
    assert_eq!(
        parse(&["--oidc", "--password-stdin"]),
        Err(ErrorKind::ArgumentConflict)
    );
    assert_eq!(
        parse(&["--oidc-issuer-url", "https://i", "-u", "a", "-p", "x"]),
        Err(ErrorKind::ArgumentConflict)
    );
    assert_eq!(
        parse(&["--oidc-client-id", "c"]),
        Err(ErrorKind::MissingRequiredArgument)
    );
    assert_eq!(
        parse(&["--password-stdin"]),
        Err(ErrorKind::MissingRequiredArgument)
    );
}

#[test]
fn lifetime_reads_exp() {
    use base64::Engine as _;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"exp": now + 600}).to_string());
    let left = lifetime(&format!("h.{payload}.s")).unwrap();
    assert!(left > Duration::from_secs(590) && left <= Duration::from_secs(600));
    assert_eq!(lifetime("not a token"), None);
}
