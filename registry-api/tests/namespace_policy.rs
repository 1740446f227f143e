//! Namespace policies: the admin API that sets them, immutable tags on
//! every way a tag moves, and the deletes of ImageStreams and namespaces.

mod common;

use axum::http::{Method, StatusCode};
use common::{as_user, image_manifest, with_access_control, Client, Reply};
use registry_api::Registry;
use registry_auth::{ClusterRole, Role};
use registry_core::{media_type, Digest};

/// root is cluster-admin; in `team` nsadmin is registry-admin, editor
/// registry-editor, viewer registry-viewer.
async fn world() -> Registry {
    let roles = [
        ("team", Role::Admin, "nsadmin"),
        ("team", Role::Editor, "editor"),
        ("team", Role::Viewer, "viewer"),
    ];
    let (registry, _) = with_access_control(
        Registry::in_memory(),
        &["root", "nsadmin", "editor", "viewer"],
        &roles,
        &[(ClusterRole::ClusterAdmin, "root")],
    )
    .await;
    registry
        .metadata()
        .create_namespace(&"team".parse().unwrap())
        .await
        .unwrap();
    registry
}

async fn put_json(c: &Client, uri: &str, body: &str) -> Reply {
    c.call(
        Method::PUT,
        uri,
        &[("content-type", "application/json")],
        body.to_owned(),
    )
    .await
}

fn message(r: &Reply) -> String {
    r.json()["errors"][0]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned()
}

const POLICY: &str = "/apis/admin/v1/namespaces/team/policy";

