//! The JSON documents of the Image API. Their shape follows the Kubernetes
//! convention (`kind`, `apiVersion`, `metadata`) where a resource has a
//! name, so that tooling written for OpenShift-style ImageStreams reads
//! them without surprises; `docs/image-api.md` shows each one.
//!
//! Conventions shared by every document: digests are strings
//! (`sha256:…`), times are RFC 3339 in UTC, and a field that has no value
//! is `null` rather than missing, except optional OCI fields (artifact type,
//! annotations, platform variant) which are omitted as in the OCI specs.

use std::collections::BTreeMap;

use registry_core::config::HistoryEntry;
use registry_core::{Descriptor, Digest, RepositoryName, Tag};
use serde::Serialize;

/// The `apiVersion` of every document.
pub(crate) const API_VERSION: &str = "image/v1";

/// `metadata` of a named resource.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ObjectMeta {
    /// The resource's name within its namespace (`app`, `app:v1`, a digest).
    pub(crate) name: String,
    /// The namespace, for namespaced resources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) namespace: Option<String>,
    /// When the resource came to exist (RFC 3339).
    pub(crate) creation_timestamp: Option<String>,
}

/// `metadata` of a list: where the next page starts.
#[derive(Debug, Serialize)]
pub(crate) struct ListMeta {
    /// The `last` value for the next page, or `null` on the last page.
    #[serde(rename = "continue")]
    pub(crate) continue_from: Option<String>,
}

/// `GET …/namespaces/{ns}/imagestreams`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImageStreamList {
    /// Always `ImageStreamList`.
    pub(crate) kind: &'static str,
    /// Always [`API_VERSION`].
    pub(crate) api_version: &'static str,
    /// Paging.
    pub(crate) metadata: ListMeta,
    /// The ImageStreams of the page, by name.
    pub(crate) items: Vec<ImageStream>,
}

/// A repository seen as an ImageStream: `{ns}/{name}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImageStream {
    /// Always `ImageStream`.
    pub(crate) kind: &'static str,
    /// Always [`API_VERSION`].
    pub(crate) api_version: &'static str,
    /// Name (the repository without its namespace), namespace, creation.
    pub(crate) metadata: ObjectMeta,
    /// Where it is pulled from and what its tags point at.
    pub(crate) status: ImageStreamStatus,
}

/// `status` of an [`ImageStream`].
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImageStreamStatus {
    /// The full repository name (`team/app`).
    pub(crate) repository: RepositoryName,
    /// What a client pulls: `<host>/team/app`.
    pub(crate) docker_image_repository: String,
    /// The tags of this page, sorted by name (all of them unless
    /// `tags_continue` is set).
    pub(crate) tags: Vec<NamedTagEventList>,
    /// The `last` value (a tag) for the next page of tags of
    /// `…/imagestreams/{name}`, or `null` when `tags` is complete.
    pub(crate) tags_continue: Option<String>,
}

/// A tag of an [`ImageStream`] and where it points now.
#[derive(Debug, Serialize)]
pub(crate) struct NamedTagEventList {
    /// The tag.
    pub(crate) tag: Tag,
    /// The current target only (one entry); the whole history is at
    /// `imagestreamtags/{name}:{tag}`.
    pub(crate) items: Vec<TagItem>,
}

/// Where a tag points, and since when.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TagItem {
    /// The manifest digest.
    pub(crate) image: Digest,
    /// When the tag moved there.
    pub(crate) created: String,
    /// `<host>/team/app@sha256:…`.
    pub(crate) docker_image_reference: String,
}

/// `GET …/namespaces/{ns}/imagestreamtags/{name}:{tag}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ImageStreamTag {
    /// Always `ImageStreamTag`.
    pub(crate) kind: &'static str,
    /// Always [`API_VERSION`].
    pub(crate) api_version: &'static str,
    /// Name `app:v1`, namespace, and when the tag was first set (`null`
    /// on a page that does not reach the first move).
    pub(crate) metadata: ObjectMeta,
    /// The full repository name.
    pub(crate) repository: RepositoryName,
    /// The tag.
    pub(crate) tag: Tag,
    /// The current target, `null` when the tag is deleted.
    pub(crate) image: Option<Digest>,
    /// `<host>/team/app@sha256:…` for the current target, or `null`.
    pub(crate) docker_image_reference: Option<String>,
    /// When the tag last moved (or was deleted).
    pub(crate) updated: String,
    /// The moves of this page, newest first (every move unless
    /// `history_continue` is set).
    pub(crate) history: Vec<TagHistoryItem>,
    /// The `last` value for the next (older) page of history, or `null`
    /// when `history` reaches the tag's first move.
    pub(crate) history_continue: Option<String>,
}

