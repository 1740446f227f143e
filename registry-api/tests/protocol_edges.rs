//! Protocol edges of the distribution API: RFC 9110 ranges on blobs,
//! chunked uploads held to their `Content-Range`, manifest references that
//! are neither tag nor digest, `OCI-Tag`, reads by digest whatever `Accept`
//! says, the cap on references per manifest, and mounts with registry
//! tokens issued for both repositories.

mod common;

use axum::body::Body;
use axum::http::{Method, StatusCode};
use bytes::Bytes;
use common::{basic, image_manifest, with_access_control, Client, PASSWORD};
use registry_api::{Limits, Registry};
use registry_auth::{ClusterRole, Role};
use registry_core::{media_type, Digest};

/// 1 KiB of distinct bytes.
fn kib() -> Vec<u8> {
    (0..1024u32).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn blob_ranges_follow_rfc_9110() {
    let c = Client::new();
    let data = kib();
    let d = c.push_blob("ns/app", &data).await;
    let uri = format!("/v2/ns/app/blobs/{d}");
    let get = |range: &'static str| {
        let c = &c;
        let uri = uri.clone();
        async move { c.bare(Method::GET, &uri, &[("range", range)]).await }
    };

    // An end past the blob is clipped.
    let r = get("bytes=0-99999999").await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{:?}", r.body);
    assert_eq!(r.header("content-range"), "bytes 0-1023/1024");
    assert_eq!(r.header("content-length"), "1024");
    assert_eq!(r.body, data);
    let r = get("bytes=1000-5000").await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.header("content-range"), "bytes 1000-1023/1024");
    assert_eq!(r.body, data[1000..]);

    // Suffix ranges: the last n bytes, or the whole blob when n is larger.
    let r = get("bytes=-500").await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT, "{:?}", r.body);
    assert_eq!(r.header("content-range"), "bytes 524-1023/1024");
    assert_eq!(r.body, data[524..]);
    let r = get("bytes=-5000").await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.header("content-range"), "bytes 0-1023/1024");
    assert_eq!(r.body, data);

    // What the server does not serve is ignored: the whole blob, 200.
    for range in [
        "bytes=0-1,5-9",
        "items=0-1",
        "bytes=abc",
        "bytes=9-5",
        "bytes=0-18446744073709551615x",
    ] {
        let r = get(range).await;
        assert_eq!(r.status, StatusCode::OK, "{range}: {:?}", r.body);
        assert_eq!(r.header("content-range"), "", "{range}");
        assert_eq!(r.body, data, "{range}");
    }

    // Only a valid single range starting past the end is 416.
    for range in ["bytes=1024-", "bytes=2000-3000", "bytes=-0"] {
        let r = get(range).await;
        assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
        assert_eq!(r.header("content-range"), "bytes */1024", "{range}");
    }

    // HEAD answers as GET would, without the body.
    let r = c
        .bare(Method::HEAD, &uri, &[("range", "bytes=0-99999999")])
        .await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.header("content-range"), "bytes 0-1023/1024");
    assert_eq!(r.header("content-length"), "1024");
    let r = c.bare(Method::HEAD, &uri, &[("range", "bytes=-24")]).await;
    assert_eq!(r.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.header("content-range"), "bytes 1000-1023/1024");
    assert_eq!(r.header("content-length"), "24");
    let r = c
        .bare(Method::HEAD, &uri, &[("range", "bytes=0-1,3-4")])
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("content-length"), "1024");
    let r = c
        .bare(Method::HEAD, &uri, &[("range", "bytes=4096-")])
        .await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.header("content-range"), "bytes */1024");
}

/// A chunk body sent without `Content-Length`, in `pieces`.
fn chunked(pieces: &[&[u8]]) -> Body {
    let items: Vec<Result<Bytes, std::io::Error>> = pieces
        .iter()
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    Body::from_stream(futures::stream::iter(items))
}

