//! The Image API (`/apis/image/v1`) in process: ImageStreams, tag history,
//! image metadata (image manifests and indexes), the repository list, and
//! who may see what.

mod common;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use common::{with_access_control, Client, Reply, PASSWORD};
use registry_api::{AuthConfig, Registry};
use registry_auth::{AuthStore, ClusterRole, MemoryAuthStore, PasswordHasher, Role, SigningKey};
use registry_core::{media_type, Digest};
use serde_json::{json, Value};

const API: &str = "/apis/image/v1";

fn basic(user: &str) -> String {
    common::basic(user, PASSWORD)
}

async fn get_as(client: &Client, auth: Option<&str>, uri: &str) -> Reply {
    let mut headers = vec![("host", "registry.test:5000")];
    if let Some(a) = auth {
        headers.push(("authorization", a));
    }
    client.bare(Method::GET, uri, &headers).await
}

/// PUTs a manifest by `reference` as `auth` (or anonymously).
async fn put_manifest(
    client: &Client,
    auth: Option<&str>,
    repo: &str,
    reference: &str,
    content_type: &str,
    bytes: &[u8],
) -> Digest {
    let mut headers = vec![("content-type", content_type)];
    if let Some(a) = auth {
        headers.push(("authorization", a));
    }
    let r = client
        .call(
            Method::PUT,
            &format!("/v2/{repo}/manifests/{reference}"),
            &headers,
            bytes.to_vec(),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    Digest::sha256_of(bytes)
}

/// An OCI image with a full config; returns the manifest bytes and digest.
async fn push_platform_image(client: &Client, repo: &str, arch: &str) -> (Vec<u8>, Digest) {
    let config = json!({
        "architecture": arch, "os": "linux", "variant": (arch == "arm64").then_some("v8"),
        "created": "2024-05-01T10:00:00Z", "author": "builder@example",
        "config": {"Labels": {"org.opencontainers.image.title": "app"}},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [{"created_by": "COPY app /app"}, {"created_by": "CMD [\"/app\"]", "empty_layer": true}],
    })
    .to_string();
    let config_digest = client.push_blob(repo, config.as_bytes()).await;
    let layer = format!("layer for {arch}");
    let layer_digest = client.push_blob(repo, layer.as_bytes()).await;
    let manifest = common::image_manifest(
        &config_digest,
        config.len(),
        &layer_digest,
        layer.len(),
        None,
    );
    let digest = Digest::sha256_of(&manifest);
    (manifest, digest)
}

struct World {
    /// No access control: seeds data (same stores as `client`).
    open: Client,
    /// Access control on.
    client: Client,
}

/// Users: root (cluster-admin), viewer (registry-viewer in `team`), nobody
/// (no bindings). `pub` is public (anonymous viewer); `secret` is bound to
/// nobody but root.
async fn world() -> World {
    let open = Registry::in_memory();
    let roles = [
        ("team", Role::Viewer, "viewer"),
        ("pub", Role::Viewer, "system:anonymous"),
    ];
    let cluster = [(ClusterRole::ClusterAdmin, "root")];
    let users = ["root", "viewer", "nobody"];
    let (registry, _) = with_access_control(open.clone(), &users, &roles, &cluster).await;
    World {
        open: Client::with(open),
        client: Client::with(registry),
    }
}

#[tokio::test]
async fn image_streams_of_a_namespace() {
    let c = Client::new();
    let (app_v1, _, _) = c.push_image("team/app", "v1", "a").await;
    let (app_v2, _, _) = c.push_image("team/app", "v2", "b").await;
    let (build, _, _) = c.push_image("team/tools/build", "latest", "c").await;
    c.push_image("other/app", "v1", "d").await;

    let r = get_as(&c, None, &format!("{API}/namespaces/team/imagestreams")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let list = r.json();
    assert_eq!(list["kind"], "ImageStreamList");
    assert_eq!(list["apiVersion"], "image/v1");
    assert_eq!(list["metadata"]["continue"], Value::Null);
    let items = list["items"].as_array().unwrap();
    let names: Vec<&str> = items
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["app", "tools/build"]);
    let app = &items[0];
    assert_eq!(app["kind"], "ImageStream");
    assert_eq!(app["metadata"]["namespace"], "team");
    assert!(app["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap()
        .ends_with('Z'));
    assert_eq!(app["status"]["repository"], "team/app");
    assert_eq!(
        app["status"]["dockerImageRepository"],
        "registry.test:5000/team/app"
    );
    let tags = app["status"]["tags"].as_array().unwrap();
    assert_eq!(tags.len(), 2);
    assert_eq!(tags[0]["tag"], "v1");
    assert_eq!(tags[0]["items"][0]["image"], app_v1.to_string());
    assert_eq!(
        tags[0]["items"][0]["dockerImageReference"],
        format!("registry.test:5000/team/app@{app_v1}")
    );
    assert_eq!(tags[1]["items"][0]["image"], app_v2.to_string());

    // One ImageStream, by a name with `/` in it.
    let r = get_as(
        &c,
        None,
        &format!("{API}/namespaces/team/imagestreams/tools/build"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let stream = r.json();
    assert_eq!(stream["metadata"]["name"], "tools/build");
    assert_eq!(stream["status"]["tags"][0]["tag"], "latest");
    assert_eq!(
        stream["status"]["tags"][0]["items"][0]["image"],
        build.to_string()
    );

    // Paging: n=1 names where the next page starts.
    let r = get_as(&c, None, &format!("{API}/namespaces/team/imagestreams?n=1")).await;
    assert_eq!(r.json()["items"].as_array().unwrap().len(), 1);
    assert_eq!(r.json()["metadata"]["continue"], "app");
    assert_eq!(
        r.header("link"),
        "</apis/image/v1/namespaces/team/imagestreams?n=1&last=app>; rel=\"next\""
    );
    let r = get_as(
        &c,
        None,
        &format!("{API}/namespaces/team/imagestreams?n=1&last=app"),
    )
    .await;
    assert_eq!(r.json()["items"][0]["metadata"]["name"], "tools/build");
    assert_eq!(r.header("link"), "");

    // Missing: ImageStream, namespace; malformed names.
    let r = get_as(
        &c,
        None,
        &format!("{API}/namespaces/team/imagestreams/nope"),
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "NAME_UNKNOWN")
    );
    let r = get_as(&c, None, &format!("{API}/namespaces/ghost/imagestreams")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "NAME_UNKNOWN")
    );
    let r = get_as(&c, None, &format!("{API}/namespaces/Team/imagestreams")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "NAME_INVALID")
    );
    let r = get_as(
        &c,
        None,
        &format!("{API}/namespaces/team/imagestreams/A%20B"),
    )
    .await;
    assert_eq!(r.code(), "NAME_INVALID");
}

#[tokio::test]
async fn tag_history_after_moves_and_a_delete() {
    let w = world().await;
    let root = basic("root");
    let (first, d1) = push_platform_image(&w.open, "team/app", "amd64").await;
    let (second, d2) = push_platform_image(&w.open, "team/app", "arm64").await;
    put_manifest(
        &w.client,
        Some(&root),
        "team/app",
        "v1",
        media_type::OCI_MANIFEST,
        &first,
    )
    .await;
    put_manifest(
        &w.open,
        None,
        "team/app",
        "v1",
        media_type::OCI_MANIFEST,
        &second,
    )
    .await;
    let uri = format!("{API}/namespaces/team/imagestreamtags/app:v1");

    let viewer = basic("viewer");
    let r = get_as(&w.client, Some(&viewer), &uri).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let t = r.json();
    assert_eq!(t["kind"], "ImageStreamTag");
    assert_eq!(t["metadata"]["name"], "app:v1");
    assert_eq!(t["metadata"]["namespace"], "team");
    assert_eq!(t["repository"], "team/app");
    assert_eq!(t["tag"], "v1");
    assert_eq!(t["image"], d2.to_string());
    assert_eq!(
        t["dockerImageReference"],
        format!("registry.test:5000/team/app@{d2}")
    );
    let history = t["history"].as_array().unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(history[0]["image"], d2.to_string());
    assert_eq!(history[0]["actor"], "system:anonymous");
    assert_eq!(history[1]["image"], d1.to_string());
    assert_eq!(history[1]["actor"], "root");
    assert_eq!(t["updated"], history[0]["created"]);
    assert_eq!(t["metadata"]["creationTimestamp"], history[1]["created"]);

    // Deleting the tag keeps its history, newest first.
    let r = w
        .client
        .bare(
            Method::DELETE,
            "/v2/team/app/manifests/v1",
            &[("authorization", &root)],
        )
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{:?}", r.body);
    let t = get_as(&w.client, Some(&viewer), &uri).await.json();
    assert_eq!(t["image"], Value::Null);
    assert_eq!(t["dockerImageReference"], Value::Null);
    let history = t["history"].as_array().unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[0]["image"], Value::Null);
    assert_eq!(history[0]["actor"], "root");
    assert_eq!(history[1]["image"], d2.to_string());
    // The deleted tag is gone from the ImageStream.
    let s = get_as(
        &w.client,
        Some(&viewer),
        &format!("{API}/namespaces/team/imagestreams/app"),
    )
    .await;
    assert_eq!(s.json()["status"]["tags"], json!([]));

    // A tag that never existed, a repository that does not, bad names.
    let r = get_as(
        &w.client,
        Some(&viewer),
        &format!("{API}/namespaces/team/imagestreamtags/app:v9"),
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
    );
    let r = get_as(
        &w.client,
        Some(&viewer),
        &format!("{API}/namespaces/team/imagestreamtags/nope:v1"),
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "NAME_UNKNOWN")
    );
    let r = get_as(
        &w.client,
        Some(&viewer),
        &format!("{API}/namespaces/team/imagestreamtags/app"),
    )
    .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "NAME_INVALID")
    );
    let r = get_as(
        &w.client,
        Some(&viewer),
        &format!("{API}/namespaces/team/imagestreamtags/app:-x"),
    )
    .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn image_metadata_of_a_manifest() {
    let c = Client::new();
    let (bytes, digest) = push_platform_image(&c, "team/app", "arm64").await;
    put_manifest(&c, None, "team/app", "v1", media_type::OCI_MANIFEST, &bytes).await;
    put_manifest(
        &c,
        None,
        "team/app",
        "stable",
        media_type::OCI_MANIFEST,
        &bytes,
    )
    .await;
    // The same image in a second repository, untagged.
    for blob in common_blobs(&bytes) {
        let r = c
            .bare(
                Method::POST,
                &format!("/v2/team/mirror/blobs/uploads/?mount={blob}&from=team/app"),
                &[],
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{:?}", r.body);
    }
    put_manifest(
        &c,
        None,
        "team/mirror",
        &digest.to_string(),
        media_type::OCI_MANIFEST,
        &bytes,
    )
    .await;

    let r = get_as(&c, None, &format!("{API}/images/{digest}")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let i = r.json();
    assert_eq!(i["kind"], "Image");
    assert_eq!(i["metadata"]["name"], digest.to_string());
    assert_eq!(i["digest"], digest.to_string());
    assert_eq!(i["mediaType"], media_type::OCI_MANIFEST);
    assert_eq!(i["size"], bytes.len());
    let repos = i["repositories"].as_array().unwrap();
    assert_eq!(repos.len(), 2);
    assert_eq!(repos[0]["name"], "team/app");
    assert_eq!(repos[0]["tags"], json!(["stable", "v1"]));
    assert_eq!(repos[1]["name"], "team/mirror");
    assert_eq!(repos[1]["tags"], json!([]));
    assert_eq!(i["config"]["mediaType"], media_type::OCI_CONFIG);
    assert_eq!(i["layers"].as_array().unwrap().len(), 1);
    assert_eq!(i["layers"][0]["mediaType"], media_type::OCI_LAYER_GZIP);
    assert_eq!(i["layers"][0]["size"], "layer for arm64".len());
    assert_eq!(i["manifests"], json!([]));
    let config = &i["imageConfig"];
    assert_eq!(config["os"], "linux");
    assert_eq!(config["architecture"], "arm64");
    assert_eq!(config["variant"], "v8");
    assert_eq!(config["created"], "2024-05-01T10:00:00Z");
    assert_eq!(config["author"], "builder@example");
    assert_eq!(config["labels"]["org.opencontainers.image.title"], "app");
    assert_eq!(config["history"][0]["created_by"], "COPY app /app");
    assert_eq!(config["history"][1]["empty_layer"], true);

    let unknown = Digest::sha256_of(b"nothing");
    let r = get_as(&c, None, &format!("{API}/images/{unknown}")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
    );
    let r = get_as(&c, None, &format!("{API}/images/sha256:nothex")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::BAD_REQUEST, "DIGEST_INVALID")
    );
}

/// Config and layer digests of an image manifest.
fn common_blobs(manifest: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(manifest).unwrap();
    let mut blobs = vec![v["config"]["digest"].as_str().unwrap().to_owned()];
    blobs.extend(
        v["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["digest"].as_str().unwrap().to_owned()),
    );
    blobs
}

#[tokio::test]
async fn image_metadata_of_an_index() {
    let c = Client::new();
    let mut children = Vec::new();
    for arch in ["amd64", "arm64"] {
        let (bytes, digest) = push_platform_image(&c, "team/multi", arch).await;
        put_manifest(
            &c,
            None,
            "team/multi",
            &digest.to_string(),
            media_type::OCI_MANIFEST,
            &bytes,
        )
        .await;
        let mut platform = json!({"os": "linux", "architecture": arch});
        if arch == "arm64" {
            platform["variant"] = json!("v8");
        }
        children.push(json!({
            "mediaType": media_type::OCI_MANIFEST, "digest": digest, "size": bytes.len(),
            "platform": platform,
        }));
    }
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": media_type::OCI_INDEX, "manifests": children,
        "annotations": {"org.example.release": "1.0"},
    }))
    .unwrap();
    let digest = put_manifest(&c, None, "team/multi", "1.0", media_type::OCI_INDEX, &index).await;

    let r = get_as(&c, None, &format!("{API}/images/{digest}")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let i = r.json();
    assert_eq!(i["mediaType"], media_type::OCI_INDEX);
    assert_eq!(i["config"], Value::Null);
    assert_eq!(i["imageConfig"], Value::Null);
    assert_eq!(i["layers"], json!([]));
    assert_eq!(i["annotations"]["org.example.release"], "1.0");
    assert_eq!(i["repositories"][0]["tags"], json!(["1.0"]));
    let manifests = i["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 2);
    assert_eq!(manifests[0]["platform"]["architecture"], "amd64");
    assert_eq!(
        manifests[1]["platform"],
        json!({"os": "linux", "architecture": "arm64", "variant": "v8"})
    );
    assert_eq!(manifests[1]["digest"], children[1]["digest"]);
}

#[tokio::test]
async fn who_may_see_image_streams() {
    let w = world().await;
    w.open.push_image("team/app", "v1", "a").await;
    w.open.push_image("secret/app", "v1", "b").await;
    w.open.push_image("pub/open", "v1", "c").await;
    let list = format!("{API}/namespaces/team/imagestreams");
    let show = format!("{API}/namespaces/team/imagestreams/app");
    let tag = format!("{API}/namespaces/team/imagestreamtags/app:v1");
    let (viewer, nobody, root) = (basic("viewer"), basic("nobody"), basic("root"));
    for uri in [&list, &show, &tag] {
        let r = get_as(&w.client, None, uri).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::UNAUTHORIZED, "UNAUTHORIZED"),
            "{uri}"
        );
        assert!(
            r.header("www-authenticate").starts_with("Bearer realm="),
            "{uri}"
        );
        let r = get_as(&w.client, Some(&nobody), uri).await;
        assert_eq!(
            (r.status, r.code().as_str()),
            (StatusCode::FORBIDDEN, "DENIED"),
            "{uri}"
        );
        for who in [&viewer, &root] {
            assert_eq!(
                get_as(&w.client, Some(who), uri).await.status,
                StatusCode::OK,
                "{uri}"
            );
        }
    }
    // The viewer of `team` sees nothing of `secret`, not even whether it exists.
    for uri in [
        format!("{API}/namespaces/secret/imagestreams"),
        format!("{API}/namespaces/secret/imagestreams/app"),
        format!("{API}/namespaces/secret/imagestreams/ghost"),
    ] {
        let r = get_as(&w.client, Some(&viewer), &uri).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{uri}");
    }
    // A public namespace is readable anonymously.
    let r = get_as(
        &w.client,
        None,
        &format!("{API}/namespaces/pub/imagestreams"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["items"][0]["metadata"]["name"], "open");
    // Wrong credentials are a 401 even where anonymous callers may read.
    let r = get_as(
        &w.client,
        Some("Basic Ym9iOm5vcGU="),
        &format!("{API}/namespaces/pub/imagestreams"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn hidden_repositories_stay_hidden() {
    let w = world().await;
    // One image in a visible and a hidden repository, one only hidden.
    let (shared, _, _) = w.open.push_image("team/app", "v1", "shared").await;
    w.open.push_image("secret/app", "v1", "shared").await;
    let (hidden, _, _) = w.open.push_image("secret/app", "v2", "hidden").await;
    w.open.push_image("pub/open", "v1", "public").await;
    let (viewer, nobody, root) = (basic("viewer"), basic("nobody"), basic("root"));

    let r = get_as(&w.client, Some(&viewer), &format!("{API}/images/{shared}")).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let image = r.json();
    let repos: Vec<&str> = image["repositories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(repos, ["team/app"]);
    let r = get_as(&w.client, Some(&root), &format!("{API}/images/{shared}")).await;
    assert_eq!(r.json()["repositories"].as_array().unwrap().len(), 2);

    let r = get_as(&w.client, Some(&viewer), &format!("{API}/images/{hidden}")).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN")
    );
    let r = get_as(&w.client, None, &format!("{API}/images/{hidden}")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.header("www-authenticate").starts_with("Bearer "));

    // The repository list: what each caller may pull, public ones included.
    let names = |r: &Reply| -> Vec<String> {
        r.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let uri = format!("{API}/repositories");
    let r = get_as(&w.client, Some(&viewer), &uri).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    assert_eq!(r.json()["kind"], "RepositoryList");
    assert_eq!(names(&r), ["pub/open", "team/app"]);
    assert_eq!(r.json()["items"][1]["namespace"], "team");
    assert_eq!(r.json()["items"][1]["imageStream"], "app");
    assert!(r.json()["items"][1]["created"].is_string());
    assert_eq!(names(&get_as(&w.client, None, &uri).await), ["pub/open"]);
    assert_eq!(
        names(&get_as(&w.client, Some(&nobody), &uri).await),
        ["pub/open"]
    );
    let all = get_as(&w.client, Some(&root), &uri).await;
    assert_eq!(names(&all), ["pub/open", "secret/app", "team/app"]);

    // Paging with n/last, as in the catalog.
    let r = get_as(&w.client, Some(&root), &format!("{uri}?n=2")).await;
    assert_eq!(names(&r), ["pub/open", "secret/app"]);
    assert_eq!(r.json()["metadata"]["continue"], "secret/app");
    assert_eq!(
        r.header("link"),
        "</apis/image/v1/repositories?n=2&last=secret%2Fapp>; rel=\"next\""
    );
    let r = get_as(
        &w.client,
        Some(&root),
        &format!("{uri}?n=2&last=secret%2Fapp"),
    )
    .await;
    assert_eq!(names(&r), ["team/app"]);
    assert_eq!(r.json()["metadata"]["continue"], Value::Null);
    let r = get_as(
        &w.client,
        Some(&viewer),
        &format!("{uri}?n=1&last=pub/open"),
    )
    .await;
    assert_eq!(names(&r), ["team/app"]);
    let r = get_as(&w.client, Some(&viewer), &format!("{uri}?n=x")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn anonymous_callers_who_may_pull_nothing_are_challenged() {
    // No public namespace at all here.
    let store = Arc::new(MemoryAuthStore::new());
    let mut config = AuthConfig::new(SigningKey::generate().unwrap())
        .with_store(store as Arc<dyn AuthStore>)
        .with_public_url("https://images.example.com/");
    config.hasher = PasswordHasher::insecure_fast();
    config.service = "registry.test".into();
    let registry = Registry::builder(registry_storage::Stores::in_memory())
        .auth(config)
        .build()
        .await
        .unwrap();
    let c = Client::with(registry);
    let r = get_as(&c, None, &format!("{API}/repositories")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r
        .header("www-authenticate")
        .starts_with("Bearer realm=\"https://images.example.com/v2/token\""));
}
