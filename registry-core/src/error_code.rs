//! OCI distribution error codes, their HTTP statuses, and the JSON envelope.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An error code of the OCI distribution spec (plus the registry's own
/// `TOOMANYREQUESTS`, as Distribution defines it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// The blob is unknown to the registry, or not visible in this repository.
    BlobUnknown,
    /// The upload failed; the client should restart it.
    BlobUploadInvalid,
    /// The upload session is unknown or was cancelled.
    BlobUploadUnknown,
    /// The provided digest did not match the content.
    DigestInvalid,
    /// A blob or manifest referenced by the manifest is unknown.
    ManifestBlobUnknown,
    /// The manifest is malformed or refused.
    ManifestInvalid,
    /// The manifest is unknown.
    ManifestUnknown,
    /// The repository name is invalid.
    NameInvalid,
    /// The repository (or its namespace) is unknown.
    NameUnknown,
    /// Content length does not match or exceeds a limit.
    SizeInvalid,
    /// Authentication is required.
    Unauthorized,
    /// The caller is authenticated but not allowed.
    Denied,
    /// The operation is not supported.
    Unsupported,
    /// Too many requests.
    #[serde(rename = "TOOMANYREQUESTS")]
    TooManyRequests,
    /// The registry failed in a way the client cannot fix (details are logged).
    Unknown,
    /// The registry cannot serve the request for now (e.g. its storage is
    /// full); retrying later may succeed. Registered by CNCF Distribution.
    Unavailable,
}

impl ErrorCode {
    /// Every code, for tables and tests.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::BlobUnknown,
        ErrorCode::BlobUploadInvalid,
        ErrorCode::BlobUploadUnknown,
        ErrorCode::DigestInvalid,
        ErrorCode::ManifestBlobUnknown,
        ErrorCode::ManifestInvalid,
        ErrorCode::ManifestUnknown,
        ErrorCode::NameInvalid,
        ErrorCode::NameUnknown,
        ErrorCode::SizeInvalid,
        ErrorCode::Unauthorized,
        ErrorCode::Denied,
        ErrorCode::Unsupported,
        ErrorCode::TooManyRequests,
        ErrorCode::Unknown,
        ErrorCode::Unavailable,
    ];

    /// The code's wire form and default HTTP status and message, in one table.
    const fn entry(self) -> (&'static str, u16, &'static str) {
        match self {
            ErrorCode::BlobUnknown => ("BLOB_UNKNOWN", 404, "blob unknown to registry"),
            ErrorCode::BlobUploadInvalid => ("BLOB_UPLOAD_INVALID", 400, "blob upload invalid"),
            ErrorCode::BlobUploadUnknown => (
                "BLOB_UPLOAD_UNKNOWN",
                404,
                "blob upload unknown to registry",
            ),
            ErrorCode::DigestInvalid => (
                "DIGEST_INVALID",
                400,
                "provided digest did not match uploaded content",
            ),
            ErrorCode::ManifestBlobUnknown => (
                "MANIFEST_BLOB_UNKNOWN",
                404,
                "manifest references a manifest or blob unknown to registry",
            ),
            ErrorCode::ManifestInvalid => ("MANIFEST_INVALID", 400, "manifest invalid"),
            ErrorCode::ManifestUnknown => ("MANIFEST_UNKNOWN", 404, "manifest unknown"),
            ErrorCode::NameInvalid => ("NAME_INVALID", 400, "invalid repository name"),
            ErrorCode::NameUnknown => {
                ("NAME_UNKNOWN", 404, "repository name not known to registry")
            }
            ErrorCode::SizeInvalid => (
                "SIZE_INVALID",
                400,
                "provided length did not match content length",
            ),
            ErrorCode::Unauthorized => ("UNAUTHORIZED", 401, "authentication required"),
            ErrorCode::Denied => ("DENIED", 403, "requested access to the resource is denied"),
            ErrorCode::Unsupported => ("UNSUPPORTED", 405, "the operation is unsupported"),
            ErrorCode::TooManyRequests => ("TOOMANYREQUESTS", 429, "too many requests"),
            ErrorCode::Unknown => ("UNKNOWN", 500, "internal error"),
            ErrorCode::Unavailable => ("UNAVAILABLE", 503, "service unavailable"),
        }
    }

    /// The wire form, e.g. `BLOB_UNKNOWN`.
    pub const fn as_str(self) -> &'static str {
        self.entry().0
    }

    /// The HTTP status the spec pairs with this code.
    pub const fn http_status(self) -> u16 {
        self.entry().1
    }

    /// A generic human-readable message.
    pub const fn default_message(self) -> &'static str {
        self.entry().2
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of the error envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// The code.
    pub code: ErrorCode,
    /// A message for humans.
    pub message: String,
    /// Unstructured detail, omitted when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// The `{"errors":[...]}` body every error response carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorEnvelope {
    /// The errors.
    pub errors: Vec<ErrorInfo>,
}

impl ErrorEnvelope {
    /// An envelope with one error.
    pub fn single(code: ErrorCode, message: impl Into<String>) -> Self {
        ErrorEnvelope {
            errors: vec![ErrorInfo {
                code,
                message: message.into(),
                detail: None,
            }],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_matches_serde() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
            assert!(code.http_status() >= 400);
        }
    }

    #[test]
    fn envelope_shape() {
        let e = ErrorEnvelope::single(ErrorCode::NameUnknown, "no such repo");
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["errors"][0]["code"], "NAME_UNKNOWN");
        assert_eq!(v["errors"][0]["message"], "no such repo");
        assert!(v["errors"][0].get("detail").is_none());
    }
}