async fn chunked_patch_is_held_to_its_content_range(c: &Client) {
    let r = c.bare(Method::POST, "/v2/ns/app/blobs/uploads/", &[]).await;
    assert_eq!(r.status, StatusCode::ACCEPTED);
    let location = r.header("location").to_owned();
    let data: Vec<u8> = (0..40u8).collect();
    let patch = |range: &'static str, body: Body| {
        let location = location.clone();
        async move {
            c.call(Method::PATCH, &location, &[("content-range", range)], body)
                .await
        }
    };
    let r = patch("0-9", chunked(&[&data[..4], &data[4..10]])).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.header("range"), "0-9");

    // Longer than announced: the excess arrives in a later piece.
    let r = patch("10-19", chunked(&[&data[10..20], &data[20..25]])).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE, "{:?}", r.body);
    assert_eq!(r.code(), "BLOB_UPLOAD_INVALID");
    assert_eq!(r.header("range"), "0-9");
    // Shorter than announced: the body just ends early.
    let r = patch("10-19", chunked(&[&data[10..13], &data[13..15]])).await;
    assert_eq!(r.status, StatusCode::RANGE_NOT_SATISFIABLE, "{:?}", r.body);
    assert_eq!(r.header("range"), "0-9");
    let r = c.bare(Method::GET, &location, &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(r.header("range"), "0-9", "the session moved");

    // The right chunk still continues at 10, and the blob is exact.
    let r = patch("10-19", chunked(&[&data[10..20]])).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    assert_eq!(r.header("range"), "0-19");
    let whole = &data[..20];
    let d = Digest::sha256_of(whole);
    let sep = if location.contains('?') { '&' } else { '?' };
    let r = c
        .bare(Method::PUT, &format!("{location}{sep}digest={d}"), &[])
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(c.get(&format!("/v2/ns/app/blobs/{d}")).await.body, whole);
}

#[tokio::test]
async fn chunked_patch_length_must_match_content_range_in_memory() {
    chunked_patch_is_held_to_its_content_range(&Client::new()).await;
}

#[tokio::test]
async fn chunked_patch_length_must_match_content_range_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let registry = common::data_dir(dir.path(), Limits::default()).await;
    chunked_patch_is_held_to_its_content_range(&Client::with(registry)).await;
}

#[tokio::test]
async fn malformed_references_are_unknown_to_reads_and_invalid_to_writes() {
    let c = Client::new();
    c.push_image("ns/app", "v1", "seed").await;
    for reference in ["-bad", "sha256:short", "a%20b", "UPPER:case"] {
        let uri = format!("/v2/ns/app/manifests/{reference}");
        for method in [Method::GET, Method::HEAD] {
            let r = c.bare(method.clone(), &uri, &[]).await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{method} {reference}");
            if method == Method::GET {
                assert_eq!(r.code(), "MANIFEST_UNKNOWN", "{reference}");
            }
        }
        let r = c
            .call(
                Method::PUT,
                &uri,
                &[("content-type", media_type::OCI_MANIFEST)],
                b"{}".to_vec(),
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "PUT {reference}");
        assert_eq!(r.code(), "MANIFEST_INVALID", "PUT {reference}");
    }
}

