//! Manifests: `HEAD`/`GET`/`PUT`/`DELETE /v2/<name>/manifests/<reference>`.

use axum::body::Body;
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use registry_core::{
    Algorithm, Digest, ErrorCode, Manifest, Reference, ReferenceError, RepositoryName, Tag,
};
use registry_storage::{NewManifest, StorageError, StoredManifest};

use crate::error::{ApiError, ApiResult};
use crate::http_util::{header_str, header_value, DOCKER_CONTENT_DIGEST, OCI_SUBJECT, OCI_TAG};
use crate::state::Registry;

fn manifest_unknown(repo: &RepositoryName, reference: &Reference) -> ApiError {
    ApiError::new(
        ErrorCode::ManifestUnknown,
        format!("manifest {reference} unknown in repository {repo}"),
    )
}

/// The answer to a manifest reference that is neither a tag nor a digest:
/// nothing is stored under it, so reads and deletes find nothing (404
/// `MANIFEST_UNKNOWN`: clients probe with such names), while a `PUT` under
/// it is a malformed request (400 `MANIFEST_INVALID`).
pub(crate) fn invalid_reference(
    repo: &RepositoryName,
    reference: &str,
    error: &ReferenceError,
    method: &Method,
) -> ApiError {
    if method == Method::PUT {
        ApiError::new(
            ErrorCode::ManifestInvalid,
            format!("invalid reference {reference:?}: {error}"),
        )
        .with_status(StatusCode::BAD_REQUEST)
    } else {
        ApiError::new(
            ErrorCode::ManifestUnknown,
            format!("manifest {reference:?} unknown in repository {repo}: {error}"),
        )
    }
}

/// Whether the client's `Accept` headers allow `media_type`. No `Accept`
/// (or a wildcard) accepts everything.
fn accepts(headers: &HeaderMap, media_type: &str) -> bool {
    let mut any = false;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else { continue };
        for item in value.split(',') {
            let mt = item.split(';').next().unwrap_or("").trim();
            if mt.is_empty() {
                continue;
            }
            any = true;
            if mt == media_type || mt == "*/*" || mt == "application/*" {
                return true;
            }
        }
    }
    !any
}

/// Looks a manifest up, `NAME_UNKNOWN` when the repository does not exist.
pub(crate) async fn load(
    registry: &Registry,
    repo: &RepositoryName,
    reference: &Reference,
) -> ApiResult<StoredManifest> {
    if let Some(m) = registry.metadata().get_manifest(repo, reference).await? {
        return Ok(m);
    }
    if registry.metadata().repository(repo).await?.is_none() {
        return Err(ApiError::new(
            ErrorCode::NameUnknown,
            format!("repository {repo} unknown"),
        ));
    }
    Err(manifest_unknown(repo, reference))
}

/// `HEAD` or `GET` a manifest by tag or digest.
pub(crate) async fn get(
    registry: &Registry,
    repo: &RepositoryName,
    reference: &Reference,
    headers: &HeaderMap,
    head: bool,
) -> ApiResult<Response> {
    let m = load(registry, repo, reference).await?;
    // A digest names exact bytes: there is nothing to negotiate, so they
    // are served with their own type whatever `Accept` says (clients that
    // never list the OCI types still read an OCI index by digest).
    if reference.as_tag().is_some() && !accepts(headers, &m.media_type) {
        return Err(ApiError::new(
            ErrorCode::ManifestUnknown,
            format!(
                "manifest {reference} is {}, which the request's Accept header excludes",
                m.media_type
            ),
        ));
    }
    let builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, header_value(&m.media_type))
        .header(header::CONTENT_LENGTH, m.bytes.len())
        .header(header::ETAG, format!("\"{}\"", m.digest))
        .header(DOCKER_CONTENT_DIGEST, m.digest.as_str());
    let body = if head {
        Body::empty()
    } else {
        Body::from(m.bytes)
    };
    builder.body(body).map_err(ApiError::internal)
}

/// Reads a manifest body up to the size limit (413 above it).
async fn read_limited(body: Body, limit: usize) -> ApiResult<Bytes> {
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<LengthLimitError>() => Err(ApiError::new(
            ErrorCode::SizeInvalid,
            format!("manifest is larger than {limit} bytes"),
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)),
        Err(e) => Err(ApiError::new(
            ErrorCode::ManifestInvalid,
            format!("reading manifest body failed: {e}"),
        )),
    }
}

/// Checks that everything the manifest references is present in `repo`:
/// blobs linked to it, child manifests stored in it.
async fn check_references(
    registry: &Registry,
    repo: &RepositoryName,
    m: &Manifest,
) -> ApiResult<()> {
    for d in m.blob_references() {
        let linked = registry.metadata().blob_linked(repo, &d.digest).await?;
        let stored = linked && registry.blobs().stat(&d.digest).await?.is_some();
        if !stored {
            return Err(ApiError::new(
                ErrorCode::ManifestBlobUnknown,
                format!("blob {} is not in repository {repo}", d.digest),
            ));
        }
    }
    for d in m.manifest_references() {
        let reference = Reference::Digest(d.digest.clone());
        if registry
            .metadata()
            .get_manifest(repo, &reference)
            .await?
            .is_none()
        {
            return Err(ApiError::new(
                ErrorCode::ManifestBlobUnknown,
                format!("manifest {} is not in repository {repo}", d.digest),
            ));
        }
    }
    Ok(())
}

