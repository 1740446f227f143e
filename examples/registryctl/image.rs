//! The Image API commands (`/apis/image/v1`, see docs/image-api.md):
//! `imagestreams list|show`, `tag history`, `image show` and
//! `repositories`. Readable text by default, the server's JSON with `--json`.
//!
//! They use the credentials stored for `--server` when there are some and
//! call anonymously otherwise, so public namespaces need no login.

use clap::Subcommand;
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value};

use crate::admin::{print_json, table};
use crate::authfile;
use crate::cli::Global;
use crate::client::{Api, SendError};
use crate::parse::parse_namespace;
use crate::session::{auth_file_path, connect};
use crate::target::Server;
use crate::{say, Io};

/// `registryctl imagestreams ...`.
#[derive(Debug, Subcommand)]
pub enum ImageStreamsCmd {
    /// List the ImageStreams of namespace NS with their tags.
    List {
        /// Namespace.
        #[arg(value_parser = parse_namespace)]
        namespace: String,
    },
    /// Show ImageStream NAME of namespace NS and where its tags point.
    Show {
        /// Namespace.
        #[arg(value_parser = parse_namespace)]
        namespace: String,
        /// ImageStream name (the repository without its namespace; may hold `/`).
        name: String,
    },
}

/// `registryctl tag ...`.
#[derive(Debug, Subcommand)]
pub enum TagCmd {
    /// Show where NAME:TAG of namespace NS points and every move, newest first.
    History {
        /// Namespace.
        #[arg(value_parser = parse_namespace)]
        namespace: String,
        /// ImageStream and tag, e.g. app:v1.
        #[arg(value_parser = parse_name_tag, value_name = "NAME:TAG")]
        name_tag: String,
    },
}

/// `registryctl image ...`.
#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    /// Show an image's metadata: repositories, layers or platforms, config.
    Show {
        /// Manifest digest, e.g. sha256:0123….
        #[arg(value_parser = parse_digest)]
        digest: String,
    },
}

/// Checks `NAME:TAG` (both non-empty).
pub fn parse_name_tag(s: &str) -> Result<String, String> {
    match s.rsplit_once(':') {
        Some((name, tag)) if !name.is_empty() && !tag.is_empty() && !tag.contains('/') => {
            Ok(s.to_owned())
        }
        _ => Err(format!("expected NAME:TAG, e.g. app:v1, got {s:?}")),
    }
}

/// Validates a digest.
pub fn parse_digest(s: &str) -> Result<String, String> {
    s.parse::<registry::core::Digest>()
        .map(|d| d.to_string())
        .map_err(|e| format!("invalid digest {s:?}: {e}"))
}

/// A client of `/apis/image/v1` for `--server`.
struct ImageApi {
    api: Api,
    server: Server,
    authenticated: bool,
}

impl ImageApi {
    fn connect(global: &Global, io: &mut Io<'_>) -> Result<Self, String> {
        let raw = global.server.as_deref().ok_or(
            "no server given: pass --server URL or set REGISTRY_SERVER \
             (e.g. --server localhost:5000)",
        )?;
        let server = Server::parse(raw)?;
        let path = auth_file_path(global, &io.env)?;
        let credentials = authfile::credentials(&authfile::load(&path)?, server.key())?;
        let authenticated = credentials.is_some();
        let api = connect(global, &server, credentials, io.err)?;
        Ok(ImageApi {
            api,
            server,
            authenticated,
        })
    }

    /// `GET /apis/image/v1/<segments>?<query>`.
    async fn get(&self, segments: &[&str], query: &[(&str, &str)]) -> Result<Value, String> {
        let mut all = vec!["apis", "image", "v1"];
        all.extend_from_slice(segments);
        let url = self.api.url(&all, query);
        match self.api.send(Method::GET, url, None).await {
            Ok(body) => Ok(body),
            Err(SendError::Refused { status, message }) if status == StatusCode::UNAUTHORIZED => {
                let what = if self.authenticated {
                    "the credentials stored for"
                } else {
                    "no credentials are stored for"
                };
                Err(format!(
                    "{message}: {what} {}; run `{}`",
                    self.server.key(),
                    self.server.login_command()
                ))
            }
            Err(SendError::Refused { message, .. } | SendError::Failed(message)) => Err(message),
        }
    }