#[tokio::test]
async fn put_by_digest_with_tags_answers_one_oci_tag_per_tag() {
    let c = Client::new();
    let config = c.push_blob("ns/app", b"{}").await;
    let layer = c.push_blob("ns/app", b"layer").await;
    let manifest = image_manifest(&config, 2, &layer, 5, None);
    let d = Digest::sha256_of(&manifest);
    let r = c
        .call(
            Method::PUT,
            &format!("/v2/ns/app/manifests/{d}?tag=a&tag=b&tag=a"),
            &[("content-type", media_type::OCI_MANIFEST)],
            manifest,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let tags: Vec<&str> = r
        .headers
        .get_all("oci-tag")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(tags, ["a", "b"]);
    let listed = c.get("/v2/ns/app/tags/list").await.json();
    assert_eq!(listed["tags"], serde_json::json!(["a", "b"]));
}

#[tokio::test]
async fn a_manifest_by_digest_is_served_whatever_accept_says() {
    let c = Client::new();
    let (child, child_bytes, _) = c.push_image("ns/app", "child", "x").await;
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_INDEX,
        "manifests": [{
            "mediaType": media_type::OCI_MANIFEST,
            "digest": child,
            "size": child_bytes.len(),
            "platform": {"architecture": "amd64", "os": "linux"},
        }],
    }))
    .unwrap();
    let r = c
        .call(
            Method::PUT,
            "/v2/ns/app/manifests/multi",
            &[("content-type", media_type::OCI_INDEX)],
            index.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let d = Digest::sha256_of(&index);
    // What `docker manifest inspect` (20.10) sends: no OCI type at all.
    let docker_only =
        media_type::DOCKER_MANIFEST_LIST.to_owned() + ", " + media_type::DOCKER_MANIFEST;
    let accept = [("accept", docker_only.as_str())];
    for method in [Method::GET, Method::HEAD] {
        let r = c
            .bare(
                method.clone(),
                &format!("/v2/ns/app/manifests/{d}"),
                &accept,
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{method}");
        assert_eq!(r.header("content-type"), media_type::OCI_INDEX);
        assert_eq!(r.header("docker-content-digest"), d.as_str());
        if method == Method::GET {
            assert_eq!(r.body, index);
        }
    }
    // By tag, negotiation stays: the stored type is not acceptable.
    let r = c
        .bare(Method::GET, "/v2/ns/app/manifests/multi", &accept)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "MANIFEST_UNKNOWN");
}

/// An image manifest with `layers` copies of one layer descriptor.
fn manifest_with_layers(config: &Digest, layer: &Digest, layers: usize) -> Vec<u8> {
    let layer =
        serde_json::json!({"mediaType": media_type::OCI_LAYER_GZIP, "digest": layer, "size": 5});
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": {"mediaType": media_type::OCI_CONFIG, "digest": config, "size": 2},
        "layers": vec![layer; layers],
    }))
    .unwrap()
}

async fn put_manifest(c: &Client, tag: &str, bytes: Vec<u8>) -> common::Reply {
    c.call(
        Method::PUT,
        &format!("/v2/ns/app/manifests/{tag}"),
        &[("content-type", media_type::OCI_MANIFEST)],
        bytes,
    )
    .await
}

#[tokio::test]
async fn references_per_manifest_are_capped() {
    // The default: a thousand references, config included.
    let c = Client::new();
    let config = c.push_blob("ns/app", b"{}").await;
    let layer = c.push_blob("ns/app", b"layer").await;
    let r = put_manifest(&c, "big", manifest_with_layers(&config, &layer, 999)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = put_manifest(&c, "huge", manifest_with_layers(&config, &layer, 20_000)).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{:?}", r.body);
    assert_eq!(r.code(), "MANIFEST_INVALID");
    let message = r.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("20001") && message.contains("1000"),
        "{message}"
    );

    // A configured limit; checked before any lookup, so even a manifest
    // whose blobs are missing is refused for its size first.
    let limits = {
        let mut l = Limits::default();
        l.max_manifest_references = 3;
        l
    };
    let c = Client::with(common::limited(limits).await);
    let config = c.push_blob("ns/app", b"{}").await;
    let layer = c.push_blob("ns/app", b"layer").await;
    let r = put_manifest(&c, "ok", manifest_with_layers(&config, &layer, 2)).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let r = put_manifest(&c, "over", manifest_with_layers(&config, &layer, 3)).await;
    assert_eq!(r.code(), "MANIFEST_INVALID", "{:?}", r.body);
    let missing = Digest::sha256_of(b"never pushed");
    let r = put_manifest(&c, "over", manifest_with_layers(&config, &missing, 3)).await;
    assert_eq!(r.code(), "MANIFEST_INVALID", "{:?}", r.body);
}

