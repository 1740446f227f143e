//! In-process tests of manifests, tags, catalog and referrers.

mod common;

use axum::http::{Method, StatusCode};
use common::{image_manifest, Client};
use registry_api::Limits;
use registry_core::{media_type, Digest};

#[tokio::test]
async fn push_pull_by_tag_and_digest() {
    let c = Client::new();
    let (d, bytes, _) = c.push_image("ns/app", "v1", "a").await;
    for reference in ["v1".to_owned(), d.to_string()] {
        let r = c.get(&format!("/v2/ns/app/manifests/{reference}")).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(&r.body[..], &bytes[..], "exact bytes");
        assert_eq!(r.header("content-type"), media_type::OCI_MANIFEST);
        assert_eq!(r.header("docker-content-digest"), d.as_str());
        let h = c
            .bare(
                Method::HEAD,
                &format!("/v2/ns/app/manifests/{reference}"),
                &[],
            )
            .await;
        assert_eq!(h.status, StatusCode::OK);
        assert_eq!(h.header("content-length"), bytes.len().to_string());
        assert!(h.body.is_empty());
    }
    // Content negotiation: a client that only takes Docker schema 2 does not get OCI.
    let r = c
        .bare(
            Method::GET,
            "/v2/ns/app/manifests/v1",
            &[("accept", media_type::DOCKER_MANIFEST)],
        )
        .await;
    assert_eq!(r.code(), "MANIFEST_UNKNOWN");
    let r = c
        .bare(
            Method::GET,
            "/v2/ns/app/manifests/v1",
            &[(
                "accept",
                &format!(
                    "{}, {}",
                    media_type::DOCKER_MANIFEST,
                    media_type::OCI_MANIFEST
                ),
            )],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test]
async fn manifest_put_errors() {
    let c = Client::new();
    let put = |uri: &'static str, ct: &'static str, body: Vec<u8>| {
        let app = c.app.clone();
        async move {
            Client { app }
                .call(Method::PUT, uri, &[("content-type", ct)], body)
                .await
        }
    };
    // Malformed and schema 1.
    let r = put(
        "/v2/ns/app/manifests/v1",
        media_type::OCI_MANIFEST,
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_INVALID")
    );
    let r = put(
        "/v2/ns/app/manifests/v1",
        media_type::DOCKER_SCHEMA1_SIGNED,
        br#"{"schemaVersion":1,"fsLayers":[]}"#.to_vec(),
    )
    .await;
    assert_eq!(r.code(), "MANIFEST_INVALID");
    assert!(r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .contains("schema 1"));
    // References a blob that is not there.
    let ghost = Digest::sha256_of(b"ghost");
    let m = image_manifest(&ghost, 5, &ghost, 5, None);
    let r = put("/v2/ns/app/manifests/v1", media_type::OCI_MANIFEST, m).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_BLOB_UNKNOWN")
    );
    // Several missing: the first in the manifest's order is named (the
    // lookups run side by side).
    let here = c.push_blob("ns/app", b"{\"here\":1}").await;
    let (first, second) = (Digest::sha256_of(b"first"), Digest::sha256_of(b"second"));
    let m = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": here, "size": 10},
        "layers": [
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": first, "size": 5},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": here, "size": 10},
            {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": second, "size": 6},
        ],
    }))
    .unwrap();
    let r = put("/v2/ns/app/manifests/v1", media_type::OCI_MANIFEST, m).await;
    assert_eq!(r.code(), "MANIFEST_BLOB_UNKNOWN");
    let message = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains(&format!("blob {first} ")), "{message}");
    // A blob that exists in another repository only does not count.
    let cfg = c.push_blob("ns/other", b"{}").await;
    let m = image_manifest(&cfg, 2, &cfg, 2, None);
    let r = put(
        "/v2/ns/app/manifests/v1",
        media_type::OCI_MANIFEST,
        m.clone(),
    )
    .await;
    assert_eq!(r.code(), "MANIFEST_BLOB_UNKNOWN");
    // Digest reference that does not match the bytes.
    c.push_blob("ns/app", b"{}").await;
    let wrong = format!("/v2/ns/app/manifests/{ghost}");
    let r = c
        .call(
            Method::PUT,
            &wrong,
            &[("content-type", media_type::OCI_MANIFEST)],
            m.clone(),
        )
        .await;
    assert_eq!(r.code(), "DIGEST_INVALID");
    // Bad tag names.
    let r = c
        .call(
            Method::PUT,
            "/v2/ns/app/manifests/v1?tag=-bad",
            &[("content-type", media_type::OCI_MANIFEST)],
            m.clone(),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "MANIFEST_INVALID")
    );
    let r = c
        .call(Method::PUT, "/v2/ns/app/manifests/.bad", &[], m.clone())
        .await;
    assert_eq!(r.code(), "MANIFEST_INVALID");
    // Media type mismatch between document and Content-Type.
    let r = c
        .call(
            Method::PUT,
            "/v2/ns/app/manifests/v1",
            &[("content-type", media_type::OCI_INDEX)],
            m,
        )
        .await;
    assert_eq!(r.code(), "MANIFEST_INVALID");
    let r = c.bare(Method::POST, "/v2/ns/app/manifests/v1", &[]).await;
    assert_eq!(r.code(), "UNSUPPORTED");
}

