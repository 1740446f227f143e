use super::*;
use crate::digest::Digest;

fn d(s: &str) -> String {
    Digest::sha256_of(s.as_bytes()).to_string()
}

fn image(extra: &str) -> String {
    format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":2}},"layers":[{{"mediaType":"{}","digest":"{}","size":3}}]{extra}}}"#,
        mt::OCI_MANIFEST,
        mt::OCI_CONFIG,
        d("c"),
        mt::OCI_LAYER_GZIP,
        d("l")
    )
}

#[test]
fn oci_image_manifest() {
    let m = Manifest::parse(None, image("").as_bytes()).unwrap();
    assert_eq!(m.kind, ManifestKind::OciManifest);
    let refs: Vec<_> = m.blob_references().map(|d| d.digest.to_string()).collect();
    assert_eq!(refs, vec![d("c"), d("l")]);
    assert!(m.artifact_type.is_none());
    assert!(m.subject.is_none());
}

#[test]
fn subject_and_artifact_type() {
    let extra = format!(
        r#","artifactType":"application/x-sig","subject":{{"mediaType":"{}","digest":"{}","size":7}},"annotations":{{"a":"b"}}"#,
        mt::OCI_MANIFEST,
        d("s")
    );
    let m = Manifest::parse(Some(mt::OCI_MANIFEST), image(&extra).as_bytes()).unwrap();
    // Config, one layer and the subject.
    assert_eq!(m.reference_count(), 3);
    assert_eq!(
        Manifest::parse(None, image("").as_bytes())
            .unwrap()
            .reference_count(),
        2
    );
    assert_eq!(m.artifact_type.as_deref(), Some("application/x-sig"));
    assert_eq!(m.subject.unwrap().digest.to_string(), d("s"));
    assert_eq!(m.annotations["a"], "b");
}

#[test]
fn artifact_type_falls_back_to_config_media_type() {
    let doc = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"application/x-cfg","digest":"{}","size":2}},"layers":[]}}"#,
        mt::OCI_MANIFEST,
        d("c")
    );
    let m = Manifest::parse(None, doc.as_bytes()).unwrap();
    assert_eq!(m.artifact_type.as_deref(), Some("application/x-cfg"));
}

#[test]
fn index_and_docker_list() {
    for media in [mt::OCI_INDEX, mt::DOCKER_MANIFEST_LIST] {
        let doc = format!(
            r#"{{"schemaVersion":2,"mediaType":"{media}","manifests":[{{"mediaType":"{}","digest":"{}","size":9,"platform":{{"architecture":"amd64","os":"linux"}}}}]}}"#,
            mt::OCI_MANIFEST,
            d("m")
        );
        let m = Manifest::parse(None, doc.as_bytes()).unwrap();
        assert!(m.kind.is_index());
        assert_eq!(m.manifest_references().count(), 1);
        assert_eq!(m.blob_references().count(), 0);
        assert_eq!(m.reference_count(), 1);
    }
}

#[test]
fn media_type_from_content_type_or_shape() {
    let doc = format!(
        r#"{{"schemaVersion":2,"config":{{"mediaType":"{}","digest":"{}","size":2}},"layers":[]}}"#,
        mt::DOCKER_CONFIG,
        d("c")
    );
    let m = Manifest::parse(Some(mt::DOCKER_MANIFEST), doc.as_bytes()).unwrap();
    assert_eq!(m.kind, ManifestKind::DockerManifest);
    let m = Manifest::parse(None, doc.as_bytes()).unwrap();
    assert_eq!(m.kind, ManifestKind::OciManifest);
}

#[test]
fn foreign_layers_are_not_required() {
    let doc = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{}","size":3,"urls":["https://example.com/l"]}}]}}"#,
        mt::DOCKER_MANIFEST,
        mt::DOCKER_CONFIG,
        d("c"),
        d("f")
    );
    let m = Manifest::parse(None, doc.as_bytes()).unwrap();
    assert_eq!(m.blob_references().count(), 1);
}

