//! Namespace quotas over HTTP: pushes refused past the quota with the
//! figures in the message, space given back by deletes and prune, the usage
//! endpoints (bad input, refused callers), the Image API's usage fields and
//! the usage gauges. Each scenario runs over memory and over a data
//! directory (SQLite metadata).

mod common;

use axum::http::{Method, StatusCode};
use common::{as_user, data_dir, image_manifest, with_access_control, Client, Reply};
use registry_api::{Limits, Registry};
use registry_auth::{ClusterRole, Role};
use registry_core::{media_type, Digest};

/// root is cluster-admin; in `team` nsadmin is registry-admin, editor
/// registry-editor, viewer registry-viewer; stranger has no role.
async fn world(registry: Registry) -> Registry {
    let roles = [
        ("team", Role::Admin, "nsadmin"),
        ("team", Role::Editor, "editor"),
        ("team", Role::Viewer, "viewer"),
    ];
    let (registry, _) = with_access_control(
        registry,
        &["root", "nsadmin", "editor", "viewer", "stranger"],
        &roles,
        &[(ClusterRole::ClusterAdmin, "root")],
    )
    .await;
    for ns in ["team", "other"] {
        registry
            .metadata()
            .create_namespace(&ns.parse().unwrap())
            .await
            .unwrap();
    }
    registry
}