/// The mount flow of Docker and containerd with registry tokens: challenged
/// on the target, they ask the token endpoint for the challenge's scope plus
/// `pull` on the `from` repository, then mount with that token.
async fn mount_with_a_token_issued_for_both_repositories(registry: Registry) {
    let (registry, _) = with_access_control(
        registry,
        &["alice", "root"],
        &[
            ("src", Role::Viewer, "alice"),
            ("dst", Role::Editor, "alice"),
        ],
        &[(ClusterRole::ClusterAdmin, "root")],
    )
    .await;
    let c = Client::with(registry);
    let alice = basic("alice", PASSWORD);
    let root = basic("root", PASSWORD);
    let data = b"shared layer";
    let d = Digest::sha256_of(data);
    for repo in ["src/app", "dst/other"] {
        let r = c
            .call(
                Method::POST,
                &format!("/v2/{repo}/blobs/uploads/?digest={d}"),
                &[("authorization", &root)],
                data.to_vec(),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    let mount = format!("/v2/dst/app/blobs/uploads/?mount={d}&from=src%2Fapp");
    let r = c.bare(Method::POST, &mount, &[]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let challenge = r.header("www-authenticate").to_owned();
    assert!(
        challenge.contains("scope=\"repository:dst/app:pull,push\""),
        "{challenge}"
    );

    let token = |query: &'static str| {
        let (c, alice) = (&c, &alice);
        async move {
            let r = c
                .bare(
                    Method::GET,
                    &format!("/v2/token?service=registry.test&{query}"),
                    &[("authorization", alice)],
                )
                .await;
            assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
            format!("Bearer {}", r.json()["token"].as_str().unwrap())
        }
    };
    // Docker: one `scope` per scope, its own action order.
    let both =
        token("scope=repository%3Adst%2Fapp%3Apush%2Cpull&scope=repository%3Asrc%2Fapp%3Apull")
            .await;
    let head = format!("/v2/dst/app/blobs/{d}");
    let r = c
        .bare(Method::HEAD, &head, &[("authorization", &both)])
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = c
        .bare(Method::POST, &mount, &[("authorization", &both)])
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "{:?} {:?}",
        r.headers,
        r.body
    );
    assert_eq!(r.header("docker-content-digest"), d.as_str());
    let r = c
        .bare(Method::HEAD, &head, &[("authorization", &both)])
        .await;
    assert_eq!(r.status, StatusCode::OK);

    // containerd (GET fallback): the scopes space-separated in one parameter.
    let both =
        token("scope=repository%3Adst%2Fapp%3Apull%2Cpush+repository%3Asrc%2Fapp%3Apull").await;
    let other = format!("/v2/dst/third/blobs/uploads/?mount={d}&from=src/app");
    let r = c
        .bare(Method::POST, &other, &[("authorization", &both)])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "scoped to dst/app only");
    let both =
        token("scope=repository%3Adst%2Fthird%3Apull%2Cpush+repository%3Asrc%2Fapp%3Apull").await;
    let r = c
        .bare(Method::POST, &other, &[("authorization", &both)])
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    // A token without pull on the source opens a session instead.
    let target_only = token("scope=repository%3Adst%2Fapp%3Apull%2Cpush").await;
    let r = c
        .bare(
            Method::POST,
            &format!("/v2/dst/app/blobs/uploads/?mount={d}&from=dst%2Fother"),
            &[("authorization", &target_only)],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
}

#[tokio::test]
async fn mount_with_a_token_for_both_repositories_in_memory() {
    mount_with_a_token_issued_for_both_repositories(Registry::in_memory()).await;
}

#[tokio::test]
async fn mount_with_a_token_for_both_repositories_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let registry = common::data_dir(dir.path(), Limits::default()).await;
    mount_with_a_token_issued_for_both_repositories(registry).await;
}
