//! What the client refuses: wrong bytes, endless or oversized answers, bad configuration.

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use bytes::Bytes;
use futures::StreamExt;
use registry_api::client::{Client, ClientError, Page};
use registry_core::{media_type, Digest, Reference};

use crate::support::{repo, serve, tag};

/// A registry that serves wrong bytes: a blob that is not its digest, a
/// manifest whose digest header lies, and `/v2/` behind a Basic challenge.
fn liar() -> axum::Router {
    axum::Router::new()
        .route(
            "/v2/",
            get(|headers: HeaderMap| async move {
                if headers.contains_key("authorization") {
                    StatusCode::OK.into_response()
                } else {
                    let challenge = [("www-authenticate", "Basic realm=\"liar\"")];
                    (StatusCode::UNAUTHORIZED, challenge).into_response()
                }
            }),
        )
        .route(
            "/v2/team/app/blobs/{digest}",
            get(|| async { Bytes::from_static(b"not the blob you asked for") }),
        )
        .route(
            "/v2/team/app/manifests/{reference}",
            get(|| async {
                let headers = [
                    ("content-type", media_type::OCI_MANIFEST.to_owned()),
                    (
                        "docker-content-digest",
                        Digest::sha256_of(b"other").to_string(),
                    ),
                ];
                (headers, "{}")
            }),
        )
}

#[tokio::test]
async fn wrong_bytes_are_detected() {
    let url = serve(liar()).await;
    let client = Client::builder(&url).basic_auth("u", "p").build().unwrap();
    // A Basic challenge is answered with the Basic credentials.
    client.ping().await.unwrap();
    let anonymous = Client::builder(&url).build().unwrap();
    assert!(matches!(
        anonymous.ping().await,
        Err(ClientError::Unauthorized { .. })
    ));

    let app = repo("team/app");
    let wanted = Digest::sha256_of(b"the blob");
    let mismatch = client.pull_blob_bytes(&app, &wanted).await;
    assert!(
        matches!(&mismatch, Err(ClientError::DigestMismatch { expected, .. }) if *expected == wanted),
        "{mismatch:?}"
    );
    // Streaming: every chunk arrives, then the verdict.
    let items: Vec<_> = client
        .pull_blob(&app, &wanted)
        .await
        .unwrap()
        .collect()
        .await;
    assert!(items[0].is_ok());
    assert!(matches!(
        items.last(),
        Some(Err(ClientError::DigestMismatch { .. }))
    ));

    let by_tag = client.get_manifest(&app, &tag("v1")).await;
    assert!(
        matches!(by_tag, Err(ClientError::DigestMismatch { .. })),
        "{by_tag:?}"
    );
    let by_digest = client.get_manifest(&app, &Reference::Digest(wanted)).await;
    assert!(
        matches!(by_digest, Err(ClientError::DigestMismatch { .. })),
        "{by_digest:?}"
    );
}

#[test]
fn bad_configuration_is_a_typed_error() {
    assert!(matches!(
        Client::builder("ftp://host").build(),
        Err(ClientError::UnsupportedScheme { .. })
    ));
    assert!(matches!(
        Client::builder("not a url").build(),
        Err(ClientError::InvalidUrl { .. })
    ));
    assert!(matches!(
        Client::builder("https://host")
            .ca_pem("no pem here")
            .build(),
        Err(ClientError::InvalidCa { .. })
    ));
}

/// A body that never ends (and announces no length).
fn endless() -> axum::body::Body {
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    axum::body::Body::from_stream(futures::stream::repeat(chunk).map(Ok::<_, std::io::Error>))
}

/// A server whose every answer is an endless body: manifests, a JSON
/// list, and an error answer.
fn flood() -> axum::Router {
    axum::Router::new()
        .route(
            "/v2/team/app/manifests/{reference}",
            get(|| async { ([("content-type", media_type::OCI_MANIFEST)], endless()) }),
        )
        .route(
            "/v2/team/app/tags/list",
            get(|| async { ([("content-type", "application/json")], endless()) }),
        )
        .route(
            "/v2/team/gone/tags/list",
            get(|| async { (StatusCode::NOT_FOUND, endless()) }),
        )
        .route(
            "/v2/team/big/manifests/{reference}",
            get(|| async {
                let body = vec![b' '; 2048];
                ([("content-type", media_type::OCI_MANIFEST)], body)
            }),
        )
}