#[test]
fn refusals_are_precise() {
    assert!(matches!(
        Manifest::parse(None, b"not json"),
        Err(ManifestError::InvalidJson(_))
    ));
    assert_eq!(
        Manifest::parse(None, br#"{"schemaVersion":1,"fsLayers":[]}"#),
        Err(ManifestError::Schema1)
    );
    assert_eq!(
        Manifest::parse(Some(mt::DOCKER_SCHEMA1_SIGNED), br#"{"schemaVersion":1}"#),
        Err(ManifestError::Schema1)
    );
    assert_eq!(
        Manifest::parse(None, br#"{"schemaVersion":3}"#),
        Err(ManifestError::SchemaVersion(Some(3)))
    );
    assert_eq!(
        Manifest::parse(None, br#"{"schemaVersion":2}"#),
        Err(ManifestError::UnknownMediaType)
    );
    assert!(matches!(
        Manifest::parse(None, br#"{"schemaVersion":2,"mediaType":"text/plain"}"#),
        Err(ManifestError::UnsupportedMediaType(_))
    ));
    assert!(matches!(
        Manifest::parse(Some(mt::OCI_INDEX), image("").as_bytes()),
        Err(ManifestError::MediaTypeMismatch { .. })
    ));
    let no_layers = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"x","digest":"{}","size":2}}}}"#,
        mt::OCI_MANIFEST,
        d("c")
    );
    assert!(matches!(
        Manifest::parse(None, no_layers.as_bytes()),
        Err(ManifestError::InvalidField {
            field: "layers",
            ..
        })
    ));
    let bad_digest = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"x","digest":"sha256:zz","size":2}},"layers":[]}}"#,
        mt::OCI_MANIFEST
    );
    assert!(matches!(
        Manifest::parse(None, bad_digest.as_bytes()),
        Err(ManifestError::InvalidDigest {
            field: "config",
            ..
        })
    ));
    let neg_size = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"x","digest":"{}","size":-1}},"layers":[]}}"#,
        mt::OCI_MANIFEST,
        d("c")
    );
    assert!(matches!(
        Manifest::parse(None, neg_size.as_bytes()),
        Err(ManifestError::InvalidField {
            field: "config",
            ..
        })
    ));
}

#[test]
fn referrers_artifact_type_is_the_config_media_type_when_absent() {
    let image = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"{}","digest":"{}","size":2}},"layers":[]}}"#,
        mt::OCI_MANIFEST,
        mt::OCI_CONFIG,
        d("c")
    );
    let m = Manifest::parse(None, image.as_bytes()).unwrap();
    assert_eq!(m.referrers_artifact_type(), Some(mt::OCI_CONFIG));
    let explicit = image.replacen("{", r#"{"artifactType":"application/x-sig","#, 1);
    let m = Manifest::parse(None, explicit.as_bytes()).unwrap();
    assert_eq!(m.referrers_artifact_type(), Some("application/x-sig"));
    // Empty is missing: the config's type for an image manifest...
    let empty = image.replacen("{", r#"{"artifactType":"","#, 1);
    let m = Manifest::parse(None, empty.as_bytes()).unwrap();
    assert_eq!(m.referrers_artifact_type(), Some(mt::OCI_CONFIG));
    let custom = empty.replace(mt::OCI_CONFIG, "application/x-cfg");
    let m = Manifest::parse(None, custom.as_bytes()).unwrap();
    assert_eq!(m.artifact_type.as_deref(), Some("application/x-cfg"));
    assert_eq!(m.referrers_artifact_type(), Some("application/x-cfg"));
    // ... and none for an index.
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"{}","artifactType":"","manifests":[{{"mediaType":"{}","digest":"{}","size":2}}]}}"#,
        mt::OCI_INDEX,
        mt::OCI_MANIFEST,
        d("m")
    );
    let m = Manifest::parse(None, index.as_bytes()).unwrap();
    assert_eq!(m.artifact_type, None);
    assert_eq!(m.referrers_artifact_type(), None);
}
