//! End-to-end test of the registry with a client nobody here wrote.
//!
//! Each test starts the real HTTP service in-process on an ephemeral loopback
//! port, over the embedded default stores (`Stores::data_dir`:
//! filesystem blobs + SQLite metadata in a temp dir), and drives it with the
//! `oci-client` crate over plain HTTP:
//!
//! - push / pull of an image with a multi-MiB layer (chunked `PATCH` uploads),
//!   manifest digests, ranged blob reads, tag listing and the catalog;
//! - a streamed chunked blob upload and cross-repository mounts;
//! - an OCI image index over two platform images;
//! - artifacts with a `subject` and the referrers API.

mod index_and_referrers;
mod support;

use bytes::Bytes;
use futures::TryStreamExt;
use oci_client::client::{BlobResponse, ImageLayer};
use oci_client::manifest::{
    OciDescriptor, OciImageManifest, IMAGE_CONFIG_MEDIA_TYPE, IMAGE_LAYER_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};

use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_pull_tags_and_catalog() {
    let server = TestServer::start().await;
    let client = client();
    let v1 = server.tagged("ns/app", "v1");

    let small = ImageLayer::oci_v1(b"small layer: hello registry\n".to_vec(), None);
    let big = ImageLayer::oci_v1(generated_bytes(1, BIG_LAYER_SIZE), None);
    server.take_log();
    let pushed = push_image(&client, &v1, "amd64", vec![small, big]).await;
    // Config and small layer: one PATCH each; the big layer: 4 MiB + the rest.
    assert_eq!(
        patches(&server.take_log()),
        4,
        "push should upload in chunked PATCHes (no monolithic fallback)"
    );

    // Manifest digest: the Location of the push, the HEAD digest and the
    // digest of the raw bytes served all agree.
    let head_digest = client
        .fetch_manifest_digest(&v1, &AUTH)
        .await
        .expect("HEAD of ns/app:v1 (fetch_manifest_digest)");
    assert_eq!(
        head_digest, pushed.digest,
        "HEAD Docker-Content-Digest differs from the push's Location"
    );
    let (raw, raw_digest) = client
        .pull_manifest_raw(&v1, &AUTH, &[OCI_IMAGE_MEDIA_TYPE])
        .await
        .expect("GET of ns/app:v1 manifest");
    assert_eq!(
        raw_digest, pushed.digest,
        "GET digest differs from the push's"
    );
    assert_eq!(
        sha256(&raw),
        pushed.digest,
        "served manifest bytes do not hash to their digest"
    );
    // The same manifest by digest.
    let (raw_by_digest, _) = client
        .pull_manifest_raw(
            &server.by_digest("ns/app", &pushed.digest),
            &AUTH,
            &[OCI_IMAGE_MEDIA_TYPE],
        )
        .await
        .expect("GET of the manifest by digest");
    assert_eq!(raw_by_digest, raw, "manifest by digest differs from by tag");

    // Full pull: config and both layers byte for byte.
    let image = client
        .pull(&v1, &AUTH, vec![IMAGE_LAYER_MEDIA_TYPE])
        .await
        .expect("pull of ns/app:v1");
    assert_eq!(
        image.digest.as_deref(),
        Some(pushed.digest.as_str()),
        "pulled digest"
    );
    assert_eq!(image.config.data, pushed.config, "pulled config bytes");
    assert_eq!(image.layers.len(), 2, "pulled layer count");
    // oci-client downloads layers concurrently and returns them in completion
    // order, so match them to what was sent by digest.
    for (i, sent) in pushed.layers.iter().enumerate() {
        let digest = sent.sha256_digest();
        let got = image
            .layers
            .iter()
            .find(|l| l.sha256_digest() == digest)
            .unwrap_or_else(|| panic!("layer {i} ({digest}) missing from the pull"));
        assert_eq!(got.data.len(), sent.data.len(), "layer {i} length");
        assert_eq!(got.media_type, sent.media_type, "layer {i} media type");
    }
    let manifest_layers: Vec<String> = image
        .manifest
        .as_ref()
        .expect("pulled manifest")
        .layers
        .iter()
        .map(|d| d.digest.clone())
        .collect();
    let sent_layers: Vec<String> = pushed.layers.iter().map(|l| l.sha256_digest()).collect();
    assert_eq!(manifest_layers, sent_layers, "layer order in the manifest");

    // Blob existence, and layer authorization: another repository cannot see it.
    let big_digest = pushed.layers[1].sha256_digest();
    assert!(
        client
            .blob_exists(&v1, &big_digest)
            .await
            .expect("HEAD blob"),
        "big layer missing in ns/app"
    );
    let missing = sha256(b"never pushed");
    assert!(
        !client.blob_exists(&v1, &missing).await.expect("HEAD blob"),
        "unknown blob reported present"
    );

    // Ranged read in the middle of the big layer.
    let descriptor = &image.manifest.as_ref().expect("pulled manifest").layers[1];
    let (offset, length) = (3 * MIB as u64 + 17, 70_000u64);
    match client
        .pull_blob_stream_partial(&v1, descriptor, offset, Some(length))
        .await
        .expect("ranged GET of the big layer")
    {
        BlobResponse::Partial(stream) => {
            assert_eq!(
                stream.content_length,
                Some(length),
                "Content-Length of a range"
            );
            let got: Vec<u8> = stream
                .try_fold(Vec::new(), |mut acc, b| async move {
                    acc.extend_from_slice(&b);
                    Ok(acc)
                })
                .await
                .expect("reading the ranged body");
            let start = offset as usize;
            assert!(
                got == pushed.layers[1].data[start..start + length as usize],
                "ranged bytes differ"
            );
        }
        BlobResponse::Full(_) => panic!("server ignored Range (200 instead of 206)"),
    }

    // A second tag on the same manifest, then tag listing with pagination.
    let v2 = server.tagged("ns/app", "v2");
    let manifest: OciImageManifest = image.manifest.clone().expect("manifest");
    client
        .push_manifest(&v2, &manifest.into())
        .await
        .expect("re-tagging as v2");
    let tags = client
        .list_tags(&v1, &AUTH, None, None)
        .await
        .expect("tags/list");
    assert_eq!(tags.name, "ns/app", "tags/list name");
    assert_eq!(tags.tags, ["v1", "v2"], "tags/list");
    let page = client
        .list_tags(&v1, &AUTH, Some(1), None)
        .await
        .expect("tags/list?n=1");
    assert_eq!(page.tags, ["v1"], "first page of n=1");
    let page = client
        .list_tags(&v1, &AUTH, Some(1), Some("v1"))
        .await
        .expect("tags/list?n=1&last=v1");
    assert_eq!(page.tags, ["v2"], "second page of n=1");

    // A repository with a deeper name, then the catalog.
    let deep = server.tagged("ns/other/deep", "1.0");
    let deep_pushed = push_image(
        &client,
        &deep,
        "amd64",
        vec![ImageLayer::oci_v1(generated_bytes(2, 10_000), None)],
    )
    .await;
    assert!(
        !client
            .blob_exists(&deep, &big_digest)
            .await
            .expect("HEAD blob"),
        "ns/other/deep serves a blob only ns/app holds (layer authorization)"
    );
    let deep_image = client
        .pull(&deep, &AUTH, vec![IMAGE_LAYER_MEDIA_TYPE])
        .await
        .expect("pull of ns/other/deep:1.0");
    assert_eq!(deep_image.digest, Some(deep_pushed.digest), "deep digest");

    let catalog = client
        .catalog(&v1, &AUTH, None, None)
        .await
        .expect("_catalog");
    assert_eq!(catalog.repositories, ["ns/app", "ns/other/deep"], "catalog");
    let page = client
        .catalog(&v1, &AUTH, Some(1), Some("ns/app"))
        .await
        .expect("_catalog?n=1&last=ns/app");
    assert_eq!(
        page.repositories,
        ["ns/other/deep"],
        "catalog page after ns/app"
    );
}