#[tokio::test]
async fn endless_or_oversized_answers_are_refused_at_a_bound() {
    let url = serve(flood()).await;
    let client = Client::builder(&url)
        .max_manifest_bytes(1024)
        .build()
        .unwrap();
    let limited = |r: Result<(), ClientError>, limit: u64| match r {
        Err(ClientError::TooLarge { limit: l, .. }) => assert_eq!(l, limit),
        other => panic!("expected TooLarge, got {other:?}"),
    };
    limited(
        client
            .get_manifest(&repo("team/app"), &tag("v1"))
            .await
            .map(|_| ()),
        1024,
    );
    // Announced as longer than the limit: refused before reading.
    limited(
        client
            .get_manifest(&repo("team/big"), &tag("v1"))
            .await
            .map(|_| ()),
        1024,
    );
    // JSON documents have their own (larger) bound.
    limited(
        client
            .tags(&repo("team/app"), &Page::first())
            .await
            .map(|_| ()),
        64 << 20,
    );
    // An error answer is sorted from its first bytes; the rest is not read.
    let gone = client.tags(&repo("team/gone"), &Page::first()).await;
    assert!(
        matches!(gone, Err(ClientError::NotFound { .. })),
        "{gone:?}"
    );
}

/// A tag list whose `Link` never ends: with `last` that never moves, or
/// with pages of new tags for ever.
fn endless_tags() -> axum::Router {
    use axum::extract::{Path, Query};
    use std::collections::HashMap;
    axum::Router::new().route(
        "/v2/{ns}/{name}/tags/list",
        get(
            |Path((ns, name)): Path<(String, String)>,
             Query(q): Query<HashMap<String, String>>| async move {
                // Ten tags a page, after `last`.
                let start: u64 = match (ns.as_str(), q.get("last")) {
                    // The same page and cursor every time.
                    ("stuck", _) | (_, None) => 0,
                    (_, Some(last)) => last.trim_start_matches('t').parse::<u64>().unwrap() + 1,
                };
                let tags: Vec<String> = (start..start + 10).map(|i| format!("t{i:08}")).collect();
                let last = tags.last().unwrap();
                let link = format!("</v2/{ns}/{name}/tags/list?n=10&last={last}>; rel=\"next\"");
                let body = serde_json::json!({"name": format!("{ns}/{name}"), "tags": tags});
                ([("link", link)], axum::Json(body))
            },
        ),
    )
}

#[tokio::test]
async fn tag_lists_that_never_end_are_read_to_a_bound() {
    let url = serve(endless_tags()).await;
    let client = Client::builder(&url).build().unwrap();
    // Before: listing went on for ever, growing.
    let tags = client.tags_up_to(&repo("endless/app"), 25).await.unwrap();
    assert_eq!(tags.len(), 25);
    assert_eq!(tags[24].as_str(), "t00000024");
    let stuck = client.all_tags(&repo("stuck/app")).await;
    assert!(
        matches!(&stuck, Err(ClientError::Protocol { problem, .. }) if problem.contains("does not start after")),
        "{stuck:?}"
    );
}

#[tokio::test]
async fn a_blob_head_without_a_length_is_no_size() {
    let no_length = axum::Router::new().route(
        "/v2/team/app/blobs/{digest}",
        get(|| async {
            let chunks = futures::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"x"))]);
            axum::body::Body::from_stream(chunks)
        }),
    );
    let url = serve(no_length).await;
    let client = Client::builder(&url).build().unwrap();
    let size = client
        .blob_size(&repo("team/app"), &Digest::sha256_of(b"x"))
        .await;
    // Before: Ok(Some(0)).
    assert!(
        matches!(&size, Err(ClientError::Protocol { problem, .. }) if problem.contains("Content-Length")),
        "{size:?}"
    );
}
