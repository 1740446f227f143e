//! End-to-end tests of the commands against a small axum stand-in for the
//! registry (plain HTTP on 127.0.0.1): `/v2/` answers 200 for one Basic
//! credential and 401 otherwise, and a few admin endpoints answer as
//! docs/admin-api.md says.

use std::collections::HashMap;
use std::path::Path;

use axum::extract::{Path as UrlPath, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use clap::Parser;
use serde_json::{json, Value};

use crate::cli::Cli;
use crate::{run, Env, Io};

const GOOD: &str = "admin:s3cret";

fn envelope(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"errors": [{"code": code, "message": message}]});
    (status, Json(body)).into_response()
}

/// `answer()` when the request carries [`GOOD`], else a 401 envelope.
fn guarded(headers: &HeaderMap, answer: impl FnOnce() -> Response) -> Response {
    let expected = format!("Basic {}", STANDARD.encode(GOOD));
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        Some(v) if v == expected => answer(),
        _ => envelope(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "authentication required",
        ),
    }
}

type Params = Query<HashMap<String, String>>;

fn stub() -> Router {
    Router::new()
        .route(
            "/v2/",
            get(|h: HeaderMap| async move { guarded(&h, || Json(json!({})).into_response()) }),
        )
        .route(
            "/apis/admin/v1/whoami",
            get(|h: HeaderMap| async move {
                guarded(&h, || {
                    let me = json!({
                        "subject": "user:admin",
                        "groups": ["system:authenticated", "ldap:ops"],
                        "provider": "local"
                    });
                    Json(me).into_response()
                })
            }),
        )
        .route(
            "/apis/admin/v1/tokens",
            post(|h: HeaderMap, Json(body): Json<Value>| async move {
                guarded(&h, || {
                    let token = format!("rgt_{}_{}", body["name"], body["expires_in_seconds"]);
                    let answer = json!({"id": "7b0e5d4e-8a51-4c2e-9a38-4a5b2c1d0e9f",
                        "name": body["name"], "owner": "user:admin",
                        "created": "2026-01-01T00:00:00Z", "expires": null, "last_used": null,
                        "token": token});
                    (StatusCode::CREATED, Json(answer)).into_response()
                })
            }),
        )
        .route(
            "/apis/admin/v1/namespaces/{ns}",
            delete(|h: HeaderMap, UrlPath(ns): UrlPath<String>| async move {
                guarded(&h, || {
                    let message = format!("namespace {ns} not found");
                    envelope(StatusCode::NOT_FOUND, "NAME_UNKNOWN", &message)
                })
            }),
        )
        .route(
            "/apis/admin/v1/namespaces",
            get(|h: HeaderMap| async move {
                guarded(&h, || Json(json!({"namespaces": []})).into_response())
            }),
        )
        .route(
            "/apis/admin/v1/namespaces/{ns}/rolebindings",
            delete(
                |h: HeaderMap, UrlPath(ns): UrlPath<String>, Query(q): Params| async move {
                    guarded(&h, || {
                        let arg = |k: &str| q.get(k).map(String::as_str);
                        if ns == "team"
                            && arg("role") == Some("registry-viewer")
                            && arg("subject") == Some("user:alice")
                        {
                            StatusCode::NO_CONTENT.into_response()
                        } else {
                            envelope(StatusCode::BAD_REQUEST, "NAME_INVALID", "bad query")
                        }
                    })
                },
            )
            .get(|h: HeaderMap| async move {
                guarded(&h, || {
                    let binding =
                        json!({"namespace": "team", "role": "registry-viewer", "subject": "user:alice"});
                    Json(json!({ "rolebindings": [binding] })).into_response()
                })
            }),
        )
}

/// Starts the stub; its `http://127.0.0.1:PORT`.
async fn start() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, stub()).await.unwrap() });
    format!("http://{addr}")
}

/// Output of one invocation.
struct Outcome {
    result: Result<(), String>,
    out: String,
    err: String,
}

