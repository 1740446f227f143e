//! Listings bounded by the page asked for: the catalog's opaque cursor and
//! per-namespace paging, referrers pages (with `artifactType` as the
//! distribution spec defines it), ImageStream tags and tag history pages.

mod common;

use axum::http::{Method, StatusCode};
use common::{image_manifest, with_access_control, Client, PASSWORD};
use registry_api::Registry;
use registry_auth::Role;
use registry_core::{media_type, Digest};
use serde_json::Value;

const API: &str = "/apis/image/v1";

fn names(v: &Value, key: &str) -> Vec<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} in {v}"))
        .iter()
        .map(|r| r.as_str().unwrap().to_owned())
        .collect()
}

/// The `last` of a `Link: <…?n=&last=…>; rel="next"` header.
fn next_last(link: &str) -> Option<String> {
    let query = link.split_once('?')?.1.split_once('>')?.0;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "last")
        .map(|(_, v)| v.into_owned())
}

#[tokio::test]
async fn catalog_last_is_an_opaque_cursor() {
    let c = Client::new();
    for repo in ["a/app", "b/app", "b/zed", "c-d/x"] {
        c.push_image(repo, "v1", repo).await;
    }
    // Before: `last` had to parse as a repository name (400 otherwise).
    for (last, expected) in [
        ("B/APP", vec!["a/app", "b/app", "b/zed", "c-d/x"]),
        ("b", vec!["b/app", "b/zed", "c-d/x"]),
        ("b/app%20", vec!["b/zed", "c-d/x"]),
        ("b/", vec!["b/app", "b/zed", "c-d/x"]),
        ("c-d/x!", vec![]),
        ("~", vec![]),
    ] {
        let r = c.get(&format!("/v2/_catalog?last={last}")).await;
        assert_eq!(r.status, StatusCode::OK, "last={last}: {:?}", r.body);
        assert_eq!(names(&r.json(), "repositories"), expected, "last={last}");
    }
}

