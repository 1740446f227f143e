//! A full round trip with access control off: push, pull, paging, the Image API, deletes.

use bytes::Bytes;
use futures::StreamExt;
use registry_api::client::{Client, ClientError, Page};
use registry_api::{router, Registry};
use registry_core::{media_type, Digest, Reference, Tag};

use crate::support::{push_image, repo, serve, tag};

#[tokio::test]
async fn round_trip_without_access_control() {
    let url = serve(router(&Registry::in_memory())).await;
    let client = Client::builder(&url).build().unwrap();
    client.ping().await.unwrap();
    let app = repo("team/app");
    let (d1, m1) = push_image(&client, &app, "1").await;
    push_image(&client, &app, "2").await;
    push_image(&client, &repo("team/tools/build"), "3").await;

    let pulled = client.get_manifest(&app, &tag("1")).await.unwrap();
    assert_eq!(
        (pulled.digest.clone(), pulled.bytes.to_vec()),
        (d1.clone(), m1)
    );
    assert_eq!(pulled.media_type, media_type::OCI_MANIFEST);
    let by_digest = client
        .get_manifest(&app, &Reference::Digest(d1.clone()))
        .await
        .unwrap();
    assert_eq!(by_digest, pulled);

    let layer: registry_core::Manifest =
        registry_core::Manifest::parse(Some(media_type::OCI_MANIFEST), &pulled.bytes).unwrap();
    let layer = &layer.layers[0];
    let mut blob = client.pull_blob(&app, &layer.digest).await.unwrap();
    assert_eq!(blob.size(), Some(3 << 20));
    let mut read = 0;
    while let Some(chunk) = blob.next().await {
        read += chunk.unwrap().len();
    }
    assert_eq!(read, 3 << 20);

    // Paging follows the Link header.
    let first = client.tags(&app, &Page::first().size(1)).await.unwrap();
    assert_eq!(first.page.tags, vec!["1".parse::<Tag>().unwrap()]);
    assert_eq!(first.next.as_deref(), Some("1"));
    let all: Vec<String> = client
        .all_tags(&app)
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(all, ["1", "2"]);
    let page = client.catalog(&Page::first().size(1)).await.unwrap();
    assert_eq!(page.page.repositories, vec![app.clone()]);
    assert_eq!(
        client.all_repositories().await.unwrap(),
        vec![app.clone(), repo("team/tools/build")]
    );
    let referrers = client
        .referrers(&app, &d1, None, &Page::first())
        .await
        .unwrap();
    assert!(referrers.page.manifests.is_empty());

    // The Image API, paged by the helpers.
    let ns = "team".parse().unwrap();
    let streams = client.all_image_streams(&ns).await.unwrap();
    assert_eq!(streams.items.len(), 2);
    let stream = client.image_stream_all_tags(&app).await.unwrap();
    assert_eq!(stream.status.tags.len(), 2);
    let history = client
        .image_stream_tag_history(&app, &"1".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(history.image, Some(d1.clone()));
    assert_eq!(history.history[0].actor, "system:anonymous");
    let image = client.image(&d1).await.unwrap();
    assert_eq!(image.repositories[0].name, app);
    assert_eq!(
        client.all_visible_repositories().await.unwrap().items.len(),
        2
    );

    // Deleting the tag, then the manifest.
    client.delete_manifest(&app, &tag("1")).await.unwrap();
    client
        .delete_manifest(&app, &Reference::Digest(d1.clone()))
        .await
        .unwrap();
    let gone = client.get_manifest(&app, &Reference::Digest(d1)).await;
    assert!(
        matches!(&gone, Err(ClientError::NotFound { code, .. }) if code == "MANIFEST_UNKNOWN"),
        "{gone:?}"
    );
    // A digest reference that does not match the bytes is refused before sending.
    let wrong = Reference::Digest(Digest::sha256_of(b"other"));
    let refused = client
        .put_manifest(
            &app,
            &wrong,
            media_type::OCI_MANIFEST,
            Bytes::from_static(b"{}"),
        )
        .await;
    assert!(matches!(refused, Err(ClientError::DigestMismatch { .. })));
    // The admin API needs access control.
    assert!(matches!(
        client.whoami().await,
        Err(ClientError::NotFound { .. })
    ));
}