// ---------------------------------------------------------------------------
// 2 + 3. streamed chunked upload, cross-repository mount
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_and_cross_repository_mount() {
    let server = TestServer::start().await;
    let client = client();
    let src = server.tagged("ns/src", "unused");
    let dst = server.tagged("ns/dst", "copied");

    // Streamed upload: oci-client sends one PATCH per stream item (each
    // with a Content-Range continuing the last), then PUT ?digest=.
    let pieces: Vec<Bytes> = [256 * 1024, 1, 700 * 1024 + 3, 3 * 1024]
        .iter()
        .enumerate()
        .map(|(i, &n)| Bytes::from(generated_bytes(10 + i as u64, n)))
        .collect();
    let whole: Vec<u8> = pieces.concat();
    let expected = sha256(&whole);
    let stream = futures::stream::iter(pieces.into_iter().map(Ok));
    server.take_log();
    let pushed = client
        .push_blob_stream_chunked(&src, stream)
        .await
        .expect("push_blob_stream_chunked to ns/src");
    assert_eq!(patches(&server.take_log()), 4, "one PATCH per stream item");
    assert_eq!(pushed.blob_digest, expected, "digest of the chunked upload");
    assert_eq!(
        pushed.size,
        whole.len() as u64,
        "size of the chunked upload"
    );
    assert!(
        pushed
            .blob_url
            .ends_with(&format!("/v2/ns/src/blobs/{expected}")),
        "Location after commit should name the blob, got {}",
        pushed.blob_url
    );
    assert!(
        client.blob_exists(&src, &expected).await.expect("HEAD"),
        "chunked blob missing in ns/src"
    );
    assert!(
        read_blob(&client, &src, &expected).await == whole,
        "chunked blob bytes differ"
    );
    assert!(
        !client.blob_exists(&dst, &expected).await.expect("HEAD"),
        "blob visible in ns/dst before any mount"
    );

    // A config blob, pushed with push_blob (POST, PATCH, PUT).
    let config = image_config("amd64", "mounted");
    let config_digest = config.sha256_digest();
    client
        .push_blob(&src, config.data.clone(), &config_digest)
        .await
        .expect("push_blob of the config to ns/src");

    // Mount both into ns/dst.
    for digest in [&expected, &config_digest] {
        client
            .mount_blob(&dst, &src, digest)
            .await
            .unwrap_or_else(|e| panic!("mount of {digest} from ns/src into ns/dst: {e:?}"));
        assert!(
            client.blob_exists(&dst, digest).await.expect("HEAD"),
            "mounted blob {digest} missing in ns/dst"
        );
    }
    assert!(
        read_blob(&client, &dst, &expected).await == whole,
        "mounted blob bytes differ"
    );

    // A manifest in ns/dst built only from mounted blobs is accepted and pulls.
    let manifest = OciImageManifest {
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_owned()),
        config: OciDescriptor {
            media_type: IMAGE_CONFIG_MEDIA_TYPE.to_owned(),
            digest: config_digest.clone(),
            size: config.data.len() as i64,
            ..Default::default()
        },
        layers: vec![OciDescriptor {
            media_type: IMAGE_LAYER_MEDIA_TYPE.to_owned(),
            digest: expected.clone(),
            size: whole.len() as i64,
            ..Default::default()
        }],
        ..Default::default()
    };
    client
        .push_manifest(&dst, &manifest.into())
        .await
        .expect("manifest of mounted blobs in ns/dst");
    let image = client
        .pull(&dst, &AUTH, vec![IMAGE_LAYER_MEDIA_TYPE])
        .await
        .expect("pull of ns/dst:copied");
    assert!(
        image.layers[0].data == whole,
        "pulled mounted layer differs"
    );
    assert_eq!(image.config.data, config.data, "pulled mounted config");

    // Mounting a blob the source does not hold is refused: the registry
    // falls back to opening an upload session (202), which oci-client
    // reports as an error, and nothing becomes visible.
    let absent = sha256(b"not in ns/src");
    let result = client.mount_blob(&dst, &src, &absent).await;
    assert!(
        result.is_err(),
        "mount of a blob the source lacks should not succeed"
    );
    assert!(
        !client.blob_exists(&dst, &absent).await.expect("HEAD"),
        "failed mount made a blob visible"
    );
}

// ---------------------------------------------------------------------------
// 4. image index over two platform images
// ---------------------------------------------------------------------------
