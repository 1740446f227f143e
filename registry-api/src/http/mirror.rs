//! containerd's mirror mode: `?ns=<registry host>` on a request sent to a
//! mirror names the registry the image comes from. The proxy namespace
//! standing for that host serves it, with the name as the client sent it
//! (`/v2/library/alpine/manifests/3?ns=docker.io` is `hub/library/alpine`
//! when `hub` stands for `docker.io`).

use axum::http::StatusCode;
use registry_core::{ErrorCode, RepositoryName};

use super::endpoint::Endpoint;
use super::error::{ApiError, ApiResult};
use crate::service::Registry;

/// The `ns` query parameter, if present.
pub(crate) fn ns_host(query: &[(String, String)]) -> Option<&str> {
    query
        .iter()
        .find(|(k, _)| k == "ns")
        .map(|(_, v)| v.as_str())
}

/// `endpoint` with its repository moved under the proxy namespace that
/// stands for `host`. Reads only: uploads and the catalog are left as they
/// are (a push through a mirror is refused by the namespace anyway).
pub(crate) fn mirrored(registry: &Registry, host: &str, endpoint: Endpoint) -> ApiResult<Endpoint> {
    let Some(ns) = registry.proxy_for_host(host) else {
        return Err(ApiError::new(
            ErrorCode::NameUnknown,
            format!("no proxy namespace of this registry stands for host {host:?} (?ns=)"),
        )
        .with_status(StatusCode::NOT_FOUND));
    };
    let under = |repo: RepositoryName| -> ApiResult<RepositoryName> {
        RepositoryName::from_parts(ns.as_str(), repo.as_str()).map_err(|e| {
            ApiError::new(
                ErrorCode::NameInvalid,
                format!("{repo} cannot be served from proxy namespace {ns}: {e}"),
            )
        })
    };
    Ok(match endpoint {
        Endpoint::Manifest(repo, reference) => Endpoint::Manifest(under(repo)?, reference),
        Endpoint::InvalidReference(repo, reference, e) => {
            Endpoint::InvalidReference(under(repo)?, reference, e)
        }
        Endpoint::Blob(repo, digest) => Endpoint::Blob(under(repo)?, digest),
        Endpoint::Tags(repo) => Endpoint::Tags(under(repo)?),
        Endpoint::Referrers(repo, digest) => Endpoint::Referrers(under(repo)?, digest),
        other => other,
    })
}
