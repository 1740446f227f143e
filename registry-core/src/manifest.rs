//! Manifest parsing and validation.
//!
//! A manifest is stored as the exact bytes the client sent; this module only
//! reads those bytes to learn what they reference. [`Manifest::parse`]
//! accepts OCI image manifests and indexes and Docker schema 2 manifests and
//! manifest lists, and refuses schema 1 and malformed documents with a
//! precise [`ManifestError`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::digest::{Digest, DigestError};
use crate::media_type as mt;

/// Platform of an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    /// CPU architecture, e.g. `amd64`.
    pub architecture: String,
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU variant, e.g. `v8`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    /// OS version (Windows).
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub os_version: Option<String>,
}

/// A content descriptor: what a manifest says about a blob or child manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// Media type of the referenced content.
    pub media_type: String,
    /// Digest of the referenced content.
    pub digest: Digest,
    /// Size in bytes of the referenced content.
    pub size: u64,
    /// Artifact type (OCI 1.1), for index entries and referrers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Platform (index entries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// External URLs (foreign layers); such layers need not be in the registry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

/// The kind of manifest document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ManifestKind {
    /// `application/vnd.oci.image.manifest.v1+json`
    OciManifest,
    /// `application/vnd.oci.image.index.v1+json`
    OciIndex,
    /// `application/vnd.docker.distribution.manifest.v2+json`
    DockerManifest,
    /// `application/vnd.docker.distribution.manifest.list.v2+json`
    DockerManifestList,
}

impl ManifestKind {
    /// The media type of this kind.
    pub const fn media_type(self) -> &'static str {
        match self {
            ManifestKind::OciManifest => mt::OCI_MANIFEST,
            ManifestKind::OciIndex => mt::OCI_INDEX,
            ManifestKind::DockerManifest => mt::DOCKER_MANIFEST,
            ManifestKind::DockerManifestList => mt::DOCKER_MANIFEST_LIST,
        }
    }

    /// Whether this kind lists child manifests rather than layers.
    pub const fn is_index(self) -> bool {
        matches!(
            self,
            ManifestKind::OciIndex | ManifestKind::DockerManifestList
        )
    }

    /// The kind served with `media_type`, if it is one of the four.
    pub fn from_media_type(media_type: &str) -> Option<Self> {
        match media_type {
            mt::OCI_MANIFEST => Some(ManifestKind::OciManifest),
            mt::OCI_INDEX => Some(ManifestKind::OciIndex),
            mt::DOCKER_MANIFEST => Some(ManifestKind::DockerManifest),
            mt::DOCKER_MANIFEST_LIST => Some(ManifestKind::DockerManifestList),
            _ => None,
        }
    }
}

/// Why a document is not an acceptable manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The bytes are not a JSON object.
    #[error("manifest is not valid JSON: {0}")]
    InvalidJson(String),
    /// Docker schema 1 manifests are not accepted.
    #[error("docker schema 1 manifests are not supported; push with schema 2 or OCI")]
    Schema1,
    /// `schemaVersion` is missing or not 2.
    #[error("unsupported schemaVersion {0:?}; expected 2")]
    SchemaVersion(Option<i64>),
    /// The media type names no manifest kind this registry stores.
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
    /// Neither the document nor the request says what kind of manifest this is.
    #[error("manifest media type is neither in the document nor in Content-Type")]
    UnknownMediaType,
    /// The document's `mediaType` and the request's Content-Type disagree.
    #[error("manifest mediaType {document:?} does not match Content-Type {content_type:?}")]
    MediaTypeMismatch {
        /// `mediaType` inside the document.
        document: String,
        /// Content-Type of the request.
        content_type: String,
    },
    /// A required field is missing or has the wrong JSON type.
    #[error("manifest field {field:?} is missing or malformed: {reason}")]
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A descriptor's digest is malformed.
    #[error("descriptor digest in {field:?} is invalid: {source}")]
    InvalidDigest {
        /// Where the descriptor sits.
        field: &'static str,
        /// The digest problem.
        source: DigestError,
    },
}

/// What this registry needs to know about a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// The kind of document.
    pub kind: ManifestKind,
    /// Config blob (image manifests only).
    pub config: Option<Descriptor>,
    /// Layers (image manifests) — blobs this manifest references.
    pub layers: Vec<Descriptor>,
    /// Child manifests (indexes).
    pub manifests: Vec<Descriptor>,
    /// The manifest this one refers to (OCI 1.1 referrers).
    pub subject: Option<Descriptor>,
    /// Artifact type: the explicit `artifactType`, else the config's media
    /// type for non-image configs (as the referrers API defines).
    pub artifact_type: Option<String>,
    /// Top-level annotations.
    pub annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    schema_version: Option<serde_json::Value>,
    media_type: Option<String>,
    artifact_type: Option<String>,
    config: Option<serde_json::Value>,
    layers: Option<serde_json::Value>,
    manifests: Option<serde_json::Value>,
    subject: Option<serde_json::Value>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    // Schema 1 markers.
    fs_layers: Option<serde_json::Value>,
    signatures: Option<serde_json::Value>,
}

fn descriptor(field: &'static str, v: serde_json::Value) -> Result<Descriptor, ManifestError> {
    if let Some(d) = v.get("digest").and_then(|d| d.as_str()) {
        if let Err(source) = d.parse::<Digest>() {
            return Err(ManifestError::InvalidDigest { field, source });
        }
    }
    serde_json::from_value(v).map_err(|e| ManifestError::InvalidField {
        field,
        reason: e.to_string(),
    })
}