    /// Every page of a list (following `metadata.continue`), merged into
    /// the first page's document.
    async fn get_all(&self, segments: &[&str]) -> Result<Value, String> {
        self.get_pages(segments, "/metadata/continue", "/items")
            .await
    }

    /// Every page of a paged document: while the string at the JSON
    /// pointer `next` is set, fetches `?last=<it>` and appends the array at
    /// `array` to the first page's (the Image API pages lists, an
    /// ImageStream's tags and a tag's history this way).
    async fn get_pages(&self, segments: &[&str], next: &str, array: &str) -> Result<Value, String> {
        let mut doc = self.get(segments, &[]).await?;
        while let Some(last) = doc.pointer(next).and_then(Value::as_str).map(str::to_owned) {
            let page = self.get(segments, &[("last", &last)]).await?;
            let more = page
                .pointer(array)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if more.is_empty() {
                break;
            }
            if let Some(items) = doc.pointer_mut(array).and_then(Value::as_array_mut) {
                items.extend(more);
            }
            if let Some(cursor) = doc.pointer_mut(next) {
                *cursor = page.pointer(next).cloned().unwrap_or(Value::Null);
            }
        }
        Ok(doc)
    }
}

/// `registryctl imagestreams ...`.
pub async fn imagestreams(
    global: &Global,
    cmd: ImageStreamsCmd,
    io: &mut Io<'_>,
) -> Result<(), String> {
    let client = ImageApi::connect(global, io)?;
    let answer = match &cmd {
        ImageStreamsCmd::List { namespace } => {
            client
                .get_all(&["namespaces", namespace, "imagestreams"])
                .await?
        }
        ImageStreamsCmd::Show { namespace, name } => {
            let mut segments = vec!["namespaces", namespace, "imagestreams"];
            segments.extend(name.split('/').filter(|s| !s.is_empty()));
            client
                .get_pages(&segments, "/status/tagsContinue", "/status/tags")
                .await?
        }
    };
    if global.json {
        return print_json(io, &answer);
    }
    let text = match cmd {
        ImageStreamsCmd::List { namespace } => {
            let items = items(&answer)?;
            if items.is_empty() {
                return say!(io.err, "no ImageStreams in namespace {namespace}");
            }
            render_stream_list(items)
        }
        ImageStreamsCmd::Show { .. } => render_stream(&answer),
    };
    say!(io.out, "{text}")
}

/// `registryctl tag ...`.
pub async fn tag(global: &Global, cmd: TagCmd, io: &mut Io<'_>) -> Result<(), String> {
    let TagCmd::History {
        namespace,
        name_tag,
    } = cmd;
    let client = ImageApi::connect(global, io)?;
    let mut segments = vec!["namespaces", &namespace, "imagestreamtags"];
    segments.extend(name_tag.split('/').filter(|s| !s.is_empty()));
    let mut answer = client
        .get_pages(&segments, "/historyContinue", "/history")
        .await?;
    // The first page was asked for without a cursor; the merged history
    // reaches the first move, so its time is when the tag was created.
    if answer["metadata"]["creationTimestamp"].is_null() {
        if let Some(first) = answer["history"]
            .as_array()
            .and_then(|h| h.last())
            .map(|e| e["created"].clone())
        {
            answer["metadata"]["creationTimestamp"] = first;
        }
    }
    if global.json {
        return print_json(io, &answer);
    }
    say!(io.out, "{}", render_tag(&answer))
}

