//! [`ApiError`]: the one type that becomes an OCI error response.

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use registry_core::{ErrorCode, ErrorEnvelope};
use registry_storage::StorageError;

use super::util::header_value;
use crate::service::{ArgumentKind, RegistryError};

/// A 401 that wants a `WWW-Authenticate` challenge: the authentication
/// layer, which knows the realm, writes the header from this response
/// extension.
#[derive(Debug, Clone, Default)]
pub(crate) struct Challenge {
    /// The token scope that would allow the request.
    pub(crate) scope: Option<String>,
    /// The caller's registry token lacked the scope.
    pub(crate) insufficient_scope: bool,
}

/// An error on its way to the client: an OCI code, a message, the HTTP
/// status (the code's own unless overridden) and extra headers.
#[derive(Debug)]
pub struct ApiError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    code: ErrorCode,
    status: StatusCode,
    message: String,
    headers: HeaderMap,
    challenge: Option<Challenge>,
}

impl ApiError {
    /// An error with the code's own status.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError(Box::new(Inner {
            code,
            status: StatusCode::from_u16(code.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            message: message.into(),
            headers: HeaderMap::new(),
            challenge: None,
        }))
    }

    /// Overrides the HTTP status (e.g. 413 or 416).
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.0.status = status;
        self
    }

    /// Adds a response header.
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.0.headers.insert(name, value);
        self
    }

    /// The OCI code.
    pub fn code(&self) -> ErrorCode {
        self.0.code
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// A 401 asking for credentials (the authentication layer adds the
    /// challenge header).
    pub(crate) fn unauthenticated(message: impl Into<String>) -> Self {
        let mut error = ApiError::new(ErrorCode::Unauthorized, message);
        error.0.challenge = Some(Challenge::default());
        error
    }

    /// An internal failure: logged in full, shown to the client as `UNKNOWN`.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "internal error");
        ApiError::new(ErrorCode::Unknown, "internal error; see the registry log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let Inner {
            code,
            status,
            message,
            headers,
            challenge,
        } = *self.0;
        let body = ErrorEnvelope::single(code, message);
        let mut response = (status, axum::Json(body)).into_response();
        response.headers_mut().extend(headers);
        if let Some(challenge) = challenge {
            response.extensions_mut().insert(challenge);
        }
        response
    }
}

/// Seconds for `Retry-After`: whole, rounded up, at least one.
fn retry_after(after: std::time::Duration) -> HeaderValue {
    let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    header_value(seconds.max(1).to_string())
}