#[tokio::test]
async fn manifest_size_limit_is_413() {
    let c = Client::with(
        common::limited({
            let mut l = Limits::default();
            l.max_manifest_bytes = 1024;
            l
        })
        .await,
    );
    let big = vec![b' '; 2048];
    let r = c
        .call(
            Method::PUT,
            "/v2/ns/app/manifests/v1",
            &[("content-type", media_type::OCI_MANIFEST)],
            big,
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID")
    );
}

#[tokio::test]
async fn unknown_repository_and_manifest() {
    let c = Client::new();
    let r = c.get("/v2/ns/none/manifests/latest").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "NAME_UNKNOWN")
    );
    c.push_image("ns/app", "v1", "a").await;
    let r = c.get("/v2/ns/app/manifests/v2").await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
    );
    let r = c.get("/v2/ns/none/tags/list").await;
    assert_eq!(r.code(), "NAME_UNKNOWN");
}

#[tokio::test]
async fn multiple_tags_in_one_put_and_delete() {
    let c = Client::new();
    let cfg = c.push_blob("ns/app", b"{}").await;
    let layer = c.push_blob("ns/app", b"L").await;
    let m = image_manifest(&cfg, 2, &layer, 1, None);
    let d = Digest::sha256_of(&m);
    let r = c
        .call(
            Method::PUT,
            &format!("/v2/ns/app/manifests/{d}?tag=a&tag=b&tag=c"),
            &[("content-type", media_type::OCI_MANIFEST)],
            m,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(r.header("location"), format!("/v2/ns/app/manifests/{d}"));
    let r = c.get("/v2/ns/app/tags/list").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["a", "b", "c"]));

    // Tag delete removes the tag only.
    let r = c.bare(Method::DELETE, "/v2/ns/app/manifests/b", &[]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        c.get("/v2/ns/app/tags/list").await.json()["tags"],
        serde_json::json!(["a", "c"])
    );
    assert_eq!(
        c.get("/v2/ns/app/manifests/b").await.code(),
        "MANIFEST_UNKNOWN"
    );
    assert_eq!(
        c.get(&format!("/v2/ns/app/manifests/{d}")).await.status,
        StatusCode::OK
    );
    // Digest delete removes the manifest and its tags.
    let r = c
        .bare(Method::DELETE, &format!("/v2/ns/app/manifests/{d}"), &[])
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    assert_eq!(
        c.get(&format!("/v2/ns/app/manifests/{d}")).await.code(),
        "MANIFEST_UNKNOWN"
    );
    assert_eq!(
        c.get("/v2/ns/app/tags/list").await.json()["tags"],
        serde_json::json!([])
    );
    let r = c
        .bare(Method::DELETE, &format!("/v2/ns/app/manifests/{d}"), &[])
        .await;
    assert_eq!(r.code(), "MANIFEST_UNKNOWN");
}

#[tokio::test]
async fn index_needs_its_children() {
    let c = Client::new();
    let (child, child_bytes, _) = c.push_image("ns/multi", "amd64", "x").await;
    let index = |d: &Digest| {
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": media_type::OCI_INDEX,
            "manifests": [{"mediaType": media_type::OCI_MANIFEST, "digest": d, "size": child_bytes.len(),
                           "platform": {"architecture": "amd64", "os": "linux"}}],
        }))
        .unwrap()
    };
    let ghost = Digest::sha256_of(b"ghost");
    let r = c
        .call(
            Method::PUT,
            "/v2/ns/multi/manifests/latest",
            &[("content-type", media_type::OCI_INDEX)],
            index(&ghost),
        )
        .await;
    assert_eq!(r.code(), "MANIFEST_BLOB_UNKNOWN");
    let r = c
        .call(
            Method::PUT,
            "/v2/ns/multi/manifests/latest",
            &[("content-type", media_type::OCI_INDEX)],
            index(&child),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let r = c.get("/v2/ns/multi/manifests/latest").await;
    assert_eq!(r.header("content-type"), media_type::OCI_INDEX);
}

