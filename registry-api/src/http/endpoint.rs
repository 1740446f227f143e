//! Routing of `/v2/{*rest}`: the path is parsed from the right into a typed
//! [`Endpoint`], so repository names may have any number of components.

use registry_core::{Digest, ErrorCode, Reference, ReferenceError, RepositoryName};
use registry_storage::UploadId;

use super::error::ApiError;

/// A distribution API endpoint with its parsed path parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `/v2/_catalog`
    Catalog,
    /// `/v2/<name>/tags/list`
    Tags(RepositoryName),
    /// `/v2/<name>/manifests/<reference>`
    Manifest(RepositoryName, Reference),
    /// `/v2/<name>/manifests/<reference>` whose reference is neither a tag
    /// nor a digest (as given, and why). No manifest can be found under it
    /// (clients probe with such names: a `GET` is `MANIFEST_UNKNOWN`), and
    /// none can be put under it.
    InvalidReference(RepositoryName, String, ReferenceError),
    /// `/v2/<name>/blobs/<digest>`
    Blob(RepositoryName, Digest),
    /// `/v2/<name>/blobs/uploads/`
    UploadStart(RepositoryName),
    /// `/v2/<name>/blobs/uploads/<id>`
    Upload(RepositoryName, UploadId),
    /// `/v2/<name>/referrers/<digest>`
    Referrers(RepositoryName, Digest),
}

fn name(s: &str) -> Result<RepositoryName, ApiError> {
    s.parse().map_err(|e| {
        ApiError::new(
            ErrorCode::NameInvalid,
            format!("invalid repository name {s:?}: {e}"),
        )
    })
}

fn digest(s: &str, code: ErrorCode) -> Result<Digest, ApiError> {
    s.parse()
        .map_err(|e| ApiError::new(code, format!("invalid digest {s:?}: {e}")))
}

impl Endpoint {
    /// Parses the part of the path after `/v2/`. `Ok(None)` means no
    /// endpoint has this shape (a 404 for the router).
    pub fn parse(rest: &str) -> Result<Option<Self>, ApiError> {
        if rest == "_catalog" {
            return Ok(Some(Endpoint::Catalog));
        }
        if let Some(repo) = rest.strip_suffix("/tags/list") {
            return Ok(Some(Endpoint::Tags(name(repo)?)));
        }
        if let Some(repo) = rest
            .strip_suffix("/blobs/uploads/")
            .or_else(|| rest.strip_suffix("/blobs/uploads"))
        {
            return Ok(Some(Endpoint::UploadStart(name(repo)?)));
        }
        let Some((head, last)) = rest.rsplit_once('/') else {
            return Ok(None);
        };
        if let Some(repo) = head.strip_suffix("/blobs/uploads") {
            let repo = name(repo)?;
            let id = last.parse().map_err(|_| {
                ApiError::new(
                    ErrorCode::BlobUploadUnknown,
                    format!("upload {last:?} unknown"),
                )
            })?;
            return Ok(Some(Endpoint::Upload(repo, id)));
        }
        let Some((repo, kind)) = head.rsplit_once('/') else {
            return Ok(None);
        };
        match kind {
            "manifests" => {
                let repo = name(repo)?;
                // What to answer depends on the method: the dispatcher decides.
                Ok(Some(match last.parse() {
                    Ok(reference) => Endpoint::Manifest(repo, reference),
                    Err(e) => Endpoint::InvalidReference(repo, last.to_owned(), e),
                }))
            }
            "blobs" => Ok(Some(Endpoint::Blob(
                name(repo)?,
                digest(last, ErrorCode::DigestInvalid)?,
            ))),
            "referrers" => Ok(Some(Endpoint::Referrers(
                name(repo)?,
                digest(last, ErrorCode::DigestInvalid)?,
            ))),
            _ => Ok(None),
        }
    }

    /// The repository the endpoint addresses (none for the catalog).
    pub fn repository(&self) -> Option<&RepositoryName> {
        match self {
            Endpoint::Catalog => None,
            Endpoint::Tags(r)
            | Endpoint::Manifest(r, _)
            | Endpoint::InvalidReference(r, ..)
            | Endpoint::Blob(r, _)
            | Endpoint::UploadStart(r)
            | Endpoint::Upload(r, _)
            | Endpoint::Referrers(r, _) => Some(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Endpoint {
        Endpoint::parse(s).unwrap().unwrap()
    }

    #[test]
    fn names_of_any_depth() {
        let d = Digest::sha256_of(b"x");
        assert_eq!(parse("_catalog"), Endpoint::Catalog);
        match parse("a/b/c/d/e/f/g/tags/list") {
            Endpoint::Tags(n) => assert_eq!(n.as_str(), "a/b/c/d/e/f/g"),
            other => panic!("{other:?}"),
        }
        match parse(&format!("a/blobs/x/blobs/{d}")) {
            Endpoint::Blob(n, got) => {
                assert_eq!(n.as_str(), "a/blobs/x");
                assert_eq!(got, d);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(parse("a/manifests/b/manifests/latest"), Endpoint::Manifest(n, _) if n.as_str() == "a/manifests/b")
        );
        assert!(matches!(
            parse("ns/app/blobs/uploads/"),
            Endpoint::UploadStart(_)
        ));
        let id = UploadId::random();
        assert!(
            matches!(parse(&format!("ns/app/blobs/uploads/{id}")), Endpoint::Upload(_, got) if got == id)
        );
        assert!(matches!(
            parse(&format!("ns/app/referrers/{d}")),
            Endpoint::Referrers(..)
        ));
    }

    #[test]
    fn malformed_parts_have_their_codes() {
        let code = |s: &str| Endpoint::parse(s).unwrap_err().code();
        assert_eq!(code("single/tags/list"), ErrorCode::NameInvalid);
        assert_eq!(code("Upper/x/tags/list"), ErrorCode::NameInvalid);
        assert_eq!(code("ns/app/blobs/sha256:nothex"), ErrorCode::DigestInvalid);
        assert!(matches!(
            parse("ns/app/manifests/-bad"),
            Endpoint::InvalidReference(n, r, registry_core::ReferenceError::Tag(_))
                if n.as_str() == "ns/app" && r == "-bad"
        ));
        assert!(matches!(
            parse("ns/app/manifests/sha256:short"),
            Endpoint::InvalidReference(_, _, registry_core::ReferenceError::Digest(_))
        ));
        assert_eq!(
            code("ns/app/blobs/uploads/not-an-id"),
            ErrorCode::BlobUploadUnknown
        );
        assert!(Endpoint::parse("ns/app/other/x").unwrap().is_none());
        assert!(Endpoint::parse("nothing").unwrap().is_none());
    }
}