/// One move of a tag.
#[derive(Debug, Serialize)]
pub(crate) struct TagHistoryItem {
    /// Where the tag pointed afterwards; `null` records its deletion.
    pub(crate) image: Option<Digest>,
    /// When.
    pub(crate) created: String,
    /// Who (`alice`, `system:serviceaccount:ns:ci`, `system:anonymous`).
    pub(crate) actor: String,
}

/// `GET /apis/image/v1/images/{digest}`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Image {
    /// Always `Image`.
    pub(crate) kind: &'static str,
    /// Always [`API_VERSION`].
    pub(crate) api_version: &'static str,
    /// Name (the digest) and the earliest push among visible repositories.
    pub(crate) metadata: ObjectMeta,
    /// The manifest digest.
    pub(crate) digest: Digest,
    /// The manifest's media type.
    pub(crate) media_type: String,
    /// The manifest's size in bytes.
    pub(crate) size: u64,
    /// Artifact type (OCI 1.1 artifacts and referrers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) artifact_type: Option<String>,
    /// Manifest annotations.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub(crate) annotations: BTreeMap<String, String>,
    /// The manifest this one refers to (signatures, SBOMs).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) subject: Option<Descriptor>,
    /// Repositories holding it that the caller may pull, sorted.
    pub(crate) repositories: Vec<ImageRepository>,
    /// Config descriptor (image manifests), else `null`.
    pub(crate) config: Option<Descriptor>,
    /// Layers (image manifests; empty for indexes).
    pub(crate) layers: Vec<Descriptor>,
    /// Child manifests with their platforms (indexes; empty otherwise).
    pub(crate) manifests: Vec<Descriptor>,
    /// What the config blob says (image manifests whose config is an image
    /// config that is stored and readable), else `null`.
    pub(crate) image_config: Option<ImageConfigView>,
}

/// A repository that holds an [`Image`], and its tags pointing at it.
#[derive(Debug, Serialize)]
pub(crate) struct ImageRepository {
    /// The full repository name.
    pub(crate) name: RepositoryName,
    /// Tags of that repository whose current target is the image.
    pub(crate) tags: Vec<Tag>,
    /// When the image was first pushed there.
    pub(crate) created: String,
}

/// The image configuration subset shown for image manifests.
#[derive(Debug, Serialize)]
pub(crate) struct ImageConfigView {
    /// Operating system.
    pub(crate) os: String,
    /// CPU architecture.
    pub(crate) architecture: String,
    /// CPU variant, or `null`.
    pub(crate) variant: Option<String>,
    /// Build time as the builder wrote it, or `null`.
    pub(crate) created: Option<String>,
    /// Author, or `null`.
    pub(crate) author: Option<String>,
    /// Labels (`config.Labels`).
    pub(crate) labels: BTreeMap<String, String>,
    /// Build steps, oldest first.
    pub(crate) history: Vec<HistoryEntry>,
}

/// `GET /apis/image/v1/repositories`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RepositoryList {
    /// Always `RepositoryList`.
    pub(crate) kind: &'static str,
    /// Always [`API_VERSION`].
    pub(crate) api_version: &'static str,
    /// Paging.
    pub(crate) metadata: ListMeta,
    /// The page of repositories, in lexical order.
    pub(crate) items: Vec<RepositoryItem>,
}

/// One repository the caller may pull.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RepositoryItem {
    /// The full repository name.
    pub(crate) name: RepositoryName,
    /// Its namespace.
    pub(crate) namespace: String,
    /// Its ImageStream name within the namespace.
    pub(crate) image_stream: String,
    /// When it was created, or `null` if it vanished while listing.
    pub(crate) created: Option<String>,
}