#[tokio::test]
async fn tags_and_catalog_paginate_with_link() {
    let c = Client::new();
    let (d, m, _) = c.push_image("ns/app", "t0", "p").await;
    for t in ["t1", "t2", "t3", "t4"] {
        let r = c
            .call(
                Method::PUT,
                &format!("/v2/ns/app/manifests/{t}"),
                &[("content-type", media_type::OCI_MANIFEST)],
                m.clone(),
            )
            .await;
        assert_eq!(r.header("docker-content-digest"), d.as_str());
    }
    let r = c.get("/v2/ns/app/tags/list?n=2").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["t0", "t1"]));
    assert_eq!(
        r.header("link"),
        "</v2/ns/app/tags/list?n=2&last=t1>; rel=\"next\""
    );
    let r = c.get("/v2/ns/app/tags/list?n=2&last=t3").await;
    assert_eq!(r.json()["tags"], serde_json::json!(["t4"]));
    assert_eq!(r.header("link"), "");
    let r = c.get("/v2/ns/app/tags/list?n=0").await;
    assert_eq!(r.json()["tags"], serde_json::json!([]));
    assert_eq!(
        c.get("/v2/ns/app/tags/list?n=-1").await.status,
        StatusCode::BAD_REQUEST
    );

    for repo in ["ns/b", "ns/c", "other/d"] {
        c.push_blob(repo, b"x").await;
    }
    let r = c.get("/v2/_catalog?n=2").await;
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["ns/app", "ns/b"])
    );
    assert!(r.header("link").contains("last=ns%2Fb"));
    let r = c.get("/v2/_catalog?n=10&last=ns/b").await;
    assert_eq!(
        r.json()["repositories"],
        serde_json::json!(["ns/c", "other/d"])
    );
    assert_eq!(
        c.get("/v2/_catalog").await.json()["repositories"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
}

#[tokio::test]
async fn referrers_with_subject_and_filter() {
    let c = Client::new();
    let (subject, subject_bytes, _) = c.push_image("ns/app", "v1", "s").await;
    let cfg = c.push_blob("ns/app", b"{}").await;
    let sig = c.push_blob("ns/app", b"signature").await;
    let m = image_manifest(&cfg, 2, &sig, 9, Some((&subject, subject_bytes.len())));
    let d = Digest::sha256_of(&m);
    let r = c
        .call(
            Method::PUT,
            &format!("/v2/ns/app/manifests/{d}"),
            &[("content-type", media_type::OCI_MANIFEST)],
            m.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(r.header("oci-subject"), subject.as_str());

    let r = c.get(&format!("/v2/ns/app/referrers/{subject}")).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-type"), media_type::OCI_INDEX);
    let body = r.json();
    assert_eq!(body["manifests"][0]["digest"], d.as_str());
    assert_eq!(
        body["manifests"][0]["artifactType"],
        "application/vnd.example.sig"
    );
    assert_eq!(body["manifests"][0]["size"], m.len());
    assert_eq!(body["manifests"][0]["annotations"]["org.example"], "yes");
    assert_eq!(r.header("oci-filters-applied"), "");

    let r = c
        .get(&format!(
            "/v2/ns/app/referrers/{subject}?artifactType=application/vnd.example.sig"
        ))
        .await;
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(r.header("oci-filters-applied"), "artifactType");
    let r = c
        .get(&format!(
            "/v2/ns/app/referrers/{subject}?artifactType=text/other"
        ))
        .await;
    assert_eq!(r.json()["manifests"].as_array().unwrap().len(), 0);
    // Unknown subject: an empty index, not an error.
    let r = c
        .get(&format!(
            "/v2/ns/app/referrers/{}",
            Digest::sha256_of(b"none")
        ))
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["manifests"], serde_json::json!([]));
    let r = c.get("/v2/ns/app/referrers/sha256:bad").await;
    assert_eq!(r.code(), "DIGEST_INVALID");
}

#[tokio::test]
async fn an_escaped_digest_colon_in_the_path_is_the_colon() {
    let c = Client::new();
    let digest = c.push_blob("ns/app", b"escaped").await;
    let escaped = digest.to_string().replace(':', "%3A");
    let r = c
        .bare(Method::GET, &format!("/v2/ns/app/blobs/{escaped}"), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(&r.body[..], b"escaped");
    let r = c
        .bare(Method::GET, &format!("/v2/ns/app/referrers/{escaped}"), &[])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // A stray `%` is still a malformed path, named as such.
    let r = c.bare(Method::GET, "/v2/ns/app/blobs/sha256%zz", &[]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.code(), "DIGEST_INVALID");
}
