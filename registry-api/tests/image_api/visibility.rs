//! Who may see what: ImageStreams, images in hidden repositories, the repository list.

use std::sync::Arc;

use axum::http::StatusCode;
use registry_api::{AuthConfig, Registry};
use registry_auth::{AuthStore, MemoryAuthStore, PasswordHasher, SigningKey};
use serde_json::Value;

use crate::common::{Client, Reply};
use crate::support::{basic, get_as, world, API};

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