/// `registryctl image ...`.
pub async fn image(global: &Global, cmd: ImageCmd, io: &mut Io<'_>) -> Result<(), String> {
    let ImageCmd::Show { digest } = cmd;
    let client = ImageApi::connect(global, io)?;
    let answer = client.get(&["images", &digest], &[]).await?;
    if global.json {
        return print_json(io, &answer);
    }
    say!(io.out, "{}", render_image(&answer))
}

/// `registryctl repositories`.
pub async fn repositories(global: &Global, io: &mut Io<'_>) -> Result<(), String> {
    let client = ImageApi::connect(global, io)?;
    let answer = client.get_all(&["repositories"]).await?;
    if global.json {
        return print_json(io, &answer);
    }
    let items = items(&answer)?;
    if items.is_empty() {
        return say!(io.err, "no repositories you may pull");
    }
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|r| vec![text(&r["name"]), text(&r["created"])])
        .collect();
    say!(io.out, "{}", table(&["NAME", "CREATED"], &rows))
}

fn items(answer: &Value) -> Result<&Vec<Value>, String> {
    answer["items"]
        .as_array()
        .ok_or_else(|| "the server's answer has no \"items\" list".to_owned())
}

/// A JSON value as text: strings bare, `null`/missing as `-`.
fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `Label:  value` lines, aligned.
fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    pairs
        .iter()
        .map(|(k, v)| format!("{:<width$} {v}", format!("{k}:")))
        .collect::<Vec<_>>()
        .join("\n")
}

fn render_stream_list(items: &[Value]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|s| {
            let tags = s["status"]["tags"].as_array().cloned().unwrap_or_default();
            let mut names: Vec<String> = tags.iter().map(|t| text(&t["tag"])).collect();
            // A listed stream shows its first tags only.
            let truncated = !s["status"]["tagsContinue"].is_null();
            if names.len() > 4 || truncated {
                let more = names.len().saturating_sub(3);
                names.truncate(3);
                names.push(if truncated {
                    format!("+ {more}+ more")
                } else {
                    format!("+ {more} more")
                });
            }
            let updated = tags
                .iter()
                .filter_map(|t| t["items"][0]["created"].as_str())
                .max()
                .unwrap_or("-");
            vec![
                text(&s["metadata"]["name"]),
                text(&s["status"]["dockerImageRepository"]),
                if names.is_empty() {
                    "-".to_owned()
                } else {
                    names.join(",")
                },
                updated.to_owned(),
            ]
        })
        .collect();
    table(&["NAME", "IMAGE REPOSITORY", "TAGS", "UPDATED"], &rows)
}

fn render_stream(s: &Value) -> String {
    let head = fields(&[
        ("Name", text(&s["metadata"]["name"])),
        ("Namespace", text(&s["metadata"]["namespace"])),
        ("Created", text(&s["metadata"]["creationTimestamp"])),
        (
            "Image Repository",
            text(&s["status"]["dockerImageRepository"]),
        ),
    ]);
    let tags = s["status"]["tags"].as_array().cloned().unwrap_or_default();
    if tags.is_empty() {
        return format!("{head}\n\nno tags");
    }
    let rows: Vec<Vec<String>> = tags
        .iter()
        .map(|t| {
            let item = &t["items"][0];
            vec![
                text(&t["tag"]),
                text(&item["image"]),
                text(&item["created"]),
            ]
        })
        .collect();
    format!("{head}\n\n{}", table(&["TAG", "IMAGE", "UPDATED"], &rows))
}

fn render_tag(t: &Value) -> String {
    let current = match &t["image"] {
        Value::Null => "(deleted)".to_owned(),
        v => text(v),
    };
    let head = fields(&[
        ("Tag", text(&t["metadata"]["name"])),
        ("Repository", text(&t["repository"])),
        ("Image", current),
        ("Updated", text(&t["updated"])),
    ]);
    let rows: Vec<Vec<String>> = t["history"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|e| {
            let image = match &e["image"] {
                Value::Null => "(deleted)".to_owned(),
                v => text(v),
            };
            vec![text(&e["created"]), image, text(&e["actor"])]
        })
        .collect();
    format!("{head}\n\n{}", table(&["WHEN", "IMAGE", "ACTOR"], &rows))
}