/// A caller who sees some namespaces pages through exactly their
/// repositories, in lexical order (`a-b/…` before `a/…`), whatever the
/// page size, on `/v2/_catalog` and the Image API alike.
#[tokio::test]
async fn catalog_pages_through_visible_namespaces_in_order() {
    let registry = Registry::in_memory();
    let loader = Client::with(registry.clone());
    for repo in ["a/one", "a/two", "a-b/x", "hidden/app", "z/last", "a0/no"] {
        loader.push_image(repo, "v1", repo).await;
    }
    let roles = [
        ("a", Role::Viewer, "alice"),
        ("a-b", Role::Viewer, "alice"),
        ("z", Role::Viewer, "alice"),
        ("empty", Role::Viewer, "alice"),
    ];
    let (registry, _) = with_access_control(registry, &["alice"], &roles, &[]).await;
    let c = Client::with(registry);
    let auth = common::basic("alice", PASSWORD);
    let expected = ["a-b/x", "a/one", "a/two", "z/last"];
    for n in 1..=5 {
        let mut seen = Vec::new();
        let mut uri = format!("/v2/_catalog?n={n}");
        loop {
            let r = c
                .bare(Method::GET, &uri, &[("authorization", auth.as_str())])
                .await;
            assert_eq!(r.status, StatusCode::OK, "{uri}: {:?}", r.body);
            let page = names(&r.json(), "repositories");
            assert!(page.len() <= n);
            seen.extend(page);
            match next_last(r.header("link")) {
                Some(last) => uri = format!("/v2/_catalog?n={n}&last={last}"),
                None => break,
            }
        }
        assert_eq!(seen, expected, "pages of {n}");
    }
    let r = c
        .bare(
            Method::GET,
            &format!("{API}/repositories?last=a/"),
            &[("authorization", auth.as_str())],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let listed: Vec<String> = r.json()["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, ["a/one", "a/two", "z/last"]);
}

/// Pushes a manifest referring to `subject` whose config has media type
/// `config_type`, with or without an explicit `artifactType`.
async fn push_referrer(
    c: &Client,
    subject: &Digest,
    subject_len: usize,
    config_type: &str,
    artifact_type: Option<&str>,
    seed: &str,
) -> Digest {
    let config = c.push_blob("ns/app", b"{}").await;
    let layer = c.push_blob("ns/app", seed.as_bytes()).await;
    let mut v: Value =
        serde_json::from_slice(&image_manifest(&config, 2, &layer, seed.len(), None)).unwrap();
    v["config"]["mediaType"] = config_type.into();
    v["subject"] = serde_json::json!({"mediaType": media_type::OCI_MANIFEST, "digest": subject, "size": subject_len});
    if let Some(a) = artifact_type {
        v["artifactType"] = a.into();
    }
    let bytes = serde_json::to_vec(&v).unwrap();
    let d = Digest::sha256_of(&bytes);
    let r = c
        .call(
            Method::PUT,
            &format!("/v2/ns/app/manifests/{d}"),
            &[("content-type", media_type::OCI_MANIFEST)],
            bytes,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    d
}

#[tokio::test]
async fn referrer_without_artifact_type_is_listed_under_its_config_media_type() {
    let c = Client::new();
    let (subject, bytes, _) = c.push_image("ns/app", "v1", "subject").await;
    // Before: listed without artifactType, and the filter did not match.
    let plain = push_referrer(
        &c,
        &subject,
        bytes.len(),
        media_type::OCI_CONFIG,
        None,
        "plain",
    )
    .await;
    let custom = push_referrer(
        &c,
        &subject,
        bytes.len(),
        "application/x-sbom",
        None,
        "custom",
    )
    .await;
    let r = c.get(&format!("/v2/ns/app/referrers/{subject}")).await;
    assert_eq!(r.status, StatusCode::OK);
    let listed = r.json()["manifests"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2);
    for entry in &listed {
        let expected = if entry["digest"] == plain.as_str() {
            media_type::OCI_CONFIG
        } else {
            assert_eq!(entry["digest"], custom.as_str());
            "application/x-sbom"
        };
        assert_eq!(entry["artifactType"], expected, "{entry}");
    }
    let r = c
        .get(&format!(
            "/v2/ns/app/referrers/{subject}?artifactType={}",
            media_type::OCI_CONFIG.replace('+', "%2B")
        ))
        .await;
    let filtered = r.json()["manifests"].as_array().unwrap().clone();
    assert_eq!(filtered.len(), 1);
    assert_eq!(filtered[0]["digest"], plain.as_str());
    assert_eq!(r.header("oci-filters-applied"), "artifactType");
}

#[tokio::test]
async fn referrers_are_paged_with_a_link_that_keeps_the_filter() {
    let c = Client::new();
    let (subject, bytes, _) = c.push_image("ns/app", "v1", "subject").await;
    let sig = "application/vnd.example.sig";
    let mut expected = Vec::new();
    for i in 0..5 {
        let d = push_referrer(
            &c,
            &subject,
            bytes.len(),
            "application/x-c",
            Some(sig),
            &format!("s{i}"),
        )
        .await;
        expected.push(d.to_string());
    }
    push_referrer(
        &c,
        &subject,
        bytes.len(),
        "application/x-c",
        Some("other/type"),
        "o",
    )
    .await;
    expected.sort();
    let mut seen = Vec::new();
    let mut uri = format!("/v2/ns/app/referrers/{subject}?n=2&artifactType={sig}");
    let mut pages = 0;
    loop {
        // Before: every referrer in one answer, no Link.
        let r = c.get(&uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        let page = r.json()["manifests"].as_array().unwrap().clone();
        assert!(page.len() <= 2, "{page:?}");
        seen.extend(
            page.iter()
                .map(|m| m["digest"].as_str().unwrap().to_owned()),
        );
        pages += 1;
        let link = r.header("link");
        if link.is_empty() {
            break;
        }
        assert!(link.contains("artifactType="), "{link}");
        let target = link
            .trim_start_matches('<')
            .split_once(">; rel=\"next\"")
            .expect("rel=next link")
            .0;
        uri = target.to_owned();
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
    let r = c
        .get(&format!("/v2/ns/app/referrers/{subject}?last=nope"))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

/// Referrers whose annotations are large come a few per page (about 4 MiB
/// of descriptors at most), each exactly once, with a `Link` to the rest.
#[tokio::test]
async fn referrers_pages_are_bounded_in_bytes() {
    let c = Client::new();
    let (subject, bytes, _) = c.push_image("ns/app", "v1", "subject").await;
    let config = c.push_blob("ns/app", b"{}").await;
    let mut expected = Vec::new();
    for i in 0..5u8 {
        let layer = c.push_blob("ns/app", &[i]).await;
        let mut v: Value =
            serde_json::from_slice(&image_manifest(&config, 2, &layer, 1, None)).unwrap();
        v["subject"] = serde_json::json!({"mediaType": media_type::OCI_MANIFEST, "digest": subject, "size": bytes.len()});
        // 1.5 MiB of annotation: two fit in a page, three do not.
        v["annotations"] = serde_json::json!({"note": "x".repeat(3 << 19)});
        let body = serde_json::to_vec(&v).unwrap();
        let d = Digest::sha256_of(&body);
        let uri = format!("/v2/ns/app/manifests/{d}");
        let r = c
            .call(
                Method::PUT,
                &uri,
                &[("content-type", media_type::OCI_MANIFEST)],
                body,
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
        expected.push(d.to_string());
    }
    expected.sort();
    let mut uri = format!("/v2/ns/app/referrers/{subject}");
    let (mut seen, mut sizes) = (Vec::new(), Vec::new());
    loop {
        // Before: all five (7.5 MiB) in one answer.
        let r = c.get(&uri).await;
        assert_eq!(r.status, StatusCode::OK, "{uri}");
        sizes.push(r.body.len());
        let page = r.json()["manifests"].as_array().unwrap().clone();
        seen.extend(
            page.iter()
                .map(|m| m["digest"].as_str().unwrap().to_owned()),
        );
        let link = r.header("link");
        if link.is_empty() {
            break;
        }
        uri = next_last(link)
            .map(|last| format!("/v2/ns/app/referrers/{subject}?last={last}"))
            .expect("a next page");
    }
    assert_eq!(seen, expected);
    assert_eq!(sizes.len(), 3, "{sizes:?}");
    assert!(sizes.iter().all(|&s| s < 4 << 20), "{sizes:?}");
}

#[tokio::test]
async fn image_stream_tags_and_tag_history_are_paged() {
    let c = Client::new();
    let mut digests = Vec::new();
    for i in 0..5 {
        let (d, _, _) = c
            .push_image("team/app", "latest", &format!("move-{i}"))
            .await;
        digests.push(d.to_string());
        c.push_image("team/app", &format!("t{i}"), &format!("move-{i}"))
            .await;
    }
    // Tags of the ImageStream: before, every tag in one document.
    let uri = format!("{API}/namespaces/team/imagestreams/app?n=2");
    let r = c.get(&uri).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let doc = r.json();
    let tags: Vec<&str> = doc["status"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(tags, ["latest", "t0"]);
    assert_eq!(doc["status"]["tagsContinue"], "t0");
    assert!(r.header("link").contains("last=t0"), "{}", r.header("link"));
    let r = c.get(&format!("{uri}&last=t2")).await;
    let doc = r.json();
    assert_eq!(doc["status"]["tags"].as_array().unwrap().len(), 2);
    assert_eq!(doc["status"]["tagsContinue"], Value::Null);

    // History: newest first, two at a time, the current target on every page.
    let newest_first: Vec<String> = digests.iter().rev().cloned().collect();
    let mut seen = Vec::new();
    let mut uri = format!("{API}/namespaces/team/imagestreamtags/app:latest?n=2");
    loop {
        let r = c.get(&uri).await;
        assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
        let doc = r.json();
        assert_eq!(doc["image"], newest_first[0].as_str());
        let page = doc["history"].as_array().unwrap();
        assert!(page.len() <= 2, "{page:?}");
        seen.extend(page.iter().map(|h| h["image"].as_str().unwrap().to_owned()));
        match doc["historyContinue"].as_str() {
            Some(last) => {
                assert!(doc["metadata"]["creationTimestamp"].is_null());
                uri = format!("{API}/namespaces/team/imagestreamtags/app:latest?n=2&last={last}");
            }
            None => {
                assert!(doc["metadata"]["creationTimestamp"].is_string());
                break;
            }
        }
    }
    assert_eq!(seen, newest_first);
    let r = c
        .get(&format!(
            "{API}/namespaces/team/imagestreamtags/app:latest?last=x"
        ))
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}
