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
