//! The JSON documents of the Image API. Their shape follows the Kubernetes
//! convention (`kind`, `apiVersion`, `metadata`) where a resource has a
//! name, so that tooling written for OpenShift-style ImageStreams reads
//! them without surprises; `docs/image-api.md` shows each one.
//!
//! The server builds these documents (they are `#[non_exhaustive]`: new
//! fields are not breaking changes); clients deserialize them.
//!
//! Conventions shared by every document: digests are strings
//! (`sha256:…`), times are RFC 3339 in UTC, and a field that has no value
//! is `null` rather than missing, except optional OCI fields (artifact type,
//! annotations, platform variant) which are omitted as in the OCI specs.

use std::collections::BTreeMap;

use registry_core::config::HistoryEntry;
use registry_core::{Descriptor, Digest, RepositoryName, Tag};
use serde::{Deserialize, Serialize};

/// The `apiVersion` of every document.
pub const API_VERSION: &str = "image/v1";

/// `metadata` of a named resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// The resource's name within its namespace (`app`, `app:v1`, a digest).
    pub name: String,
    /// The namespace, for namespaced resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// When the resource came to exist (RFC 3339).
    pub creation_timestamp: Option<String>,
}

/// `metadata` of a list: where the next page starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ListMeta {
    /// The `last` value for the next page, or `null` on the last page.
    #[serde(rename = "continue")]
    pub continue_from: Option<String>,
}

/// `GET …/namespaces/{ns}/imagestreams`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(rename_all = "camelCase")]
pub struct ImageStreamList {
    /// Always `ImageStreamList` ([`Self::KIND`]).
    pub kind: String,
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Paging.
    pub metadata: ListMeta,
    /// The ImageStreams of the page, by name.
    pub items: Vec<ImageStream>,
}

/// A repository seen as an ImageStream: `{ns}/{name}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(rename_all = "camelCase")]
pub struct ImageStream {
    /// Always `ImageStream` ([`Self::KIND`]).
    pub kind: String,
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Name (the repository without its namespace), namespace, creation.
    pub metadata: ObjectMeta,
    /// Where it is pulled from and what its tags point at.
    pub status: ImageStreamStatus,
}

/// `status` of an [`ImageStream`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(rename_all = "camelCase")]
pub struct ImageStreamStatus {
    /// The full repository name (`team/app`).
    pub repository: RepositoryName,
    /// What a client pulls: `<host>/team/app`.
    pub docker_image_repository: String,
    /// The tags of this page, sorted by name (all of them unless
    /// `tags_continue` is set).
    pub tags: Vec<NamedTagEventList>,
    /// The `last` value (a tag) for the next page of tags of
    /// `…/imagestreams/{name}`, or `null` when `tags` is complete.
    pub tags_continue: Option<String>,
    /// What it stores (its own links: a blob shared with another
    /// ImageStream of the namespace counts in both; the namespace counts
    /// it once).
    #[serde(default)]
    pub usage: ImageStreamUsage,
    /// Where a proxy namespace's ImageStream is cached from: the upstream
    /// repository (`registry-1.docker.io/library/alpine`); absent for
    /// pushed ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
}

/// `status.usage` of an [`ImageStream`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImageStreamUsage {
    /// Bytes of the blobs linked to it.
    pub bytes: u64,
    /// Blobs linked to it.
    pub blobs: u64,
    /// Manifests stored in it.
    pub images: u64,
    /// Its tags.
    pub tags: u64,
}

impl From<registry_storage::RepositoryUsage> for ImageStreamUsage {
    fn from(u: registry_storage::RepositoryUsage) -> Self {
        ImageStreamUsage {
            bytes: u.bytes,
            blobs: u.blobs,
            images: u.images,
            tags: u.tags,
        }
    }
}

/// `GET /apis/image/v1/namespaces/{ns}`: a namespace and what it stores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(rename_all = "camelCase")]
pub struct ImageNamespace {
    /// Always `Namespace` ([`Self::KIND`]).
    pub kind: String,
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Its name (no creation time: namespaces do not record one here).
    pub metadata: ObjectMeta,
    /// Usage and quota.
    pub status: NamespaceStatus,
}

impl ImageNamespace {
    /// The `kind` of this document.
    pub const KIND: &'static str = "Namespace";
}

/// `status` of an [`ImageNamespace`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(rename_all = "camelCase")]
pub struct NamespaceStatus {
    /// Its quota in bytes, or `null` when it has none.
    pub quota_bytes: Option<u64>,
    /// What it stores: distinct blobs (each counted once), their bytes,
    /// its ImageStreams and images.
    pub usage: crate::model::usage::UsageFigures,
}

/// A tag of an [`ImageStream`] and where it points now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct NamedTagEventList {
    /// The tag.
    pub tag: Tag,
    /// The current target only (one entry); the whole history is at
    /// `imagestreamtags/{name}:{tag}`.
    pub items: Vec<TagItem>,
}

