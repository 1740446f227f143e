//! The Image API commands (`/apis/image/v1`, see docs/image-api.md):
//! `imagestreams list|show`, `tag history`, `image show` and
//! `repositories`. Readable text by default, the server's JSON with `--json`.
//!
//! They use the credentials stored for the server when there are some and
//! call anonymously otherwise, so public namespaces need no login. Lists
//! are fetched whole, following the API's pages.

use std::collections::BTreeMap;

use registry::api::model::image::{Image, ImageStream, ImageStreamTag};
use registry::core::{Digest, Namespace, Platform, RepositoryName};

use crate::admin::{print_json, table};
use crate::cli::{Command, Global, ImageCmd, ImageStreamsCmd, TagCmd};
use crate::session::{Connection, Silence};
use crate::{say, CliError, Io};

/// Runs an Image API command (with the stored credentials, if any).
pub(crate) async fn run(g: &Global, command: Command, io: &mut Io<'_>) -> Result<(), CliError> {
    let conn = Connection::open(g, io, false, Silence::Short)?;
    let api = &conn.client;
    let repository = |ns: &Namespace, name: &str| {
        RepositoryName::from_parts(ns.as_str(), name.trim_matches('/')).map_err(|source| {
            let name = name.to_owned();
            CliError::ImageStreamName { name, source }
        })
    };
    let text = match command {
        Command::Imagestreams(ImageStreamsCmd::List { namespace }) => {
            let list = conn.run(api.all_image_streams(&namespace)).await?;
            if g.json {
                return print_json(io, &list);
            } else if list.items.is_empty() {
                return say!(io.err, "no ImageStreams in namespace {namespace}");
            }
            render_stream_list(&list.items)
        }
        Command::Imagestreams(ImageStreamsCmd::Show { namespace, name }) => {
            let repo = repository(&namespace, &name)?;
            let stream = conn.run(api.image_stream_all_tags(&repo)).await?;
            if g.json {
                return print_json(io, &stream);
            }
            render_stream(&stream)
        }
        Command::Imagestreams(ImageStreamsCmd::Delete { namespace, name }) => {
            let repo = repository(&namespace, &name)?;
            conn.run(api.delete_image_stream(&repo)).await?;
            format!("imagestream/{repo} deleted")
        }
        Command::Tag(TagCmd::History {
            namespace,
            name_tag: (name, tag),
        }) => {
            let repo = repository(&namespace, &name)?;
            let doc = conn.run(api.image_stream_tag_history(&repo, &tag)).await?;
            if g.json {
                return print_json(io, &doc);
            }
            render_tag(&doc)
        }
        Command::Image(ImageCmd::Show { digest }) => {
            let image = conn.run(api.image(&digest)).await?;
            if g.json {
                return print_json(io, &image);
            }
            render_image(&image)
        }
        Command::Repositories => {
            let list = conn.run(api.all_visible_repositories()).await?;
            if g.json {
                return print_json(io, &list);
            } else if list.items.is_empty() {
                return say!(io.err, "no repositories you may pull");
            }
            let rows = list
                .items
                .iter()
                .map(|r| vec![r.name.to_string(), text(r.created.as_deref())]);
            table(&["NAME", "CREATED"], &rows.collect::<Vec<_>>())
        }
        other => unreachable!("not an Image API command: {other:?}"),
    };
    say!(io.out, "{text}")
}