/// `PUT /v2/<name>/manifests/<reference>[?tag=…]`.
pub(crate) async fn put(
    registry: &Registry,
    repo: &RepositoryName,
    reference: &Reference,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: Body,
    actor: &str,
) -> ApiResult<Response> {
    let bytes = read_limited(body, registry.limits().max_manifest_bytes).await?;
    let content_type = header_str(headers, header::CONTENT_TYPE.as_str());
    let manifest = Manifest::parse(content_type, &bytes)
        .map_err(|e| ApiError::new(ErrorCode::ManifestInvalid, e.to_string()))?;
    // Before any lookup: accepting a manifest costs store work per reference.
    let references = manifest.reference_count();
    let max_references = registry.limits().max_manifest_references;
    if references > max_references {
        return Err(ApiError::new(
            ErrorCode::ManifestInvalid,
            format!(
                "manifest references {references} descriptors (config, layers, manifests, \
                 subject); this registry accepts at most {max_references}"
            ),
        ));
    }
    let algorithm = reference
        .as_digest()
        .map_or(Algorithm::Sha256, Digest::algorithm);
    let digest = Digest::of(algorithm, &bytes);
    if let Some(expected) = reference.as_digest() {
        if expected != &digest {
            return Err(ApiError::new(
                ErrorCode::DigestInvalid,
                format!("manifest digest is {digest}, not {expected}"),
            ));
        }
    }
    let mut tags: Vec<Tag> = reference.as_tag().cloned().into_iter().collect();
    for (k, v) in query {
        if k == "tag" {
            let tag: Tag = v.parse().map_err(|e| {
                ApiError::new(
                    ErrorCode::ManifestInvalid,
                    format!("invalid tag {v:?}: {e}"),
                )
                .with_status(StatusCode::BAD_REQUEST)
            })?;
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
    }
    check_references(registry, repo, &manifest).await?;

    let subject = manifest.subject.as_ref().map(|s| s.digest.clone());
    let record = NewManifest {
        repository: repo.clone(),
        digest: digest.clone(),
        media_type: manifest.media_type().to_owned(),
        bytes,
        subject: subject.clone(),
        // What the referrers API lists and filters on (spec: the config's
        // media type when `artifactType` is absent).
        artifact_type: manifest.referrers_artifact_type().map(str::to_owned),
        annotations: manifest.annotations.clone(),
        config: manifest.config.as_ref().map(|c| c.digest.clone()),
        blobs: manifest
            .blob_references()
            .map(|d| d.digest.clone())
            .collect(),
        children: manifest
            .manifest_references()
            .map(|d| d.digest.clone())
            .collect(),
        tags: tags.clone(),
        actor: actor.to_owned(),
    };
    match registry.metadata().put_manifest(record).await {
        Ok(()) => {}
        // A prune deleted a blob after `check_references` saw it.
        Err(StorageError::BlobDeleted { digest }) => {
            return Err(ApiError::new(
                ErrorCode::ManifestBlobUnknown,
                format!("blob {digest} was deleted by garbage collection; push it again"),
            ))
        }
        Err(e) => return Err(e.into()),
    }

    let mut builder = Response::builder()
        .status(StatusCode::CREATED)
        .header(
            header::LOCATION,
            header_value(format!("/v2/{repo}/manifests/{digest}")),
        )
        .header(header::CONTENT_LENGTH, 0)
        .header(DOCKER_CONTENT_DIGEST, digest.as_str());
    if let Some(subject) = subject {
        builder = builder.header(OCI_SUBJECT, subject.as_str());
    }
    // One `OCI-Tag` per tag applied (distribution-spec v1.1): a client that
    // pushed with `?tag=` sees the tags took and need not tag one by one.
    for tag in &tags {
        builder = builder.header(OCI_TAG, tag.as_str());
    }
    builder.body(Body::empty()).map_err(ApiError::internal)
}

/// `DELETE /v2/<name>/manifests/<reference>`: by digest removes the
/// manifest and its tags; by tag removes only the tag.
pub(crate) async fn delete(
    registry: &Registry,
    repo: &RepositoryName,
    reference: &Reference,
    actor: &str,
) -> ApiResult<Response> {
    let result = match reference {
        Reference::Digest(d) => registry.metadata().delete_manifest(repo, d, actor).await,
        Reference::Tag(t) => registry.metadata().delete_tag(repo, t, actor).await,
    };
    match result {
        Ok(()) => Ok(StatusCode::ACCEPTED.into_response()),
        Err(StorageError::NotFound { .. }) => {
            load(registry, repo, reference).await?;
            Err(manifest_unknown(repo, reference))
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::accepts;
    use axum::http::{header, HeaderMap, HeaderValue};

    #[test]
    fn accept_negotiation() {
        let oci = "application/vnd.oci.image.manifest.v1+json";
        let mut h = HeaderMap::new();
        assert!(accepts(&h, oci));
        h.append(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.docker.distribution.manifest.v2+json"),
        );
        assert!(!accepts(&h, oci));
        h.append(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.oci.image.manifest.v1+json; q=0.5"),
        );
        assert!(accepts(&h, oci));
        let mut w = HeaderMap::new();
        w.insert(header::ACCEPT, HeaderValue::from_static("*/*"));
        assert!(accepts(&w, oci));
    }
}