fn message(r: &Reply) -> String {
    r.json()["errors"][0]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

fn data(seed: &str, len: usize) -> Vec<u8> {
    seed.bytes().cycle().take(len).collect()
}

async fn set_quota(root: &Client, bytes: u64) {
    let r = root
        .call(
            Method::PUT,
            "/apis/admin/v1/namespaces/team/policy",
            &[("content-type", "application/json")],
            format!(r#"{{"quota_bytes":{bytes}}}"#),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
}

async fn usage(c: &Client) -> serde_json::Value {
    let r = c.get("/apis/admin/v1/namespaces/team/usage").await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    r.json()["usage"].clone()
}

async fn head_blob(c: &Client, repo: &str, d: &Digest) -> StatusCode {
    c.bare(Method::HEAD, &format!("/v2/{repo}/blobs/{d}"), &[])
        .await
        .status
}

/// A chunked upload: POST, PATCH, then the commit's reply.
async fn chunked(c: &Client, repo: &str, body: &[u8]) -> Reply {
    let r = c
        .bare(Method::POST, &format!("/v2/{repo}/blobs/uploads/"), &[])
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let location = r.header("location").to_owned();
    let r = c
        .call(
            Method::PATCH,
            &location,
            &[("content-type", "application/octet-stream")],
            body.to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let location = r.header("location").to_owned();
    let sep = if location.contains('?') { '&' } else { '?' };
    let d = Digest::sha256_of(body);
    c.bare(Method::PUT, &format!("{location}{sep}digest={d}"), &[])
        .await
}

async fn push_until_refused_then_delete_prune_and_push_again(registry: Registry) {
    let registry = world(registry).await;
    let root = as_user(&registry, Some("root"));
    let editor = as_user(&registry, Some("editor"));
    set_quota(&root, 3000).await;

    // 1000-byte blobs until the quota is reached.
    let blobs: Vec<Vec<u8>> = (0..3).map(|i| data(&format!("blob-{i}"), 1000)).collect();
    let mut digests = Vec::new();
    for b in &blobs {
        digests.push(editor.push_blob("team/app", b).await);
    }
    let figures = usage(&editor).await;
    assert_eq!(
        (figures["bytes"].as_u64(), figures["blobs"].as_u64()),
        (Some(3000), Some(3))
    );

    // A monolithic push past it: DENIED with the figures; nothing visible.
    let extra = data("extra", 1000);
    let r = editor.try_push_blob("team/app", &extra).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(r.code(), "DENIED");
    assert_eq!(
        message(&r),
        "namespace team is over its quota: 2.9 KiB used of 2.9 KiB, this push needs 1000 B \
         more (3000 of 3000 bytes used, 1000 more needed)"
    );
    let extra_digest = Digest::sha256_of(&extra);
    assert_eq!(
        head_blob(&editor, "team/app", &extra_digest).await,
        StatusCode::NOT_FOUND
    );

    // A chunked upload is refused at its commit.
    let r = chunked(&editor, "team/app", &data("chunked", 10)).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(message(&r).contains("over its quota"), "{}", message(&r));
    let chunked_digest = Digest::sha256_of(&data("chunked", 10));
    assert_eq!(
        head_blob(&editor, "team/app", &chunked_digest).await,
        StatusCode::NOT_FOUND
    );

    // A cross-namespace mount brings new bytes too: refused.
    let elsewhere = root.push_blob("other/src", &data("mounted", 500)).await;
    let r = root
        .bare(
            Method::POST,
            &format!("/v2/team/app/blobs/uploads/?mount={elsewhere}&from=other/src"),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(
        head_blob(&root, "team/app", &elsewhere).await,
        StatusCode::NOT_FOUND
    );

    // A blob the namespace holds links anywhere in it, and a manifest of
    // held blobs is accepted, quota or not.
    editor.push_blob("team/lib", &blobs[0]).await;
    let manifest = image_manifest(&digests[0], 1000, &digests[1], 1000, None);
    editor.push_blob("team/lib", &blobs[1]).await;
    let r = editor
        .call(
            Method::PUT,
            "/v2/team/lib/manifests/v1",
            &[("content-type", media_type::OCI_MANIFEST)],
            manifest.clone(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    let figures = usage(&editor).await;
    assert_eq!(
        (
            figures["bytes"].as_u64(),
            figures["blobs"].as_u64(),
            figures["imagestreams"].as_u64(),
            figures["images"].as_u64()
        ),
        (Some(3000), Some(3), Some(2), Some(1)),
        "shared blobs count once"
    );

    // The Image API shows the same figures.
    let r = as_user(&registry, Some("viewer"))
        .get("/apis/image/v1/namespaces/team")
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let doc = r.json();
    assert_eq!(doc["kind"], "Namespace");
    assert_eq!(doc["status"]["quotaBytes"], 3000);
    assert_eq!(doc["status"]["usage"]["bytes"], 3000);
    let r = editor
        .get("/apis/image/v1/namespaces/team/imagestreams/lib")
        .await;
    assert_eq!(
        r.json()["status"]["usage"],
        serde_json::json!({"bytes": 2000, "blobs": 2, "images": 1, "tags": 1})
    );

    // Metrics: the namespace's gauges.
    let r = root.get("/extensions/v2/metrics").await;
    let text = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        text.contains("registry_namespace_bytes{namespace=\"team\"} 3000\n"),
        "{text}"
    );
    assert!(
        text.contains("registry_namespace_blobs{namespace=\"team\"} 3\n"),
        "{text}"
    );

    // Deleting an ImageStream gives back what only it held; deleting the
    // manifest and pruning gives back the rest.
    let r = editor
        .bare(
            Method::DELETE,
            "/apis/image/v1/namespaces/team/imagestreams/app",
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "an editor may not delete");
    let r = as_user(&registry, Some("nsadmin"))
        .bare(
            Method::DELETE,
            "/apis/image/v1/namespaces/team/imagestreams/app",
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(
        usage(&editor).await["bytes"],
        2000,
        "blob 2 went with team/app"
    );
    let r = as_user(&registry, Some("nsadmin"))
        .bare(
            Method::DELETE,
            &format!("/v2/team/lib/manifests/{}", Digest::sha256_of(&manifest)),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let r = root
        .call(
            Method::POST,
            "/apis/admin/v1/prune",
            &[("content-type", "application/json")],
            r#"{"grace_period_seconds":0}"#.to_owned(),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        usage(&editor).await["bytes"],
        0,
        "prune gives the space back"
    );

    // And the push refused before now fits.
    editor.push_blob("team/app", &extra).await;
    assert_eq!(
        head_blob(&editor, "team/app", &extra_digest).await,
        StatusCode::OK
    );
    assert_eq!(usage(&editor).await["bytes"], 1000);

    // A quota lowered under the usage deletes nothing and refuses new bytes.
    set_quota(&root, 10).await;
    assert_eq!(usage(&editor).await["bytes"], 1000);
    assert_eq!(
        head_blob(&editor, "team/app", &extra_digest).await,
        StatusCode::OK
    );
    let r = editor.try_push_blob("team/app", b"one more").await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn quota_over_memory() {
    push_until_refused_then_delete_prune_and_push_again(Registry::in_memory()).await;
}

#[tokio::test]
async fn quota_over_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    push_until_refused_then_delete_prune_and_push_again(
        data_dir(dir.path(), Limits::default()).await,
    )
    .await;
}

#[tokio::test]
async fn usage_endpoints_check_input_and_callers() {
    let registry = world(Registry::in_memory()).await;
    let root = as_user(&registry, Some("root"));
    let usage_path = "/apis/admin/v1/namespaces/team/usage";
    let recompute = "/apis/admin/v1/namespaces/team/usage/recompute";
    as_user(&registry, Some("editor"))
        .push_blob("team/app", b"twelve bytes")
        .await;

    let r = as_user(&registry, Some("viewer")).get(usage_path).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(
        r.json(),
        serde_json::json!({
            "namespace": "team",
            "quota_bytes": null,
            "usage": {"blobs": 1, "bytes": 12, "images": 0, "imagestreams": 1},
        })
    );
    for (who, status) in [
        (Some("stranger"), StatusCode::FORBIDDEN),
        (None, StatusCode::UNAUTHORIZED),
    ] {
        assert_eq!(
            as_user(&registry, who).get(usage_path).await.status,
            status,
            "{who:?}"
        );
        let r = as_user(&registry, who)
            .get("/apis/image/v1/namespaces/team")
            .await;
        assert_eq!(r.status, status, "{who:?}");
    }
    for who in ["viewer", "editor", "nsadmin", "stranger"] {
        let r = as_user(&registry, Some(who))
            .bare(Method::POST, recompute, &[])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{who}");
    }
    let r = as_user(&registry, None)
        .bare(Method::POST, recompute, &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let r = root.bare(Method::POST, recompute, &[]).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let doc = r.json();
    assert_eq!(doc["before"], doc["after"]);
    assert_eq!(doc["after"]["bytes"], 12);
    assert_eq!(doc["sizes_learned"], 0);

    // Bad input.
    for path in [
        "/apis/admin/v1/namespaces/Bad/usage",
        "/apis/admin/v1/namespaces/bad_%2F/usage",
        "/apis/image/v1/namespaces/-bad",
    ] {
        let r = root.get(path).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {:?}", r.body);
        assert_eq!(r.code(), "NAME_INVALID", "{path}");
    }
    let r = root
        .bare(
            Method::POST,
            "/apis/admin/v1/namespaces/Bad/usage/recompute",
            &[],
        )
        .await;
    assert_eq!(r.code(), "NAME_INVALID");
    for (method, path) in [
        (Method::GET, "/apis/admin/v1/namespaces/missing/usage"),
        (
            Method::POST,
            "/apis/admin/v1/namespaces/missing/usage/recompute",
        ),
        (Method::GET, "/apis/image/v1/namespaces/missing"),
    ] {
        let r = root.bare(method, path, &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {:?}", r.body);
        assert_eq!(r.code(), "NAME_UNKNOWN", "{path}");
    }
    let r = root.get(recompute).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

/// Usage a store could not size at link time (blobs linked before usage
/// was recorded) is learned by the recount from the blob store.
#[tokio::test]
async fn recompute_learns_sizes_from_the_blob_store() {
    let registry = world(Registry::in_memory()).await;
    let root = as_user(&registry, Some("root"));
    let bytes = data("old", 4321);
    let d = Digest::sha256_of(&bytes);
    // As an older version stored it: bytes, and a link without a size.
    registry
        .blobs()
        .put(
            &d,
            futures::StreamExt::boxed(futures::stream::iter([Ok(bytes::Bytes::from(bytes))])),
        )
        .await
        .unwrap();
    registry
        .metadata()
        .link_blob(&"team/old".parse().unwrap(), &d)
        .await
        .unwrap();
    assert_eq!(usage(&root).await["bytes"], 0);
    let r = root
        .bare(
            Method::POST,
            "/apis/admin/v1/namespaces/team/usage/recompute",
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let doc = r.json();
    assert_eq!(doc["sizes_learned"], 1);
    assert_eq!(doc["after"]["bytes"], 4321);
    assert_eq!(usage(&root).await["bytes"], 4321);
}
