//! [`ApiError`]: the one type that becomes an OCI error response.

use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use registry_core::{ErrorCode, ErrorEnvelope};
use registry_storage::StorageError;

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
        } = *self.0;
        let body = ErrorEnvelope::single(code, message);
        let mut response = (status, axum::Json(body)).into_response();
        response.headers_mut().extend(headers);
        response
    }
}

impl From<StorageError> for ApiError {
    /// The mapping for errors a handler did not interpret itself: meanings
    /// that are the client's fault keep a client code, the rest is internal.
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::DigestMismatch { expected, actual } => ApiError::new(
                ErrorCode::DigestInvalid,
                format!("digest mismatch: expected {expected}, content is {actual}"),
            ),
            StorageError::SizeMismatch { expected, actual } => ApiError::new(
                ErrorCode::SizeInvalid,
                format!("expected {expected} bytes, got {actual}"),
            ),
            StorageError::UploadUnknown { id } => {
                ApiError::new(ErrorCode::BlobUploadUnknown, format!("upload {id} unknown"))
            }
            StorageError::RangeNotSatisfiable { start, end, size } => ApiError::new(
                ErrorCode::BlobUploadInvalid,
                format!("range {start}-{end} outside 0-{size}"),
            )
            .with_status(StatusCode::RANGE_NOT_SATISFIABLE),
            StorageError::Incoming { source }
                if source.is::<crate::http_util::BodyIdleTimeout>() =>
            {
                // The client stalled: 408, and the connection is not reused
                // (the rest of its body may still be on the way).
                ApiError::new(
                    ErrorCode::BlobUploadInvalid,
                    format!("{source}: the upload is left as it was before this request"),
                )
                .with_status(StatusCode::REQUEST_TIMEOUT)
                .with_header(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                )
            }
            // Not the client's fault, but not a bug either: say what it is
            // (507) so that operators and clients see it, not `UNKNOWN`.
            StorageError::StorageFull { source } => {
                tracing::error!(error = %source, "storage full: writes fail until space is freed");
                ApiError::new(
                    ErrorCode::Unavailable,
                    "the registry's storage is full; retry once space is freed",
                )
                .with_status(StatusCode::INSUFFICIENT_STORAGE)
                .with_header(
                    axum::http::header::RETRY_AFTER,
                    HeaderValue::from_static("60"),
                )
            }
            StorageError::Incoming { source } => ApiError::new(
                ErrorCode::BlobUploadInvalid,
                format!("request body failed: {source}"),
            ),
            // Raced a prune: retrying (uploading the blob again) works.
            StorageError::BlobDeleted { digest } => ApiError::new(
                ErrorCode::BlobUnknown,
                format!("blob {digest} is being deleted by garbage collection; retry"),
            )
            .with_status(StatusCode::SERVICE_UNAVAILABLE)
            .with_header(
                axum::http::header::RETRY_AFTER,
                HeaderValue::from_static("1"),
            ),
            other => ApiError::internal(other),
        }
    }
}

impl From<registry_auth::AuthStoreError> for ApiError {
    /// Auth records that are missing or taken are the client's business
    /// (`NAME_UNKNOWN`, 409); anything else is internal.
    fn from(e: registry_auth::AuthStoreError) -> Self {
        use registry_auth::AuthStoreError;
        match e {
            AuthStoreError::NotFound { .. } => ApiError::new(ErrorCode::NameUnknown, e.to_string()),
            AuthStoreError::AlreadyExists { .. } => {
                ApiError::new(ErrorCode::Unsupported, e.to_string())
                    .with_status(StatusCode::CONFLICT)
            }
            other => ApiError::internal(other),
        }
    }
}

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;