impl From<RegistryError> for ApiError {
    /// The one mapping from what went wrong to the OCI error a client
    /// sees: its code, HTTP status and headers.
    fn from(e: RegistryError) -> Self {
        let message = e.to_string();
        match e {
            RegistryError::Unauthenticated {
                scope,
                insufficient_scope,
            } => {
                let mut error = ApiError::new(ErrorCode::Unauthorized, message);
                error.0.challenge = Some(Challenge {
                    scope,
                    insufficient_scope,
                });
                error
            }
            // Like Harbor: a quota refusal is DENIED, 403.
            RegistryError::Denied { .. }
            | RegistryError::TagImmutable { .. }
            | RegistryError::QuotaExceeded { .. } => ApiError::new(ErrorCode::Denied, message),
            RegistryError::RepositoryUnknown(_)
            | RegistryError::NamespaceUnknown(_)
            | RegistryError::NamespaceMissing(_)
            | RegistryError::RecordUnknown(_) => ApiError::new(ErrorCode::NameUnknown, message),
            RegistryError::ManifestUnknown { .. } | RegistryError::ImageUnknown(_) => {
                ApiError::new(ErrorCode::ManifestUnknown, message)
            }
            RegistryError::BlobUnknown { .. } => ApiError::new(ErrorCode::BlobUnknown, message),
            RegistryError::UploadUnknown(_) => ApiError::new(ErrorCode::BlobUploadUnknown, message),
            RegistryError::ManifestInvalid(_) => ApiError::new(ErrorCode::ManifestInvalid, message),
            RegistryError::ManifestReferenceUnknown(_) => {
                ApiError::new(ErrorCode::ManifestBlobUnknown, message)
            }
            RegistryError::ManifestTooLarge { .. } => {
                ApiError::new(ErrorCode::SizeInvalid, message)
                    .with_status(StatusCode::PAYLOAD_TOO_LARGE)
            }
            RegistryError::DigestMismatch { .. } => {
                ApiError::new(ErrorCode::DigestInvalid, message)
            }
            RegistryError::SizeMismatch { .. } => ApiError::new(ErrorCode::SizeInvalid, message),
            RegistryError::RangeNotSatisfiable { size } => {
                ApiError::new(ErrorCode::SizeInvalid, message)
                    .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
                    .with_header(
                        header::CONTENT_RANGE,
                        header_value(format!("bytes */{size}")),
                    )
            }
            RegistryError::ChunkRefused {
                repository,
                id,
                offset,
                ..
            } => ApiError::new(ErrorCode::BlobUploadInvalid, message)
                .with_status(StatusCode::RANGE_NOT_SATISFIABLE)
                .with_header(header::RANGE, header_value(range_value(offset)))
                .with_header(
                    header::LOCATION,
                    header_value(format!("/v2/{repository}/blobs/uploads/{id}")),
                ),
            RegistryError::InvalidArgument { kind, .. } => match kind {
                ArgumentKind::Name => ApiError::new(ErrorCode::NameInvalid, message),
                ArgumentKind::Digest => ApiError::new(ErrorCode::DigestInvalid, message),
                ArgumentKind::Manifest => ApiError::new(ErrorCode::ManifestInvalid, message)
                    .with_status(StatusCode::BAD_REQUEST),
                _ => ApiError::new(ErrorCode::Unsupported, message)
                    .with_status(StatusCode::BAD_REQUEST),
            },
            RegistryError::AlreadyExists(_) | RegistryError::Conflict(_) => {
                ApiError::new(ErrorCode::Unsupported, message).with_status(StatusCode::CONFLICT)
            }
            RegistryError::AccessControlOff => {
                ApiError::new(ErrorCode::Unsupported, message).with_status(StatusCode::NOT_FOUND)
            }
            RegistryError::TooManyRequests {
                retry_after: after, ..
            } => ApiError::new(ErrorCode::TooManyRequests, message)
                .with_header(header::RETRY_AFTER, retry_after(after)),
            // The client stalled: 408, and the connection is not reused
            // (the rest of its body may still be on the way).
            RegistryError::BodyTimeout(_) => ApiError::new(ErrorCode::BlobUploadInvalid, message)
                .with_status(StatusCode::REQUEST_TIMEOUT)
                .with_header(header::CONNECTION, HeaderValue::from_static("close")),
            RegistryError::BodyFailed(_) => ApiError::new(ErrorCode::BlobUploadInvalid, message),
            // Not the client's fault, but not a bug either: say what it is
            // (507) so that operators and clients see it, not `UNKNOWN`.
            RegistryError::StorageFull(source) => {
                tracing::error!(error = %source, "storage full: writes fail until space is freed");
                ApiError::new(ErrorCode::Unavailable, message)
                    .with_status(StatusCode::INSUFFICIENT_STORAGE)
                    .with_header(header::RETRY_AFTER, HeaderValue::from_static("60"))
            }
            // Raced a prune: retrying (uploading the blob again) works.
            RegistryError::BlobBeingDeleted(_) => ApiError::new(ErrorCode::BlobUnknown, message)
                .with_status(StatusCode::SERVICE_UNAVAILABLE)
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")),
            RegistryError::ProxyReadOnly(_) => ApiError::new(ErrorCode::Denied, message),
            // Not the client's fault: say so (503) and when to retry.
            RegistryError::UpstreamUnavailable { .. } => {
                ApiError::new(ErrorCode::Unavailable, message)
                    .with_status(StatusCode::SERVICE_UNAVAILABLE)
                    .with_header(header::RETRY_AFTER, HeaderValue::from_static("30"))
            }
            RegistryError::Internal(source) => ApiError::internal(source),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        RegistryError::from(e).into()
    }
}

impl From<registry_auth::AuthStoreError> for ApiError {
    fn from(e: registry_auth::AuthStoreError) -> Self {
        RegistryError::from(e).into()
    }
}

/// `Range` value for a session holding `offset` bytes (Distribution's
/// form: `0-<last byte>`, `0-0` when empty).
pub(crate) fn range_value(offset: u64) -> String {
    format!("0-{}", offset.saturating_sub(1))
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;
    use registry_core::{Digest, RepositoryName};
    use std::time::Duration;

    fn mapped(e: RegistryError) -> (ErrorCode, StatusCode, Response) {
        let api = ApiError::from(e);
        let (code, status) = (api.code(), api.status());
        (code, status, api.into_response())
    }

    #[test]
    fn each_meaning_has_its_code_status_and_headers() {
        let repo: RepositoryName = "team/app".parse().unwrap();
        let digest = Digest::sha256_of(b"x");
        let id = registry_storage::UploadId::random();
        let (code, status, response) = mapped(RegistryError::Unauthenticated {
            scope: Some("repository:team/app:pull".into()),
            insufficient_scope: false,
        });
        assert_eq!(
            (code, status),
            (ErrorCode::Unauthorized, StatusCode::UNAUTHORIZED)
        );
        // The challenge is left to the authentication layer, as an extension.
        assert!(response.extensions().get::<Challenge>().is_some());
        let (code, status, _) = mapped(RegistryError::Denied {
            subject: "bob".into(),
            action: "Push".into(),
            target: "in team/app".into(),
        });
        assert_eq!((code, status), (ErrorCode::Denied, StatusCode::FORBIDDEN));
        let (code, status, _) = mapped(RegistryError::QuotaExceeded {
            namespace: "team".parse().unwrap(),
            usage: (1 << 30) + (1 << 30) / 5,
            limit: 1 << 30,
            needed: 300 << 20,
        });
        assert_eq!((code, status), (ErrorCode::Denied, StatusCode::FORBIDDEN));
        let (code, status, _) = mapped(RegistryError::BlobUnknown {
            repository: repo.clone(),
            digest: digest.clone(),
        });
        assert_eq!(
            (code, status),
            (ErrorCode::BlobUnknown, StatusCode::NOT_FOUND)
        );
        let (code, status, response) = mapped(RegistryError::ChunkRefused {
            repository: repo.clone(),
            id: id.clone(),
            offset: 10,
            reason: "chunk starts at 5, upload is at 10".into(),
        });
        assert_eq!(
            (code, status),
            (
                ErrorCode::BlobUploadInvalid,
                StatusCode::RANGE_NOT_SATISFIABLE
            )
        );
        assert_eq!(response.headers()[header::RANGE], "0-9");
        assert_eq!(
            response.headers()[header::LOCATION],
            format!("/v2/team/app/blobs/uploads/{id}").as_str()
        );
        let (code, status, response) = mapped(RegistryError::RangeNotSatisfiable { size: 7 });
        assert_eq!(
            (code, status),
            (ErrorCode::SizeInvalid, StatusCode::RANGE_NOT_SATISFIABLE)
        );
        assert_eq!(response.headers()[header::CONTENT_RANGE], "bytes */7");
        let (code, status, response) = mapped(RegistryError::TooManyRequests {
            message: "slow down".into(),
            retry_after: Duration::from_millis(1500),
        });
        assert_eq!(
            (code, status),
            (ErrorCode::TooManyRequests, StatusCode::TOO_MANY_REQUESTS)
        );
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let (code, status, _) = mapped(RegistryError::ManifestTooLarge { limit: 10 });
        assert_eq!(
            (code, status),
            (ErrorCode::SizeInvalid, StatusCode::PAYLOAD_TOO_LARGE)
        );
        let (code, status, _) = mapped(RegistryError::invalid("n", "not a number"));
        assert_eq!(
            (code, status),
            (ErrorCode::Unsupported, StatusCode::BAD_REQUEST)
        );
        let (code, _, _) = mapped(RegistryError::invalid_name("namespace", "bad"));
        assert_eq!(code, ErrorCode::NameInvalid);
        let (code, status, _) = mapped(RegistryError::AlreadyExists("namespace team".into()));
        assert_eq!(
            (code, status),
            (ErrorCode::Unsupported, StatusCode::CONFLICT)
        );
        let (code, status, response) =
            mapped(RegistryError::StorageFull("no space left on device".into()));
        assert_eq!(
            (code, status),
            (ErrorCode::Unavailable, StatusCode::INSUFFICIENT_STORAGE)
        );
        assert_eq!(response.headers()[header::RETRY_AFTER], "60");
        let (code, status, _) = mapped(RegistryError::internal("disk on fire"));
        assert_eq!(
            (code, status),
            (ErrorCode::Unknown, StatusCode::INTERNAL_SERVER_ERROR)
        );
    }
}