fn descriptors(
    field: &'static str,
    v: Option<serde_json::Value>,
) -> Result<Vec<Descriptor>, ManifestError> {
    match v {
        None | Some(serde_json::Value::Null) => Ok(Vec::new()),
        Some(serde_json::Value::Array(items)) => {
            items.into_iter().map(|i| descriptor(field, i)).collect()
        }
        Some(_) => Err(ManifestError::InvalidField {
            field,
            reason: "expected an array of descriptors".into(),
        }),
    }
}

impl Manifest {
    /// Parses and validates manifest bytes.
    ///
    /// `content_type` is the request's Content-Type, if any. The kind is the
    /// document's `mediaType` when present (which must then agree with
    /// `content_type`), else `content_type`, else inferred from the shape of
    /// an OCI document (`manifests` → index, `config` → image manifest).
    pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Self, ManifestError> {
        let raw: RawManifest =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::InvalidJson(e.to_string()))?;
        let content_type = content_type
            .map(|c| c.split(';').next().unwrap_or("").trim())
            .filter(|c| !c.is_empty() && *c != "application/json");

        if raw.fs_layers.is_some()
            || raw.signatures.is_some()
            || matches!(
                raw.media_type.as_deref().or(content_type),
                Some(mt::DOCKER_SCHEMA1 | mt::DOCKER_SCHEMA1_SIGNED)
            )
        {
            return Err(ManifestError::Schema1);
        }
        match raw.schema_version.as_ref().map(|v| v.as_i64()) {
            Some(Some(2)) => {}
            Some(Some(1)) => return Err(ManifestError::Schema1),
            Some(other) => return Err(ManifestError::SchemaVersion(other)),
            None => return Err(ManifestError::SchemaVersion(None)),
        }

        let kind = match (raw.media_type.as_deref(), content_type) {
            (Some(doc), Some(ct)) if doc != ct => {
                return Err(ManifestError::MediaTypeMismatch {
                    document: doc.to_owned(),
                    content_type: ct.to_owned(),
                })
            }
            (Some(m), _) | (None, Some(m)) => ManifestKind::from_media_type(m)
                .ok_or_else(|| ManifestError::UnsupportedMediaType(m.to_owned()))?,
            (None, None) if raw.manifests.is_some() => ManifestKind::OciIndex,
            (None, None) if raw.config.is_some() => ManifestKind::OciManifest,
            (None, None) => return Err(ManifestError::UnknownMediaType),
        };

        let subject = raw.subject.map(|s| descriptor("subject", s)).transpose()?;
        let annotations = raw.annotations.unwrap_or_default();
        let mut manifest = Manifest {
            kind,
            config: None,
            layers: Vec::new(),
            manifests: Vec::new(),
            subject,
            // distribution-spec v1.1: an empty `artifactType` counts as
            // missing (an image manifest is then listed under its config's
            // type, an index under none).
            artifact_type: raw.artifact_type.filter(|a| !a.is_empty()),
            annotations,
        };
        if kind.is_index() {
            if raw.manifests.is_none() {
                return Err(ManifestError::InvalidField {
                    field: "manifests",
                    reason: "an index must list its manifests".into(),
                });
            }
            manifest.manifests = descriptors("manifests", raw.manifests)?;
        } else {
            let config = raw.config.ok_or(ManifestError::InvalidField {
                field: "config",
                reason: "an image manifest must have a config descriptor".into(),
            })?;
            let config = descriptor("config", config)?;
            if raw.layers.is_none() {
                return Err(ManifestError::InvalidField {
                    field: "layers",
                    reason: "an image manifest must have a layers array".into(),
                });
            }
            manifest.layers = descriptors("layers", raw.layers)?;
            if manifest.artifact_type.is_none()
                && kind == ManifestKind::OciManifest
                && config.media_type != mt::OCI_CONFIG
            {
                manifest.artifact_type = Some(config.media_type.clone());
            }
            manifest.config = Some(config);
        }
        Ok(manifest)
    }

    /// The artifact type the referrers API lists this manifest under
    /// (distribution-spec v1.1): the explicit `artifactType`, else, for an
    /// image manifest, its config's media type, whatever that is (also the
    /// OCI image config type, which [`Manifest::artifact_type`] leaves out).
    pub fn referrers_artifact_type(&self) -> Option<&str> {
        self.artifact_type
            .as_deref()
            .or_else(|| self.config.as_ref().map(|c| c.media_type.as_str()))
    }

    /// The media type the manifest is served with.
    pub fn media_type(&self) -> &'static str {
        self.kind.media_type()
    }

    /// Blobs this manifest needs in the registry: config and layers, except
    /// foreign layers that carry external URLs.
    pub fn blob_references(&self) -> impl Iterator<Item = &Descriptor> {
        self.config
            .iter()
            .chain(self.layers.iter().filter(|l| l.urls.is_empty()))
    }

    /// How many descriptors the manifest holds: config, layers (foreign
    /// ones too), child manifests and subject.
    pub fn reference_count(&self) -> usize {
        usize::from(self.config.is_some())
            + self.layers.len()
            + self.manifests.len()
            + usize::from(self.subject.is_some())
    }

    /// Child manifests this index needs in the registry.
    pub fn manifest_references(&self) -> impl Iterator<Item = &Descriptor> {
        self.manifests.iter()
    }
}

#[cfg(test)]
mod tests;