fn render_image(i: &Value) -> String {
    let repositories: Vec<String> = i["repositories"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let tags: Vec<String> = r["tags"]
                .as_array()
                .map(Vec::as_slice)
                .unwrap_or_default()
                .iter()
                .map(text)
                .collect();
            if tags.is_empty() {
                text(&r["name"])
            } else {
                format!("{} ({})", text(&r["name"]), tags.join(", "))
            }
        })
        .collect();
    let mut pairs = vec![
        ("Digest", text(&i["digest"])),
        ("Media Type", text(&i["mediaType"])),
        ("Size", text(&i["size"])),
        ("Pushed", text(&i["metadata"]["creationTimestamp"])),
        ("Repositories", repositories.join(", ")),
    ];
    if let Some(a) = i["artifactType"].as_str() {
        pairs.push(("Artifact Type", a.to_owned()));
    }
    let config = &i["imageConfig"];
    if config.is_object() {
        pairs.push(("Platform", platform(config)));
        pairs.push(("Built", text(&config["created"])));
        pairs.push(("Author", text(&config["author"])));
    }
    if i["config"].is_object() {
        pairs.push(("Config", text(&i["config"]["digest"])));
    }
    let mut out = fields(&pairs);
    let labels = config["labels"].as_object().cloned().unwrap_or_default();
    out.push_str(&key_values("Labels", &labels));
    out.push_str(&key_values(
        "Annotations",
        i["annotations"].as_object().unwrap_or(&Map::new()),
    ));
    let descriptors = |key: &str| i[key].as_array().cloned().unwrap_or_default();
    let layers = descriptors("layers");
    if !layers.is_empty() {
        let rows: Vec<Vec<String>> = layers
            .iter()
            .map(|l| vec![text(&l["digest"]), text(&l["size"]), text(&l["mediaType"])])
            .collect();
        out.push_str("\n\n");
        out.push_str(&table(&["LAYER", "SIZE", "MEDIA TYPE"], &rows));
    }
    let manifests = descriptors("manifests");
    if !manifests.is_empty() {
        let rows: Vec<Vec<String>> = manifests
            .iter()
            .map(|m| {
                vec![
                    text(&m["digest"]),
                    platform(&m["platform"]),
                    text(&m["size"]),
                ]
            })
            .collect();
        out.push_str("\n\n");
        out.push_str(&table(&["MANIFEST", "PLATFORM", "SIZE"], &rows));
    }
    let history = config["history"].as_array().cloned().unwrap_or_default();
    if !history.is_empty() {
        let rows: Vec<Vec<String>> = history
            .iter()
            .map(|h| vec![text(&h["created"]), text(&h["created_by"])])
            .collect();
        out.push_str("\n\n");
        out.push_str(&table(&["CREATED", "CREATED BY"], &rows));
    }
    out
}

/// `os/architecture[/variant]` of a platform or image config, or `-`.
fn platform(p: &Value) -> String {
    if !p.is_object() {
        return "-".to_owned();
    }
    let mut s = format!("{}/{}", text(&p["os"]), text(&p["architecture"]));
    if let Some(v) = p["variant"].as_str() {
        s.push_str(&format!("/{v}"));
    }
    s
}

/// `\n\nTitle:\n  k=v` lines, or nothing when `map` is empty.
fn key_values(title: &str, map: &Map<String, Value>) -> String {
    if map.is_empty() {
        return String::new();
    }
    let lines: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("  {k}={}", text(v)))
        .collect();
    format!("\n\n{title}:\n{}", lines.join("\n"))
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