/// An optional value as text, `-` when absent.
fn text(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

/// A tag's target as text: `(deleted)` when it has none.
fn target(image: Option<&Digest>) -> String {
    image.map_or_else(|| "(deleted)".to_owned(), Digest::to_string)
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

pub(crate) fn render_stream_list(items: &[ImageStream]) -> String {
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|s| {
            let tags = &s.status.tags;
            let mut names: Vec<String> = tags.iter().map(|t| t.tag.to_string()).collect();
            // A listed stream shows its first tags only.
            let truncated = s.status.tags_continue.is_some();
            if names.len() > 4 || truncated {
                let more = names.len().saturating_sub(3);
                names.truncate(3);
                let plus = if truncated { "+" } else { "" };
                names.push(format!("+ {more}{plus} more"));
            }
            let updated = tags
                .iter()
                .filter_map(|t| t.items.first().map(|i| i.created.as_str()))
                .max();
            let names = if names.is_empty() {
                "-".to_owned()
            } else {
                names.join(",")
            };
            let repository = s.status.docker_image_repository.clone();
            vec![s.metadata.name.clone(), repository, names, text(updated)]
        })
        .collect();
    table(&["NAME", "IMAGE REPOSITORY", "TAGS", "UPDATED"], &rows)
}

fn render_stream(s: &ImageStream) -> String {
    let head = fields(&[
        ("Name", s.metadata.name.clone()),
        ("Namespace", text(s.metadata.namespace.as_deref())),
        ("Created", text(s.metadata.creation_timestamp.as_deref())),
        ("Image Repository", s.status.docker_image_repository.clone()),
    ]);
    if s.status.tags.is_empty() {
        return format!("{head}\n\nno tags");
    }
    let rows: Vec<Vec<String>> = s
        .status
        .tags
        .iter()
        .map(|t| {
            let item = t.items.first();
            vec![
                t.tag.to_string(),
                target(item.map(|i| &i.image)),
                text(item.map(|i| i.created.as_str())),
            ]
        })
        .collect();
    format!("{head}\n\n{}", table(&["TAG", "IMAGE", "UPDATED"], &rows))
}

pub(crate) fn render_tag(t: &ImageStreamTag) -> String {
    let head = fields(&[
        ("Tag", t.metadata.name.clone()),
        ("Repository", t.repository.to_string()),
        ("Image", target(t.image.as_ref())),
        ("Updated", t.updated.clone()),
    ]);
    let rows: Vec<Vec<String>> = t
        .history
        .iter()
        .map(|e| {
            let mut image = target(e.image.as_ref());
            if e.pruned {
                image.push_str(" (pruned)");
            }
            vec![e.created.clone(), image, e.actor.clone()]
        })
        .collect();
    format!("{head}\n\n{}", table(&["WHEN", "IMAGE", "ACTOR"], &rows))
}

fn render_image(i: &Image) -> String {
    let repositories: Vec<String> = i
        .repositories
        .iter()
        .map(|r| match r.tags.is_empty() {
            true => r.name.to_string(),
            false => {
                let tags: Vec<String> = r.tags.iter().map(ToString::to_string).collect();
                format!("{} ({})", r.name, tags.join(", "))
            }
        })
        .collect();
    let mut pairs = vec![
        ("Digest", i.digest.to_string()),
        ("Media Type", i.media_type.clone()),
        ("Size", i.size.to_string()),
        ("Pushed", text(i.metadata.creation_timestamp.as_deref())),
        ("Repositories", repositories.join(", ")),
    ];
    if let Some(a) = &i.artifact_type {
        pairs.push(("Artifact Type", a.clone()));
    }
    if let Some(c) = &i.image_config {
        let platform = platform(&c.os, &c.architecture, c.variant.as_deref());
        pairs.push(("Platform", platform));
        pairs.push(("Built", text(c.created.as_deref())));
        pairs.push(("Author", text(c.author.as_deref())));
    }
    if let Some(config) = &i.config {
        pairs.push(("Config", config.digest.to_string()));
    }
    let mut out = fields(&pairs);
    if let Some(c) = &i.image_config {
        out.push_str(&key_values("Labels", &c.labels));
    }
    out.push_str(&key_values("Annotations", &i.annotations));
    let mut section = |headers: &[&str], rows: Vec<Vec<String>>| {
        if !rows.is_empty() {
            out.push_str("\n\n");
            out.push_str(&table(headers, &rows));
        }
    };
    let layers = i.layers.iter().map(|l| {
        vec![
            l.digest.to_string(),
            l.size.to_string(),
            l.media_type.clone(),
        ]
    });
    section(&["LAYER", "SIZE", "MEDIA TYPE"], layers.collect());
    let children = i.manifests.iter().map(|m| {
        let platform = m.platform.as_ref().map_or("-".to_owned(), |p: &Platform| {
            platform(&p.os, &p.architecture, p.variant.as_deref())
        });
        vec![m.digest.to_string(), platform, m.size.to_string()]
    });
    section(&["MANIFEST", "PLATFORM", "SIZE"], children.collect());
    let history = i
        .image_config
        .iter()
        .flat_map(|c| &c.history)
        .map(|h| vec![text(h.created.as_deref()), text(h.created_by.as_deref())]);
    section(&["CREATED", "CREATED BY"], history.collect());
    out
}

/// `os/architecture[/variant]`.
fn platform(os: &str, architecture: &str, variant: Option<&str>) -> String {
    match variant {
        Some(v) => format!("{os}/{architecture}/{v}"),
        None => format!("{os}/{architecture}"),
    }
}

/// `\n\nTitle:\n  k=v` lines, or nothing when `map` is empty.
fn key_values(title: &str, map: &BTreeMap<String, String>) -> String {
    if map.is_empty() {
        return String::new();
    }
    let lines: Vec<String> = map.iter().map(|(k, v)| format!("  {k}={v}")).collect();
    format!("\n\n{title}:\n{}", lines.join("\n"))
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