#[tokio::test]
async fn the_policy_api_checks_input_and_callers() {
    let registry = world().await;
    let nsadmin = as_user(&registry, Some("nsadmin"));
    let root = as_user(&registry, Some("root"));

    let r = nsadmin.get(POLICY).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), serde_json::json!({}));

    let r = put_json(
        &nsadmin,
        POLICY,
        r#"{"keep_tag_revisions":3,"keep_younger_than":"30d","prune_untagged_after":"168h","immutable_tags":["v*","release-*"]}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let expected = serde_json::json!({
        "keep_tag_revisions": 3,
        "keep_younger_than": "30d",
        "prune_untagged_after": "1w",
        "immutable_tags": ["v*", "release-*"],
    });
    assert_eq!(r.json(), expected);
    assert_eq!(
        as_user(&registry, Some("viewer")).get(POLICY).await.json(),
        expected
    );

    // The quota is the cluster-admin's.
    let with_quota = r#"{"keep_tag_revisions":3,"keep_younger_than":"30d","prune_untagged_after":"1w","immutable_tags":["v*","release-*"],"quota_bytes":1048576}"#;
    let r = put_json(&nsadmin, POLICY, with_quota).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    let r = put_json(&root, POLICY, with_quota).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.json()["quota_bytes"], 1048576);
    // Retention stays the registry-admin's while the quota is unchanged.
    let r = put_json(
        &nsadmin,
        POLICY,
        r#"{"keep_tag_revisions":5,"quota_bytes":1048576}"#,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);

    // Refused callers.
    for (who, status) in [
        (Some("editor"), StatusCode::FORBIDDEN),
        (Some("viewer"), StatusCode::FORBIDDEN),
        (None, StatusCode::UNAUTHORIZED),
    ] {
        let r = put_json(&as_user(&registry, who), POLICY, "{}").await;
        assert_eq!(r.status, status, "{who:?}");
    }
    let r = as_user(&registry, None).get(POLICY).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = as_user(&registry, Some("editor"))
        .get("/apis/admin/v1/namespaces/other/policy")
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    // Bad input, each named.
    for (body, needle) in [
        (r#"{"keep_tags":3}"#, "keep_tags"),
        (r#"{"immutable_tags":["v[0-9]"]}"#, "'['"),
        (r#"{"keep_younger_than":"30 days"}"#, "30 days"),
        (r#"{"keep_younger_than":"1000000w"}"#, "100 years"),
        (r#"{"keep_tag_revisions":-1}"#, "keep_tag_revisions"),
        (r#"{"keep_tag_revisions":0}"#, "at least 1"),
        ("[]", "request body"),
    ] {
        let r = put_json(&root, POLICY, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}: {:?}", r.body);
        assert!(message(&r).contains(needle), "{body}: {}", message(&r));
    }
    let r = put_json(&root, "/apis/admin/v1/namespaces/missing/policy", "{}").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = root.get("/apis/admin/v1/namespaces/Bad/policy").await;
    assert_eq!(r.code(), "NAME_INVALID");
    // Nothing a refused request sent was stored.
    assert_eq!(nsadmin.get(POLICY).await.json()["keep_tag_revisions"], 5);
}

/// Pushes a manifest (config + layer of `seed`) to `repo` under `reference`
/// with optional `?tag=` parameters; the reply and the manifest's digest.
async fn push(
    c: &Client,
    repo: &str,
    reference: &str,
    seed: &str,
    tags: &[&str],
) -> (Reply, Digest) {
    let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":"{seed}"}}"#);
    let config_digest = c.push_blob(repo, config.as_bytes()).await;
    let layer = format!("layer {seed}");
    let layer_digest = c.push_blob(repo, layer.as_bytes()).await;
    let manifest = image_manifest(
        &config_digest,
        config.len(),
        &layer_digest,
        layer.len(),
        None,
    );
    let digest = Digest::sha256_of(&manifest);
    let reference = if reference == "@" {
        digest.to_string()
    } else {
        reference.to_owned()
    };
    let query: Vec<String> = tags.iter().map(|t| format!("tag={t}")).collect();
    let uri = if query.is_empty() {
        format!("/v2/{repo}/manifests/{reference}")
    } else {
        format!("/v2/{repo}/manifests/{reference}?{}", query.join("&"))
    };
    let r = c
        .call(
            Method::PUT,
            &uri,
            &[("content-type", media_type::OCI_MANIFEST)],
            manifest,
        )
        .await;
    (r, digest)
}

async fn target(c: &Client, repo: &str, tag: &str) -> String {
    c.bare(Method::HEAD, &format!("/v2/{repo}/manifests/{tag}"), &[])
        .await
        .header("docker-content-digest")
        .to_owned()
}

#[tokio::test]
async fn immutable_tags_hold_on_every_route() {
    let registry = world().await;
    let nsadmin = as_user(&registry, Some("nsadmin"));
    let r = put_json(&nsadmin, POLICY, r#"{"immutable_tags":["v*"]}"#).await;
    assert_eq!(r.status, StatusCode::OK);
    let editor = as_user(&registry, Some("editor"));
    let repo = "team/app";

    let (r, a) = push(&editor, repo, "v1", "a", &[]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    // The same image again (a client retrying) is fine.
    let (r, _) = push(&editor, repo, "v1", "a", &[]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);

    // PUT by tag of another image.
    let (r, b) = push(&editor, repo, "v1", "b", &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(r.code(), "DENIED");
    let text = message(&r);
    assert!(text.contains("tag v1 in team/app is immutable"), "{text}");
    assert!(text.contains("rule \"v*\""), "{text}");
    assert!(text.contains(&a.to_string()), "{text}");
    // ?tag= on a push by digest: refused as a whole, latest not moved.
    let (r, _) = push(&editor, repo, "@", "b", &["latest", "v1"]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(target(&editor, repo, "latest").await, "");
    // Tags the rule does not match move freely; new immutable tags are made.
    let (r, _) = push(&editor, repo, "@", "b", &["latest", "v2"]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(target(&editor, repo, "v2").await, b.to_string());
    let (r, _) = push(&editor, repo, "latest", "a", &[]).await;
    assert_eq!(r.status, StatusCode::CREATED);
    assert_eq!(target(&editor, repo, "v1").await, a.to_string());

    // Deleting the tag, or the image it points at, is refused; registry-admin or not.
    let r = nsadmin
        .bare(Method::DELETE, &format!("/v2/{repo}/manifests/v1"), &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert!(message(&r).contains("rule \"v*\""));
    let r = nsadmin
        .bare(Method::DELETE, &format!("/v2/{repo}/manifests/{a}"), &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);
    assert_eq!(target(&editor, repo, "v1").await, a.to_string());
    let r = nsadmin
        .bare(
            Method::DELETE,
            "/apis/image/v1/namespaces/team/imagestreams/app",
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{:?}", r.body);

    // With the rule gone, the tag moves again.
    let r = put_json(&nsadmin, POLICY, "{}").await;
    assert_eq!(r.status, StatusCode::OK);
    let (r, _) = push(&editor, repo, "v1", "b", &[]).await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    assert_eq!(target(&editor, repo, "v1").await, b.to_string());
}

#[tokio::test]
async fn image_streams_and_namespaces_are_deleted_by_their_admins() {
    let registry = world().await;
    let editor = as_user(&registry, Some("editor"));
    let nsadmin = as_user(&registry, Some("nsadmin"));
    let root = as_user(&registry, Some("root"));
    editor.push_image("team/app", "v1", "a").await;
    editor.push_image("team/tools/cli", "v1", "b").await;
    let stream = "/apis/image/v1/namespaces/team/imagestreams/app";

    let r = editor.bare(Method::DELETE, stream, &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = as_user(&registry, None)
        .bare(Method::DELETE, stream, &[])
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = nsadmin.bare(Method::DELETE, stream, &[]).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(nsadmin.get(stream).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        editor.get("/v2/team/app/manifests/v1").await.status,
        StatusCode::NOT_FOUND
    );
    let r = nsadmin.bare(Method::DELETE, stream, &[]).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.code(), "NAME_UNKNOWN");
    let r = nsadmin
        .bare(
            Method::DELETE,
            "/apis/image/v1/namespaces/team/imagestreams/Bad",
            &[],
        )
        .await;
    assert_eq!(r.code(), "NAME_INVALID");
    // A stream whose name holds a `/`.
    let r = nsadmin
        .bare(
            Method::DELETE,
            "/apis/image/v1/namespaces/team/imagestreams/tools/cli",
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);

    // A namespace that holds ImageStreams goes only with ?cascade=true.
    editor.push_image("team/app", "v2", "c").await;
    let r = root
        .bare(Method::DELETE, "/apis/admin/v1/namespaces/team", &[])
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{:?}", r.body);
    assert!(message(&r).contains("cascade"), "{}", message(&r));
    assert_eq!(
        editor.get("/v2/team/app/manifests/v2").await.status,
        StatusCode::OK
    );
    let r = root
        .bare(
            Method::DELETE,
            "/apis/admin/v1/namespaces/team?cascade=maybe",
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = nsadmin
        .bare(
            Method::DELETE,
            "/apis/admin/v1/namespaces/team?cascade=true",
            &[],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "a namespace's admin may not"
    );
    let r = root
        .bare(
            Method::DELETE,
            "/apis/admin/v1/namespaces/team?cascade=true",
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{:?}", r.body);
    assert_eq!(root.get(POLICY).await.status, StatusCode::NOT_FOUND);
    let r = root.get("/v2/team/app/manifests/v2").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}