async fn exec(args: &[&str], stdin: &str) -> Outcome {
    let mut all = vec!["registryctl"];
    all.extend_from_slice(args);
    let cli = Cli::try_parse_from(all).expect("valid command line");
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let mut input = stdin.as_bytes();
    let mut io = Io {
        stdin: &mut input,
        out: &mut out,
        err: &mut err,
        env: Env::default(),
    };
    let result = run(cli, &mut io).await.map_err(|e| e.to_string());
    Outcome {
        result,
        out: String::from_utf8(out).unwrap(),
        err: String::from_utf8(err).unwrap(),
    }
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn login_admin_commands_and_logout_against_stub() {
    let url = start().await;
    let key = url.trim_start_matches("http://").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("docker/config.json");
    let file_s = file.to_str().unwrap();
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(
        &file,
        r#"{"auths":{"quay.io":{"auth":"eDp5"}},"credsStore":"desktop","credHelpers":{"gcr.io":"gcloud"}}"#,
    )
    .unwrap();

    // Plain HTTP without --insecure is refused before any request.
    let o = exec(
        &[
            "login",
            &url,
            "-u",
            "admin",
            "--password-stdin",
            "--to",
            file_s,
        ],
        "s3cret\n",
    )
    .await;
    assert!(o.result.unwrap_err().contains("pass --insecure"));

    // A wrong password: 401, nothing written.
    let o = exec(
        &[
            "login",
            &url,
            "-u",
            "admin",
            "--password-stdin",
            "--to",
            file_s,
            "--insecure",
        ],
        "wrong\n",
    )
    .await;
    assert_eq!(
        o.result.unwrap_err(),
        "login failed: wrong username or password"
    );
    assert!(o.err.contains("warning: --insecure: "), "{}", o.err);
    assert!(read_json(&file)["auths"].get(&key).is_none());

    // The right password: stored under host:port, the rest kept.
    let o = exec(
        &[
            "login",
            &url,
            "-u",
            "admin",
            "--password-stdin",
            "--to",
            file_s,
            "--insecure",
        ],
        "s3cret\n",
    )
    .await;
    o.result.unwrap();
    assert_eq!(o.out, "Login Succeeded\n");
    // docker would ask the credsStore and not see them: said.
    let warning = format!("names the credential helper \"desktop\" for {key}: docker asks");
    assert!(o.err.contains(&warning), "{}", o.err);
    let doc = read_json(&file);
    assert_eq!(doc["auths"][&key], json!({"auth": STANDARD.encode(GOOD)}));
    assert_eq!(doc["auths"]["quay.io"], json!({"auth": "eDp5"}));
    assert_eq!(doc["credsStore"], "desktop");
    assert_eq!(doc["credHelpers"], json!({"gcr.io": "gcloud"}));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let admin = |rest: &[&str]| {
        let mut v = vec!["--server", url.as_str(), "--config", file_s, "--insecure"];
        v.extend_from_slice(rest);
        v.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run_admin = |rest: &[&str]| {
        let args = admin(rest);
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            exec(&refs, "").await
        }
    };

    let o = run_admin(&["whoami"]).await;
    o.result.unwrap();
    assert_eq!(
        o.out,
        "subject:  user:admin\nprovider: local\ngroups:   system:authenticated, ldap:ops\n"
    );

    let o = run_admin(&["token", "create", "--name", "ci", "--expires", "12h"]).await;
    o.result.unwrap();
    assert_eq!(o.out, "rgt_\"ci\"_43200\n");

    // None is said on stderr, as for every other list.
    let o = run_admin(&["namespace", "list"]).await;
    o.result.unwrap();
    assert_eq!(o.out, "");
    assert!(o.err.ends_with("\nno namespaces\n"), "{}", o.err);

    let o = run_admin(&["namespace", "delete", "missing"]).await;
    assert_eq!(
        o.result.unwrap_err(),
        "namespace missing not found (NAME_UNKNOWN) [HTTP 404]"
    );

    let o = run_admin(&[
        "rolebinding",
        "remove",
        "team",
        "registry-viewer",
        "user:alice",
    ])
    .await;
    o.result.unwrap();
    let o = run_admin(&["rolebinding", "list", "team"]).await;
    o.result.unwrap();
    assert_eq!(
        o.out,
        "ROLE              SUBJECT\nregistry-viewer   user:alice\n"
    );

    // Logout removes only this server's entry.
    let o = exec(&["logout", &url, "--config", file_s], "").await;
    o.result.unwrap();
    let doc = read_json(&file);
    assert!(doc["auths"].get(&key).is_none());
    assert_eq!(doc["auths"]["quay.io"], json!({"auth": "eDp5"}));
    assert_eq!(doc["credsStore"], "desktop");

    // Without stored credentials the admin commands say how to log in.
    let o = run_admin(&["whoami"]).await;
    let e = o.result.unwrap_err();
    let login = format!("`registryctl login http://{key} --insecure` first");
    assert!(e.contains(&login), "{e}");
}

#[tokio::test]
async fn rejected_stored_credentials_suggest_login() {
    let url = start().await;
    let key = url.trim_start_matches("http://").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.json");
    let doc = json!({"auths": {&key: {"auth": STANDARD.encode("admin:stale")}}});
    std::fs::write(&file, doc.to_string()).unwrap();
    let o = exec(
        &[
            "--server",
            &url,
            "--config",
            file.to_str().unwrap(),
            "--insecure",
            "whoami",
        ],
        "",
    )
    .await;
    let e = o.result.unwrap_err();
    assert!(
        e.starts_with("authentication required (UNAUTHORIZED) [HTTP 401]"),
        "{e}"
    );
    let login = format!("run `registryctl login http://{key} --insecure` again");
    assert!(e.contains(&login), "{e}");
}

#[tokio::test]
async fn login_again_as_the_hint_says_reaches_the_server_as_its_context_does() {
    let url = start().await;
    let key = url.trim_start_matches("http://").to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.json");
    let file_s = file.to_str().unwrap();
    let login = |server: String, insecure: bool| async move {
        let mut args = vec!["--config", file_s, "login"];
        args.extend([server.as_str(), "-u", "admin", "--password-stdin"]);
        if insecure {
            args.push("--insecure");
        }
        exec(&args, "s3cret\n").await
    };
    login(url.clone(), true).await.result.expect("first login");
    exec(&["--config", file_s, "logout", &key], "")
        .await
        .result
        .expect("logout");
    let o = exec(&["--config", file_s, "whoami"], "").await;
    let e = o.result.unwrap_err();
    let hint = format!("run `registryctl login http://{key} --insecure` first");
    assert!(e.contains(&hint), "{e}");
    // Without scheme or --insecure: the context's plain HTTP, not HTTPS.
    let o = login(key.clone(), false).await;
    assert!(o.result.is_ok(), "{:?} {}", o.result, o.err);
    assert!(o.out.contains("Login Succeeded"), "{}", o.out);
    let o = exec(&["--config", file_s, "whoami"], "").await;
    assert!(o.result.is_ok(), "{:?}", o.result);
    let contexts = read_json(&dir.path().join("registryctl.json"));
    assert_eq!(contexts["contexts"][&key]["insecure"], true, "{contexts}");
}

#[tokio::test]
async fn a_web_server_that_is_no_registry_is_named_as_such() {
    let page = "<!DOCTYPE HTML>\n<html>\n<body>\n<h1>Error response</h1>\n<p>Error code: 404</p>\n</body>\n</html>\n";
    let web = Router::new().fallback(move || async move {
        (StatusCode::NOT_FOUND, [("content-type", "text/html")], page)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, web).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.json");
    let url = format!("http://{addr}");
    let args = ["login", &url, "-u", "a", "--password-stdin", "--insecure"];
    let args = [&args[..], &["--to", file.to_str().unwrap()]].concat();
    let e = exec(&args, "pw\n").await.result.unwrap_err();
    assert!(
        e.starts_with(&format!(
            "login failed: {url}/v2/ is not an OCI registry's API (server answered HTTP 404 Not Found: <!DOCTYPE HTML> <html>"
        )),
        "{e}"
    );
    assert!(e.ends_with("</html>): check the URL and port"), "{e}");
    assert!(!e.contains('\n'), "{e}");
    assert!(!file.exists());
}

#[tokio::test]
async fn unreachable_server_is_a_clear_error() {
    // A port nothing listens on (bound then released).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.json");
    let o = exec(
        &[
            "login",
            &format!("http://{addr}"),
            "-u",
            "a",
            "-p",
            "b",
            "--to",
            file.to_str().unwrap(),
            "--insecure",
        ],
        "",
    )
    .await;
    let e = o.result.unwrap_err();
    assert!(e.starts_with("login failed: cannot reach http://"), "{e}");
    assert!(o.err.contains("--password-stdin"), "{}", o.err);
    assert!(!file.exists());
}