/// Where a tag points, and since when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(rename_all = "camelCase")]
pub struct TagItem {
    /// The manifest digest.
    pub image: Digest,
    /// When the tag moved there.
    pub created: String,
    /// `<host>/team/app@sha256:…`.
    pub docker_image_reference: String,
}

/// `GET …/namespaces/{ns}/imagestreamtags/{name}:{tag}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(rename_all = "camelCase")]
pub struct ImageStreamTag {
    /// Always `ImageStreamTag` ([`Self::KIND`]).
    pub kind: String,
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Name `app:v1`, namespace, and when the tag was first set (`null`
    /// on a page that does not reach the first move).
    pub metadata: ObjectMeta,
    /// The full repository name.
    pub repository: RepositoryName,
    /// The tag.
    pub tag: Tag,
    /// The current target, `null` when the tag is deleted.
    pub image: Option<Digest>,
    /// `<host>/team/app@sha256:…` for the current target, or `null`.
    pub docker_image_reference: Option<String>,
    /// When the tag last moved (or was deleted).
    pub updated: String,
    /// The moves of this page, newest first (every move unless
    /// `history_continue` is set).
    pub history: Vec<TagHistoryItem>,
    /// The `last` value for the next (older) page of history, or `null`
    /// when `history` reaches the tag's first move.
    pub history_continue: Option<String>,
}

/// One move of a tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TagHistoryItem {
    /// Where the tag pointed afterwards; `null` records its deletion.
    pub image: Option<Digest>,
    /// When.
    pub created: String,
    /// Who (`alice`, `system:serviceaccount:ns:ci`, `system:anonymous`).
    pub actor: String,
    /// The image is no longer stored in the repository (a prune's
    /// retention removed it, or it was deleted); absent when it is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pruned: bool,
}

/// `GET /apis/image/v1/images/{digest}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(rename_all = "camelCase")]
pub struct Image {
    /// Always `Image` ([`Self::KIND`]).
    pub kind: String,
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Name (the digest) and the earliest push among visible repositories.
    pub metadata: ObjectMeta,
    /// The manifest digest.
    pub digest: Digest,
    /// The manifest's media type.
    pub media_type: String,
    /// The manifest's size in bytes.
    pub size: u64,
    /// Artifact type (OCI 1.1 artifacts and referrers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_type: Option<String>,
    /// Manifest annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// The manifest this one refers to (signatures, SBOMs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<Descriptor>,
    /// Repositories holding it that the caller may pull, sorted.
    pub repositories: Vec<ImageRepository>,
    /// Config descriptor (image manifests), else `null`.
    pub config: Option<Descriptor>,
    /// Layers (image manifests; empty for indexes).
    pub layers: Vec<Descriptor>,
    /// Child manifests with their platforms (indexes; empty otherwise).
    pub manifests: Vec<Descriptor>,
    /// What the config blob says (image manifests whose config is an image
    /// config that is stored and readable), else `null`.
    pub image_config: Option<ImageConfigView>,
}

/// A repository that holds an [`Image`], and its tags pointing at it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImageRepository {
    /// The full repository name.
    pub name: RepositoryName,
    /// Tags of that repository whose current target is the image.
    pub tags: Vec<Tag>,
    /// When the image was first pushed there.
    pub created: String,
}

/// The image configuration subset shown for image manifests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ImageConfigView {
    /// Operating system.
    pub os: String,
    /// CPU architecture.
    pub architecture: String,
    /// CPU variant, or `null`.
    pub variant: Option<String>,
    /// Build time as the builder wrote it, or `null`.
    pub created: Option<String>,
    /// Author, or `null`.
    pub author: Option<String>,
    /// Labels (`config.Labels`).
    pub labels: BTreeMap<String, String>,
    /// Build steps, oldest first.
    pub history: Vec<HistoryEntry>,
}

/// `GET /apis/image/v1/repositories`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(rename_all = "camelCase")]
pub struct RepositoryList {
    /// Always `RepositoryList` ([`Self::KIND`]).
    pub kind: String,
    /// Always [`API_VERSION`].
    pub api_version: String,
    /// Paging.
    pub metadata: ListMeta,
    /// The page of repositories, in lexical order.
    pub items: Vec<RepositoryItem>,
}

/// One repository the caller may pull.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(rename_all = "camelCase")]
pub struct RepositoryItem {
    /// The full repository name.
    pub name: RepositoryName,
    /// Its namespace.
    pub namespace: String,
    /// Its ImageStream name within the namespace.
    pub image_stream: String,
    /// When it was created, or `null` if it vanished while listing.
    pub created: Option<String>,
}

macro_rules! kinds {
    ($($t:ident),*) => {$(
        impl $t {
            /// The `kind` of this document.
            pub const KIND: &'static str = stringify!($t);
        }
    )*};
}

kinds!(
    ImageStreamList,
    ImageStream,
    ImageStreamTag,
    Image,
    RepositoryList
);
