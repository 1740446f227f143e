//! The distribution API basics: `/v2/` check, blobs, manifests, tags,
//! catalog, referrers and delete.

use bytes::Bytes;
use futures::{Stream, TryStreamExt};
use http::{header, StatusCode};
use registry_core::{media_type, Algorithm, Digest, Reference, RepositoryName, Tag};
use reqwest::{Response, Url};
use serde::de::DeserializeOwned;

use super::body::{read_within, MAX_DOCUMENT_BYTES};
use super::{pairs, BlobStream, Client, ClientError, Page};
use crate::model::distribution::{Catalog, ReferrersIndex, TagList};

/// The manifest media types a pull accepts.
const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
    application/vnd.oci.image.index.v1+json, \
    application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.docker.distribution.manifest.list.v2+json";

/// Most pages of a tag list `Client::tags_up_to` reads.
const MAX_TAG_PAGES: usize = 10_000;

/// Most pages without a tag (yet with a next page) `Client::tags_up_to`
/// reads.
const MAX_EMPTY_TAG_PAGES: usize = 3;

/// A pulled manifest: its exact bytes, media type and (verified) digest.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Manifest {
    /// The bytes as stored.
    pub bytes: Bytes,
    /// The `Content-Type` the registry served.
    pub media_type: String,
    /// The digest of `bytes`.
    pub digest: Digest,
}

/// One page of a listing and the `last` value of the next page (from the
/// `Link` header or the document's continuation), `None` on the last page.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Paged<T> {
    /// The page.
    pub page: T,
    /// Where the next page starts.
    pub next: Option<String>,
}

