//! The JSON listings of the OCI distribution API: `GET /v2/<name>/tags/list`,
//! `GET /v2/_catalog` and `GET /v2/<name>/referrers/<digest>`. Paging is in
//! the `Link` header, not in the documents.

use registry_core::{media_type, Descriptor, RepositoryName, Tag};
use serde::{Deserialize, Serialize};

/// `GET /v2/<name>/tags/list`: a page of a repository's tags, in lexical order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TagList {
    /// The repository.
    pub name: RepositoryName,
    /// The tags of the page.
    pub tags: Vec<Tag>,
}

impl TagList {
    /// A page of `name`'s tags.
    pub fn new(name: RepositoryName, tags: Vec<Tag>) -> Self {
        TagList { name, tags }
    }
}

/// `GET /v2/_catalog`: a page of the repositories the caller may see, in
/// lexical order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Catalog {
    /// The repositories of the page.
    pub repositories: Vec<RepositoryName>,
}

impl Catalog {
    /// A page of repository names.
    pub fn new(repositories: Vec<RepositoryName>) -> Self {
        Catalog { repositories }
    }
}

/// `GET /v2/<name>/referrers/<digest>`: an OCI image index whose
/// `manifests` are the manifests referring to the subject (each with its
/// `artifactType` and annotations).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
#[serde(rename_all = "camelCase")]
pub struct ReferrersIndex {
    /// Always 2.
    pub schema_version: u32,
    /// Always `application/vnd.oci.image.index.v1+json`.
    pub media_type: String,
    /// The referrers of the page.
    pub manifests: Vec<Descriptor>,
}

impl ReferrersIndex {
    /// The index listing `manifests`.
    pub fn new(manifests: Vec<Descriptor>) -> Self {
        ReferrersIndex {
            schema_version: 2,
            media_type: media_type::OCI_INDEX.to_owned(),
            manifests,
        }
    }
}
