//! In-process tests of blob and upload endpoints, including every error path.

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use common::Client;
use registry_core::{Algorithm, Digest};

#[tokio::test]
async fn base_endpoint_answers_with_api_version() {
    let c = Client::new();
    let r = c.get("/v2/").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("docker-distribution-api-version"), "registry/2.0");
    assert_eq!(c.get("/healthz").await.status, StatusCode::OK);
    assert_eq!(c.get("/readyz").await.status, StatusCode::OK);
}

#[tokio::test]
async fn monolithic_push_then_head_get_and_ranges() {
    let c = Client::new();
    let d = c.push_blob("ns/app", b"hello world").await;
    let r = c
        .bare(Method::HEAD, &format!("/v2/ns/app/blobs/{d}"), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), "11");
    assert_eq!(r.header("docker-content-digest"), d.as_str());
    assert!(r.body.is_empty());

    let r = c.get(&format!("/v2/ns/app/blobs/{d}")).await;
    assert_eq!(&r.body[..], b"hello world");

    let r = c
        .bare(
            Method::GET,
            &format!("/v2/ns/app/blobs/{d}"),
            &[("range", "bytes=6-10")],
        )
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&r.body[..], b"world");
    assert_eq!(r.header("content-range"), "bytes 6-10/11");

    let r = c
        .bare(
            Method::GET,
            &format!("/v2/ns/app/blobs/{d}"),
            &[("range", "bytes=50-60")],
        )
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), "bytes */11");
    let r = c
        .bare(
            Method::GET,
            &format!("/v2/ns/app/blobs/{d}"),
            &[("range", "pages=1")],
        )
        .await;
    // An unknown unit is ignored (RFC 9110 §14.2): the whole blob.
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body.len(), 11);
}

#[tokio::test]
async fn blob_errors() {
    let c = Client::new();
    let missing = Digest::sha256_of(b"missing");
    let r = c.get(&format!("/v2/ns/app/blobs/{missing}")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UNKNOWN")
    );
    let r = c.get("/v2/ns/app/blobs/sha256:1234").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    let r = c.get(&format!("/v2/UPPER/app/blobs/{missing}")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "NAME_INVALID")
    );
    let r = c.get(&format!("/v2/nonamespace/blobs/{missing}")).await;
    assert_eq!(r.code(), "NAME_INVALID");
    let r = c
        .bare(Method::POST, &format!("/v2/ns/app/blobs/{missing}"), &[])
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED")
    );
    let r = c.get("/v2/ns/app/nothing/here").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);

    // Wrong digest on a monolithic push: DIGEST_INVALID and nothing stored.
    let r = c
        .call(
            Method::POST,
            &format!("/v2/ns/app/blobs/uploads/?digest={missing}"),
            &[("content-length", "3")],
            "abc",
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    let r = c.get(&format!("/v2/ns/app/blobs/{missing}")).await;
    assert_eq!(r.code(), "BLOB_UNKNOWN");
    let r = c
        .bare(Method::POST, "/v2/ns/app/blobs/uploads/?digest=nope", &[])
        .await;
    assert_eq!(r.code(), "DIGEST_INVALID");
    let r = c
        .call(
            Method::POST,
            "/v2/ns/app/blobs/uploads/",
            &[("content-length", "3")],
            "abc",
        )
        .await;
    assert_eq!(r.code(), "DIGEST_INVALID");
}

#[tokio::test]
async fn blob_visible_only_in_repositories_that_link_it() {
    let c = Client::new();
    let d = c.push_blob("ns/a", b"secret layer").await;
    let r = c.get(&format!("/v2/ns/b/blobs/{d}")).await;
    assert_eq!(r.code(), "BLOB_UNKNOWN");
    // Deleting unlinks it from ns/a only.
    let r = c
        .bare(Method::DELETE, &format!("/v2/ns/a/blobs/{d}"), &[])
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        c.get(&format!("/v2/ns/a/blobs/{d}")).await.code(),
        "BLOB_UNKNOWN"
    );
    let r = c
        .bare(Method::DELETE, &format!("/v2/ns/a/blobs/{d}"), &[])
        .await;
    assert_eq!(r.code(), "BLOB_UNKNOWN");
}

