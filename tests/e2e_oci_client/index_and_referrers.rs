//! An image index over two platforms, and artifacts found through the referrers API.

use axum::http::HeaderValue;
use oci_client::client::ImageLayer;
use oci_client::config::{Architecture, Os};
use oci_client::manifest::{
    ImageIndexEntry, OciDescriptor, OciImageIndex, OciImageManifest, OciManifest, Platform,
    IMAGE_LAYER_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE,
};

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_index_with_two_platforms() {
    let server = TestServer::start().await;
    let client = client();
    let repo = "ns/multi";

    let mut children = Vec::new();
    for (i, (arch, architecture)) in [
        ("amd64", Architecture::Amd64),
        ("arm64", Architecture::ARM64),
    ]
    .into_iter()
    .enumerate()
    {
        let reference = server.tagged(repo, &format!("linux-{arch}"));
        let layer = ImageLayer::oci_v1(generated_bytes(20 + i as u64, 50_000 + i), None);
        let pushed = push_image(&client, &reference, arch, vec![layer]).await;
        let (raw, _) = client
            .pull_manifest_raw(
                &server.by_digest(repo, &pushed.digest),
                &AUTH,
                &[OCI_IMAGE_MEDIA_TYPE],
            )
            .await
            .unwrap_or_else(|e| panic!("GET of the {arch} child by digest: {e:?}"));
        children.push((architecture, pushed, raw.len()));
    }

    let index = OciImageIndex {
        schema_version: 2,
        media_type: Some(OCI_IMAGE_INDEX_MEDIA_TYPE.to_owned()),
        manifests: children
            .iter()
            .map(|(architecture, pushed, size)| ImageIndexEntry {
                media_type: OCI_IMAGE_MEDIA_TYPE.to_owned(),
                digest: pushed.digest.clone(),
                size: *size as i64,
                platform: Some(Platform {
                    architecture: architecture.clone(),
                    os: Os::Linux,
                    os_version: None,
                    os_features: None,
                    variant: None,
                    features: None,
                }),
                annotations: None,
                artifact_type: None,
            })
            .collect(),
        artifact_type: None,
        annotations: None,
    };
    let latest = server.tagged(repo, "latest");
    let url = client
        .push_manifest_list(&latest, &AUTH, index.clone())
        .await
        .expect("push of the image index to ns/multi:latest");
    let index_digest = digest_of_manifest_url(&url);

    // Raw index: exact bytes, right digest, right media type negotiation.
    let (raw, digest) = client
        .pull_manifest_raw(&latest, &AUTH, &[OCI_IMAGE_INDEX_MEDIA_TYPE])
        .await
        .expect("GET of the index");
    assert_eq!(digest, index_digest, "index digest");
    assert_eq!(sha256(&raw), index_digest, "index bytes hash");

    let OciManifest::ImageIndex(got) = client
        .pull_manifest(&latest, &AUTH)
        .await
        .expect("pull_manifest of the index")
        .0
    else {
        panic!("ns/multi:latest did not come back as an image index");
    };
    assert_eq!(got.manifests.len(), 2, "index entries");
    for (entry, (architecture, pushed, size)) in got.manifests.iter().zip(&children) {
        assert_eq!(entry.digest, pushed.digest, "index entry digest");
        assert_eq!(
            entry.platform.as_ref().map(|p| &p.architecture),
            Some(architecture),
            "index entry platform"
        );
        // Every child resolves by digest to bytes of the declared size and digest.
        let (child, child_digest) = client
            .pull_manifest_raw(
                &server.by_digest(repo, &entry.digest),
                &AUTH,
                &[OCI_IMAGE_MEDIA_TYPE],
            )
            .await
            .unwrap_or_else(|e| panic!("child {} does not resolve: {e:?}", entry.digest));
        assert_eq!(child_digest, entry.digest, "child digest");
        assert_eq!(sha256(&child), entry.digest, "child bytes hash");
        assert_eq!(child.len(), *size, "child size");
    }

    // The client's platform resolution through the index, then a full pull.
    let (_, resolved) = client
        .pull_image_manifest(&latest, &AUTH)
        .await
        .expect("platform resolution through the index");
    assert_eq!(
        resolved, children[0].1.digest,
        "linux/amd64 should resolve to the amd64 child"
    );
    let image = client
        .pull(&latest, &AUTH, vec![IMAGE_LAYER_MEDIA_TYPE])
        .await
        .expect("pull through the index");
    assert!(
        image.layers[0].data == children[0].1.layers[0].data,
        "layer pulled through the index differs from the amd64 layer"
    );

    // An index naming a manifest the repository lacks is refused.
    let mut broken = index;
    broken.manifests[1].digest = sha256(b"no such manifest");
    let result = client
        .push_manifest_list(&server.tagged(repo, "broken"), &AUTH, broken)
        .await;
    assert!(
        result.is_err(),
        "index with an unknown child was accepted: {result:?}"
    );
    let tags = client
        .list_tags(&latest, &AUTH, None, None)
        .await
        .expect("tags/list");
    assert_eq!(
        tags.tags,
        ["latest", "linux-amd64", "linux-arm64"],
        "tags after the refused index"
    );
}