/// The segments of `/v2/<name>/…`.
fn v2<'a>(repo: &'a RepositoryName, rest: &[&'a str]) -> Vec<&'a str> {
    let mut segments = vec!["v2"];
    segments.extend(repo.as_str().split('/'));
    segments.extend_from_slice(rest);
    segments
}

fn pull_scope(repo: &RepositoryName) -> String {
    format!("repository:{repo}:pull")
}

fn push_scope(repo: &RepositoryName) -> String {
    format!("repository:{repo}:pull,push")
}

/// The `last` value of a `Link: <…?n=…&last=…>; rel="next"` header.
fn next_from_link(base: &Url, response: &Response) -> Option<String> {
    let link = response.headers().get(header::LINK)?.to_str().ok()?;
    let target = link
        .split(',')
        .find(|l| l.contains("rel=\"next\"") || l.contains("rel=next"))?;
    let target = target.split_once('<')?.1.split_once('>')?.0;
    let url = base.join(target).ok()?;
    url.query_pairs()
        .find(|(k, _)| k == "last")
        .map(|(_, v)| v.into_owned())
}

/// The JSON document of a success answer.
pub(crate) async fn json<T: DeserializeOwned>(response: Response) -> Result<T, ClientError> {
    let url = response.url().clone();
    let body = read_within(response, MAX_DOCUMENT_BYTES).await?;
    serde_json::from_slice(&body).map_err(|source| ClientError::Decode {
        url: url.to_string(),
        source,
    })
}

/// The `Docker-Content-Digest` of an answer, if present and valid.
fn content_digest(response: &Response) -> Option<Digest> {
    response
        .headers()
        .get("docker-content-digest")?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// An answer, or `None` for a 404: what asking whether something exists
/// makes of a call.
fn found(answer: Result<Response, ClientError>) -> Result<Option<Response>, ClientError> {
    match answer {
        Ok(response) => Ok(Some(response)),
        Err(ClientError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A header holding a number (`Content-Length`), if present and valid.
fn header_number(response: &Response, name: header::HeaderName) -> Option<u64> {
    response
        .headers()
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Checks a digest the server reported against the one computed here.
fn check_reported(response: &Response, expected: &Digest) -> Result<(), ClientError> {
    match content_digest(response) {
        Some(actual) if actual != *expected => Err(ClientError::DigestMismatch {
            expected: expected.clone(),
            actual,
        }),
        _ => Ok(()),
    }
}

impl Client {
    /// `GET /v2/`: whether the registry answers and accepts the
    /// credentials (with a token registry, getting a token checks them).
    pub async fn ping(&self) -> Result<(), ClientError> {
        let url = self.url(&["v2", ""], &[]);
        self.distribution("", |http| http.get(url.clone())).await?;
        Ok(())
    }

    /// `HEAD /v2/<name>/blobs/<digest>`: the blob's size, `None` when the
    /// repository does not have it. An answer without a `Content-Length`
    /// says nothing of the size (0 would be a wrong one): the size is then
    /// asked with a one-byte ranged `GET`, and a registry that tells it
    /// neither way is [`ClientError::Protocol`].
    pub async fn blob_size(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>, ClientError> {
        let digest_text = digest.to_string();
        let url = self.url(&v2(repo, &["blobs", &digest_text]), &[]);
        let answer = self
            .distribution(&pull_scope(repo), |http| http.head(url.clone()))
            .await;
        let Some(response) = found(answer)? else {
            return Ok(None);
        };
        // `content_length()` is the (empty) body's length on a HEAD.
        match header_number(&response, header::CONTENT_LENGTH) {
            Some(size) => Ok(Some(size)),
            // Not 0: the answer says nothing of the size. Its first
            // byte's answer does.
            None => self.blob_size_by_range(repo, digest).await,
        }
    }

    /// A blob's size from `GET` with `Range: bytes=0-0`: the total of the
    /// `Content-Range` of a 206, or the `Content-Length` of a 200 (whose
    /// body is not read). Neither is [`ClientError::Protocol`].
    async fn blob_size_by_range(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<u64>, ClientError> {
        let digest_text = digest.to_string();
        let url = self.url(&v2(repo, &["blobs", &digest_text]), &[]);
        let answer = self
            .distribution(&pull_scope(repo), |http| {
                http.get(url.clone()).header(header::RANGE, "bytes=0-0")
            })
            .await;
        let Some(response) = found(answer)? else {
            return Ok(None);
        };
        let size = match response.status() {
            StatusCode::PARTIAL_CONTENT => response
                .headers()
                .get(header::CONTENT_RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit_once('/'))
                .and_then(|(_, total)| total.trim().parse().ok()),
            _ => header_number(&response, header::CONTENT_LENGTH),
        };
        // Dropped unread: at most a byte of a 206, a closed connection
        // for a 200.
        drop(response);
        size.map(Some).ok_or_else(|| ClientError::Protocol {
            url: url.to_string(),
            problem: "the upstream tells no size of the blob (no Content-Length, no Content-Range)",
        })
    }

    /// Pushes a blob in one request (`POST …/blobs/uploads/?digest=`); its
    /// sha256 digest.
    pub async fn push_blob(
        &self,
        repo: &RepositoryName,
        data: Bytes,
    ) -> Result<Digest, ClientError> {
        let digest = Digest::sha256_of(&data);
        let digest_text = digest.to_string();
        let url = self.url(
            &v2(repo, &["blobs", "uploads", ""]),
            &[("digest", &digest_text)],
        );
        let scope = push_scope(repo);
        let response = self
            .distribution(&scope, |http| {
                http.post(url.clone())
                    .header(header::CONTENT_TYPE, "application/octet-stream")
                    .body(data.clone())
            })
            .await?;
        if response.status() == StatusCode::ACCEPTED {
            // The registry opened a session instead of taking the body
            // (CNCF Distribution does): send it again to finish that.
            let mut session = self.upload_location(&response, &url)?;
            session
                .query_pairs_mut()
                .append_pair("digest", &digest_text);
            let request = self
                .inner
                .http
                .put(session)
                .header(header::CONTENT_TYPE, "application/octet-stream")
                .body(data);
            let response = self.distribution_once(&scope, request).await?;
            check_reported(&response, &digest)?;
            return Ok(digest);
        }
        check_reported(&response, &digest)?;
        Ok(digest)
    }

    /// The session URL an upload start answered (`Location`, resolved
    /// against the base URL).
    fn upload_location(&self, response: &Response, start: &Url) -> Result<Url, ClientError> {
        response
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| self.base_url().join(l).ok())
            .ok_or_else(|| ClientError::Protocol {
                url: start.to_string(),
                problem: "starting an upload answered no usable Location",
            })
    }

    /// Pushes a blob of any size from a stream, in an upload session
    /// (`POST …/blobs/uploads/`, then one `PUT …?digest=` streaming the
    /// bytes). The registry verifies `digest`; a mismatch is refused.
    pub async fn push_blob_stream<S, E>(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
        stream: S,
    ) -> Result<(), ClientError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        let scope = push_scope(repo);
        let start = self.url(&v2(repo, &["blobs", "uploads", ""]), &[]);
        let response = self
            .distribution(&scope, |http| {
                http.post(start.clone()).header(header::CONTENT_LENGTH, "0")
            })
            .await?;
        let mut url = self.upload_location(&response, &start)?;
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let request = self
            .inner
            .http
            .put(url)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::Body::wrap_stream(stream.map_err(Into::into)));
        let response = self.distribution_once(&scope, request).await?;
        check_reported(&response, digest)
    }

    /// Pulls a blob as a [`BlobStream`], verified against `digest` while
    /// read.
    pub async fn pull_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<BlobStream, ClientError> {
        let digest_text = digest.to_string();
        let url = self.url(&v2(repo, &["blobs", &digest_text]), &[]);
        let response = self
            .distribution(&pull_scope(repo), |http| http.get(url.clone()))
            .await?;
        Ok(BlobStream::new(response, digest.clone()))
    }

    /// `GET` of a blob, unverified: the answer whose body the caller
    /// streams and checks itself (the proxy cache hands it to a blob store,
    /// whose put verifies the digest, instead of hashing twice).
    pub(crate) async fn pull_blob_response(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Response, ClientError> {
        let digest_text = digest.to_string();
        let url = self.url(&v2(repo, &["blobs", &digest_text]), &[]);
        self.distribution(&pull_scope(repo), |http| http.get(url.clone()))
            .await
    }

    /// Pulls a (small) blob whole, verified.
    pub async fn pull_blob_bytes(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<Bytes, ClientError> {
        self.pull_blob(repo, digest).await?.bytes().await
    }

    /// `DELETE /v2/<name>/blobs/<digest>`.
    pub async fn delete_blob(
        &self,
        repo: &RepositoryName,
        digest: &Digest,
    ) -> Result<(), ClientError> {
        self.delete(repo, "blobs", &digest.to_string()).await
    }

    /// `DELETE /v2/<name>/<kind>/<last>`, with the token flow's delete scope.
    async fn delete(
        &self,
        repo: &RepositoryName,
        kind: &str,
        last: &str,
    ) -> Result<(), ClientError> {
        let url = self.url(&v2(repo, &[kind, last]), &[]);
        self.distribution(&format!("repository:{repo}:delete"), |http| {
            http.delete(url.clone())
        })
        .await?;
        Ok(())
    }

    /// Pushes a manifest (its exact bytes) under a tag or its digest; its
    /// digest (sha256, or the algorithm of a digest reference).
    pub async fn put_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest, ClientError> {
        let algorithm = match reference {
            Reference::Digest(d) => d.algorithm(),
            Reference::Tag(_) => Algorithm::Sha256,
        };
        let digest = Digest::of(algorithm, &bytes);
        if let Reference::Digest(wanted) = reference {
            if *wanted != digest {
                return Err(ClientError::DigestMismatch {
                    expected: wanted.clone(),
                    actual: digest,
                });
            }
        }
        let reference_text = reference.to_string();
        let url = self.url(&v2(repo, &["manifests", &reference_text]), &[]);
        let response = self
            .distribution(&push_scope(repo), |http| {
                http.put(url.clone())
                    .header(header::CONTENT_TYPE, media_type)
                    .body(bytes.clone())
            })
            .await?;
        check_reported(&response, &digest)?;
        Ok(digest)
    }

    /// Pulls a manifest by tag or digest. Its digest is checked against a
    /// digest reference, else against the `Docker-Content-Digest` the
    /// registry sent.
    pub async fn get_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<Manifest, ClientError> {
        let reference_text = reference.to_string();
        let url = self.url(&v2(repo, &["manifests", &reference_text]), &[]);
        let response = self
            .distribution(&pull_scope(repo), |http| {
                http.get(url.clone())
                    .header(header::ACCEPT, MANIFEST_ACCEPT)
            })
            .await?;
        let reported = content_digest(&response);
        let media_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or(media_type::OCI_MANIFEST)
            .to_owned();
        let bytes = read_within(response, self.inner.max_manifest_bytes).await?;
        let expected = match reference {
            Reference::Digest(d) => Some(d.clone()),
            Reference::Tag(_) => reported,
        };
        let algorithm = expected
            .as_ref()
            .map_or(Algorithm::Sha256, Digest::algorithm);
        let digest = Digest::of(algorithm, &bytes);
        if let Some(expected) = expected.filter(|e| *e != digest) {
            return Err(ClientError::DigestMismatch {
                expected,
                actual: digest,
            });
        }
        Ok(Manifest {
            bytes,
            media_type,
            digest,
        })
    }

    /// `HEAD /v2/<name>/manifests/<reference>`: the digest the registry
    /// reports for a tag or digest (`Docker-Content-Digest`), `None` when it
    /// has no such manifest. A registry that reports no digest is a
    /// [`ClientError::Protocol`] error.
    pub async fn manifest_digest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<Digest>, ClientError> {
        let reference_text = reference.to_string();
        let url = self.url(&v2(repo, &["manifests", &reference_text]), &[]);
        let answer = self
            .distribution(&pull_scope(repo), |http| {
                http.head(url.clone())
                    .header(header::ACCEPT, MANIFEST_ACCEPT)
            })
            .await;
        let Some(response) = found(answer)? else {
            return Ok(None);
        };
        match content_digest(&response) {
            Some(digest) => Ok(Some(digest)),
            None => Err(ClientError::Protocol {
                url: url.to_string(),
                problem: "no Docker-Content-Digest in the answer to a manifest HEAD",
            }),
        }
    }

    /// `DELETE /v2/<name>/manifests/<reference>`: a manifest by digest, or
    /// a tag.
    pub async fn delete_manifest(
        &self,
        repo: &RepositoryName,
        reference: &Reference,
    ) -> Result<(), ClientError> {
        self.delete(repo, "manifests", &reference.to_string()).await
    }

    /// A page of `GET /v2/<name>/tags/list`.
    pub async fn tags(
        &self,
        repo: &RepositoryName,
        page: &Page,
    ) -> Result<Paged<TagList>, ClientError> {
        let query = page.query();
        let url = self.url(&v2(repo, &["tags", "list"]), &pairs(&query));
        let response = self
            .distribution(&pull_scope(repo), |http| http.get(url.clone()))
            .await?;
        let next = next_from_link(self.base_url(), &response);
        Ok(Paged {
            page: json(response).await?,
            next,
        })
    }

    /// Every tag of a repository, following the pages (see
    /// [`tags_up_to`](Self::tags_up_to)).
    pub async fn all_tags(&self, repo: &RepositoryName) -> Result<Vec<Tag>, ClientError> {
        self.tags_up_to(repo, usize::MAX).await
    }

    /// The first `limit` tags of a repository (or all, when fewer),
    /// following the pages; ask for one more than you keep to learn
    /// whether there are more. The listing is bounded whatever the server
    /// answers: a `Link` whose `last` does not move past the previous one
    /// (a server that would send the same page for ever), more than
    /// 3 pages without a tag that still link to a
    /// next one, or more than 10 000 pages in all are
    /// [`ClientError::Protocol`].
    pub async fn tags_up_to(
        &self,
        repo: &RepositoryName,
        limit: usize,
    ) -> Result<Vec<Tag>, ClientError> {
        let mut page = Page::first();
        let mut previous: Option<String> = None;
        let mut all = Vec::new();
        let (mut pages, mut empty) = (0usize, 0usize);
        let problem = |problem| ClientError::Protocol {
            url: self.url(&v2(repo, &["tags", "list"]), &[]).to_string(),
            problem,
        };
        loop {
            let Paged { page: list, next } = self.tags(repo, &page).await?;
            pages += 1;
            if list.tags.is_empty() {
                empty += 1;
            }
            // Appended one by one: a page larger than asked for does not
            // take the list past the limit even for a moment.
            for tag in list.tags {
                if all.len() >= limit {
                    break;
                }
                all.push(tag);
            }
            if all.len() >= limit {
                return Ok(all);
            }
            match next {
                Some(last)
                    if previous
                        .as_ref()
                        .is_some_and(|p| last.as_str() <= p.as_str()) =>
                {
                    return Err(problem(
                        "the tag list's next page does not start after the previous one",
                    ));
                }
                Some(_) if empty > MAX_EMPTY_TAG_PAGES => {
                    return Err(problem("the tag list goes on with pages holding no tag"));
                }
                Some(_) if pages >= MAX_TAG_PAGES => {
                    return Err(problem("the tag list has too many pages"));
                }
                Some(last) => {
                    previous = Some(last.clone());
                    page = Page::after(last);
                }
                None => return Ok(all),
            }
        }
    }

    /// A page of `GET /v2/_catalog` (only what the caller may see).
    pub async fn catalog(&self, page: &Page) -> Result<Paged<Catalog>, ClientError> {
        let query = page.query();
        let url = self.url(&["v2", "_catalog"], &pairs(&query));
        let response = self
            .distribution("registry:catalog:*", |http| http.get(url.clone()))
            .await?;
        let next = next_from_link(self.base_url(), &response);
        Ok(Paged {
            page: json(response).await?,
            next,
        })
    }

    /// Every repository of the catalog, following the pages.
    pub async fn all_repositories(&self) -> Result<Vec<RepositoryName>, ClientError> {
        let mut page = Page::first();
        let mut all = Vec::new();
        loop {
            let Paged { page: list, next } = self.catalog(&page).await?;
            all.extend(list.repositories);
            match next {
                Some(last) => page = Page::after(last),
                None => return Ok(all),
            }
        }
    }

    /// A page of `GET /v2/<name>/referrers/<digest>`, optionally only of
    /// one `artifact_type`.
    pub async fn referrers(
        &self,
        repo: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        page: &Page,
    ) -> Result<Paged<ReferrersIndex>, ClientError> {
        let mut query = page.query();
        if let Some(a) = artifact_type {
            query.push(("artifactType", a.to_owned()));
        }
        let subject_text = subject.to_string();
        let url = self.url(&v2(repo, &["referrers", &subject_text]), &pairs(&query));
        let response = self
            .distribution(&pull_scope(repo), |http| http.get(url.clone()))
            .await?;
        let next = next_from_link(self.base_url(), &response);
        Ok(Paged {
            page: json(response).await?,
            next,
        })
    }
}