#[tokio::test]
async fn chunked_upload_with_status_and_out_of_order_chunk() {
    let c = Client::new();
    let r = c.bare(Method::POST, "/v2/ns/app/blobs/uploads/", &[]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let location = r.header("location").to_owned();
    assert!(location.starts_with("/v2/ns/app/blobs/uploads/"));
    assert_eq!(r.header("range"), "0-0");
    assert!(!r.header("docker-upload-uuid").is_empty());

    let r = c
        .call(
            Method::PATCH,
            &location,
            &[("content-range", "0-4"), ("content-length", "5")],
            "hello",
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(r.header("range"), "0-4");

    // Out of order: 416 with the current range.
    let r = c
        .call(
            Method::PATCH,
            &location,
            &[("content-range", "10-12"), ("content-length", "3")],
            "xyz",
        )
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("range"), "0-4");
    assert_eq!(r.code(), "BLOB_UPLOAD_INVALID");
    // Content-Length disagreeing with Content-Range.
    let r = c
        .call(
            Method::PATCH,
            &location,
            &[("content-range", "5-6"), ("content-length", "3")],
            "abc",
        )
        .await;
    assert_eq!(r.code(), "SIZE_INVALID");
    let r = c
        .call(Method::PATCH, &location, &[("content-range", "x-y")], "abc")
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);

    // Streamed chunk without Content-Range.
    let r = c.call(Method::PATCH, &location, &[], " world").await;
    assert_eq!(r.header("range"), "0-10");

    let r = c.get(&location).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("range"), "0-10");

    // The session belongs to ns/app only.
    let other = location.replace("ns/app", "ns/other");
    assert_eq!(c.get(&other).await.code(), "BLOB_UPLOAD_UNKNOWN");

    // PUT without digest, with a bad digest, then properly with a final chunk.
    let r = c.bare(Method::PUT, &location, &[]).await;
    assert_eq!(r.code(), "DIGEST_INVALID");
    let d = Digest::sha256_of(b"hello world!");
    let r = c
        .call(
            Method::PUT,
            &format!("{location}?digest={d}"),
            &[("content-length", "1")],
            "!",
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.header("location"), format!("/v2/ns/app/blobs/{d}"));
    assert_eq!(
        &c.get(&format!("/v2/ns/app/blobs/{d}")).await.body[..],
        b"hello world!"
    );
    // The session is gone.
    assert_eq!(c.get(&location).await.code(), "BLOB_UPLOAD_UNKNOWN");
}

#[tokio::test]
async fn upload_commit_mismatch_cancel_and_unknown_sessions() {
    let c = Client::new();
    let start = |c: &Client| {
        let c = c.app.clone();
        async move {
            let c = Client { app: c };
            c.bare(Method::POST, "/v2/ns/app/blobs/uploads/", &[])
                .await
                .header("location")
                .to_owned()
        }
    };
    let loc = start(&c).await;
    c.call(Method::PATCH, &loc, &[], "data").await;
    let wrong = Digest::sha256_of(b"other");
    let r = c
        .bare(Method::PUT, &format!("{loc}?digest={wrong}"), &[])
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
    assert_eq!(
        c.get(&format!("/v2/ns/app/blobs/{wrong}")).await.code(),
        "BLOB_UNKNOWN"
    );

    let loc = start(&c).await;
    let r = c.bare(Method::DELETE, &loc, &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let r = c.bare(Method::DELETE, &loc, &[]).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN")
    );
    let r = c.call(Method::PATCH, &loc, &[], "x").await;
    assert_eq!(r.code(), "BLOB_UPLOAD_UNKNOWN");
    let r = c.get("/v2/ns/app/blobs/uploads/not-a-session").await;
    assert_eq!(r.code(), "BLOB_UPLOAD_UNKNOWN");
    let r = c.bare(Method::GET, "/v2/ns/app/blobs/uploads/", &[]).await;
    assert_eq!(r.code(), "UNSUPPORTED");
}