// ---------------------------------------------------------------------------
// 5. artifacts with a subject, referrers API
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_list_artifacts_by_subject() {
    let server = TestServer::start().await;
    let client = client();
    let repo = "ns/app";
    let v1 = server.tagged(repo, "v1");
    let subject = push_image(
        &client,
        &v1,
        "amd64",
        vec![ImageLayer::oci_v1(generated_bytes(30, 20_000), None)],
    )
    .await;
    let (subject_raw, _) = client
        .pull_manifest_raw(&v1, &AUTH, &[OCI_IMAGE_MEDIA_TYPE])
        .await
        .expect("GET of the subject");
    let subject_descriptor = OciDescriptor {
        media_type: OCI_IMAGE_MEDIA_TYPE.to_owned(),
        digest: subject.digest.clone(),
        size: subject_raw.len() as i64,
        ..Default::default()
    };

    // Nothing refers to it yet.
    let subject_ref = server.by_digest(repo, &subject.digest);
    let none = client
        .pull_referrers(&subject_ref, None)
        .await
        .expect("referrers before any artifact");
    assert!(
        none.manifests.is_empty(),
        "referrers before any artifact: {:?}",
        none.manifests
    );

    // The empty config and an SBOM blob.
    let empty_digest = sha256(b"{}");
    client
        .push_blob(&v1, &b"{}"[..], &empty_digest)
        .await
        .expect("push of the empty config blob");
    let sbom = br#"{"spdxVersion":"SPDX-2.3","name":"ns/app"}"#.to_vec();
    let sbom_digest = sha256(&sbom);
    client
        .push_blob(&v1, sbom.clone(), &sbom_digest)
        .await
        .expect("push of the SBOM blob");
    let empty_config = OciDescriptor {
        media_type: EMPTY_MEDIA_TYPE.to_owned(),
        digest: empty_digest.clone(),
        size: 2,
        ..Default::default()
    };

    // Artifact 1: built with oci-client's manifest type, pushed under a tag.
    let sbom_manifest = OciImageManifest {
        media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_owned()),
        artifact_type: Some(SBOM_TYPE.to_owned()),
        config: empty_config,
        layers: vec![OciDescriptor {
            media_type: "application/spdx+json".to_owned(),
            digest: sbom_digest.clone(),
            size: sbom.len() as i64,
            ..Default::default()
        }],
        subject: Some(subject_descriptor.clone()),
        ..Default::default()
    };
    let url = client
        .push_manifest(&server.tagged(repo, "sbom"), &sbom_manifest.into())
        .await
        .expect("push of the SBOM artifact");
    let sbom_artifact = digest_of_manifest_url(&url);

    // Artifact 2: hand-written bytes pushed by digest (no layers but the
    // empty blob), to check the exact bytes are what is stored.
    let signature = format!(
        r#"{{"schemaVersion":2,"mediaType":"{OCI_IMAGE_MEDIA_TYPE}","artifactType":"{SIGNATURE_TYPE}","config":{{"mediaType":"{EMPTY_MEDIA_TYPE}","digest":"{empty_digest}","size":2}},"layers":[{{"mediaType":"{EMPTY_MEDIA_TYPE}","digest":"{empty_digest}","size":2}}],"subject":{{"mediaType":"{OCI_IMAGE_MEDIA_TYPE}","digest":"{}","size":{}}},"annotations":{{"org.opencontainers.image.created":"2024-01-01T00:00:00Z"}}}}"#,
        subject_descriptor.digest, subject_descriptor.size,
    );
    let signature_digest = sha256(signature.as_bytes());
    let url = client
        .push_manifest_raw(
            &server.by_digest(repo, &signature_digest),
            signature.clone().into_bytes(),
            HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE),
        )
        .await
        .expect("push of the signature artifact by digest");
    assert_eq!(
        digest_of_manifest_url(&url),
        signature_digest,
        "Location of a push by digest"
    );
    let (stored, _) = client
        .pull_manifest_raw(
            &server.by_digest(repo, &signature_digest),
            &AUTH,
            &[OCI_IMAGE_MEDIA_TYPE],
        )
        .await
        .expect("GET of the signature artifact");
    assert_eq!(
        stored,
        signature.as_bytes(),
        "manifest not stored byte for byte"
    );

    // Both artifacts are listed as referrers, with their artifactType.
    let all = client
        .pull_referrers(&subject_ref, None)
        .await
        .expect("referrers of the v1 image");
    assert_eq!(
        all.media_type.as_deref(),
        Some(OCI_IMAGE_INDEX_MEDIA_TYPE),
        "referrers response mediaType"
    );
    let mut listed: Vec<(String, Option<String>, String)> = all
        .manifests
        .iter()
        .map(|m| {
            (
                m.digest.clone(),
                m.artifact_type.clone(),
                m.media_type.clone(),
            )
        })
        .collect();
    listed.sort();
    let mut expected = vec![
        (
            sbom_artifact.clone(),
            Some(SBOM_TYPE.to_owned()),
            OCI_IMAGE_MEDIA_TYPE.to_owned(),
        ),
        (
            signature_digest.clone(),
            Some(SIGNATURE_TYPE.to_owned()),
            OCI_IMAGE_MEDIA_TYPE.to_owned(),
        ),
    ];
    expected.sort();
    assert_eq!(
        listed, expected,
        "referrers (digest, artifactType, mediaType)"
    );
    let signature_entry = all
        .manifests
        .iter()
        .find(|m| m.digest == signature_digest)
        .expect("signature entry");
    assert_eq!(
        signature_entry.size,
        signature.len() as i64,
        "referrer descriptor size"
    );
    assert_eq!(
        signature_entry
            .annotations
            .as_ref()
            .and_then(|a| a.get("org.opencontainers.image.created"))
            .map(String::as_str),
        Some("2024-01-01T00:00:00Z"),
        "referrer descriptor should carry the manifest's annotations"
    );

    // Filtered by artifactType.
    let sboms = client
        .pull_referrers(&subject_ref, Some(SBOM_TYPE))
        .await
        .expect("referrers?artifactType=sbom");
    let digests: Vec<&str> = sboms.manifests.iter().map(|m| m.digest.as_str()).collect();
    assert_eq!(
        digests,
        [sbom_artifact.as_str()],
        "referrers filtered by artifactType"
    );
    let other = client
        .pull_referrers(&subject_ref, Some("application/x-unrelated"))
        .await
        .expect("referrers?artifactType=unrelated");
    assert!(
        other.manifests.is_empty(),
        "unrelated artifactType filter returned {:?}",
        other.manifests
    );

    // The artifacts themselves are ordinary manifests: pull the SBOM back.
    let sbom_ref = server.by_digest(repo, &sbom_artifact);
    let (pulled, _) = client
        .pull_manifest(&sbom_ref, &AUTH)
        .await
        .expect("pull of the SBOM artifact manifest");
    let OciManifest::Image(pulled) = pulled else {
        panic!("SBOM artifact did not come back as an image manifest");
    };
    assert_eq!(
        pulled.artifact_type.as_deref(),
        Some(SBOM_TYPE),
        "artifactType kept"
    );
    assert_eq!(
        pulled.subject.map(|s| s.digest),
        Some(subject.digest.clone()),
        "subject kept"
    );
    assert!(
        read_blob(&client, &sbom_ref, &sbom_digest).await == sbom,
        "SBOM blob bytes differ"
    );
}
