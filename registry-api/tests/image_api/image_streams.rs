//! ImageStreams of a namespace, and the tag history behind an ImageStreamTag.

use axum::http::{Method, StatusCode};
use registry_core::media_type;
use serde_json::{json, Value};

use crate::common::Client;
use crate::support::{basic, get_as, push_platform_image, put_manifest, world, API};

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