#[tokio::test]
async fn sha512_uploads() {
    let c = Client::new();
    let data = b"sha512 content";
    let d = Digest::of(Algorithm::Sha512, data);
    let r = c
        .call(
            Method::POST,
            &format!("/v2/ns/app/blobs/uploads/?digest={d}"),
            &[],
            data.to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let loc = c
        .bare(Method::POST, "/v2/ns/app/blobs/uploads/", &[])
        .await
        .header("location")
        .to_owned();
    c.call(Method::PATCH, &loc, &[], "abc").await;
    let d2 = Digest::of(Algorithm::Sha512, b"abc");
    let r = c
        .bare(Method::PUT, &format!("{loc}?digest={d2}"), &[])
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(
        &c.get(&format!("/v2/ns/app/blobs/{d2}")).await.body[..],
        b"abc"
    );

    // Announced with the OCI `digest-algorithm` parameter: the session
    // hashes SHA-512 as the chunks arrive.
    for algorithm in ["sha512", "sha256"] {
        let loc = c
            .bare(
                Method::POST,
                &format!("/v2/ns/app/blobs/uploads/?digest-algorithm={algorithm}"),
                &[],
            )
            .await
            .header("location")
            .to_owned();
        c.call(Method::PATCH, &loc, &[], "announced").await;
        let d3 = Digest::of(algorithm.parse().unwrap(), b"announced");
        let r = c
            .bare(Method::PUT, &format!("{loc}?digest={d3}"), &[])
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        assert_eq!(
            &c.get(&format!("/v2/ns/app/blobs/{d3}")).await.body[..],
            b"announced"
        );
    }
    // An algorithm this registry does not take is refused by name.
    let r = c
        .bare(
            Method::POST,
            "/v2/ns/app/blobs/uploads/?digest-algorithm=md5",
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "DIGEST_INVALID");
    let message = r.json()["errors"][0]["message"].to_string();
    assert!(message.contains("md5"), "{message}");
}

#[tokio::test]
async fn cross_repository_mount_and_fallback() {
    let c = Client::new();
    let d = c.push_blob("ns/src", b"shared layer").await;
    let r = c
        .bare(
            Method::POST,
            &format!("/v2/ns/dst/blobs/uploads/?mount={d}&from=ns/src"),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("docker-content-digest"), d.as_str());
    assert_eq!(
        &c.get(&format!("/v2/ns/dst/blobs/{d}")).await.body[..],
        b"shared layer"
    );

    // Not in the source: a new session instead.
    let other = Digest::sha256_of(b"elsewhere");
    let r = c
        .bare(
            Method::POST,
            &format!("/v2/ns/dst/blobs/uploads/?mount={other}&from=ns/src"),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert!(r.header("location").contains("/blobs/uploads/"));
    // No `from`: a new session too.
    let r = c
        .bare(
            Method::POST,
            &format!("/v2/ns/dst/blobs/uploads/?mount={d}"),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let r = c
        .bare(
            Method::POST,
            "/v2/ns/dst/blobs/uploads/?mount=bad&from=ns/src",
            &[],
        )
        .await;
    assert_eq!(r.code(), "DIGEST_INVALID");
}

#[tokio::test]
async fn uploads_beyond_the_limit_get_429() {
    use registry_api::Limits;
    let registry = common::limited({
        let mut l = Limits::default();
        l.max_concurrent_uploads = 1;
        l
    })
    .await;
    let c = Client::with(registry);
    let loc = c
        .bare(Method::POST, "/v2/ns/app/blobs/uploads/", &[])
        .await
        .header("location")
        .to_owned();
    // A PATCH whose body stays open holds the only upload slot.
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, std::io::Error>>(1);
    tx.send(Ok(bytes::Bytes::from_static(b"first")))
        .await
        .unwrap();
    let body = Body::from_stream(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }));
    let app = c.app.clone();
    let held = tokio::spawn({
        let loc = loc.clone();
        async move { Client { app }.call(Method::PATCH, &loc, &[], body).await }
    });
    let mut refused = None;
    for _ in 0..200 {
        let r = c.bare(Method::POST, "/v2/ns/app/blobs/uploads/", &[]).await;
        if r.status == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let r = refused.expect("a second upload while the first streams gets 429");
    assert_eq!(r.code(), "TOOMANYREQUESTS");
    assert_eq!(r.header("retry-after"), "1");
    // Reads are not limited.
    assert_eq!(c.get("/v2/").await.status, StatusCode::OK);
    // When the first upload finishes, the slot is free again.
    drop(tx);
    assert_eq!(held.await.unwrap().status, StatusCode::ACCEPTED);
    let r = c.bare(Method::POST, "/v2/ns/app/blobs/uploads/", &[]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
}

/// `HEAD` of a blob and a ranged `GET` take the size recorded with the link,
/// without a `stat` of the blob store (a round trip to S3): with the bytes
/// gone from the store behind the registry's back, `HEAD` still answers
/// from the database, and a full `GET` (which must read the bytes) is 404.
#[tokio::test]
async fn blob_head_answers_from_the_recorded_size() {
    let stores = registry_storage::Stores::in_memory();
    let blobs = stores.blobs().clone();
    let c = Client::with(registry_api::Registry::new(stores));
    let d = c.push_blob("ns/app", b"sized by the link").await;
    blobs.delete(&d).await.unwrap();
    let r = c
        .bare(Method::HEAD, &format!("/v2/ns/app/blobs/{d}"), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), "17");
    // Not linked to another repository: still unknown there.
    let r = c
        .bare(Method::HEAD, &format!("/v2/ns/other/blobs/{d}"), &[])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = c.get(&format!("/v2/ns/app/blobs/{d}")).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "BLOB_UNKNOWN");
}
