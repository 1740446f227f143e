//! [`RegistryError`]: what can go wrong in a registry operation, by meaning.
//! The HTTP layer turns it into the OCI error envelope in one place
//! (`From<RegistryError> for ApiError`); embedders match on it.

use std::time::Duration;

use registry_core::{Digest, Namespace, Reference, RepositoryName};
use registry_storage::{BoxError, HumanBytes, StorageError, UploadId};

/// The error of every operation of the service core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The caller is anonymous (or holds a registry token lacking the
    /// scope) and needs to authenticate for this. `scope` is the
    /// `repository:<name>:<actions>` to ask a token for, when one applies.
    #[error("authentication required")]
    Unauthenticated {
        /// The token scope that would allow the operation.
        scope: Option<String>,
        /// The caller presented a registry token whose scopes do not
        /// cover the operation (OAuth2 `insufficient_scope`).
        insufficient_scope: bool,
    },
    /// The caller is known and may not do this.
    #[error("{subject} may not {action} {target}")]
    Denied {
        /// Who asked.
        subject: String,
        /// What they tried (`push`, `delete`, `manage bindings`…).
        action: String,
        /// Where (`in team/app`, `in namespace team`, `here`).
        target: String,
    },
    /// No such repository.
    #[error("repository {0} unknown")]
    RepositoryUnknown(RepositoryName),
    /// No such namespace.
    #[error("namespace {0} does not exist")]
    NamespaceUnknown(Namespace),
    /// A push into a namespace that does not exist, by a caller who may
    /// not create it.
    #[error("namespace {0} does not exist; a cluster admin must create it")]
    NamespaceMissing(Namespace),
    /// No manifest under this reference in the repository.
    #[error("manifest {reference} unknown in repository {repository}")]
    ManifestUnknown {
        /// The repository.
        repository: RepositoryName,
        /// The tag or digest asked for.
        reference: Reference,
    },
    /// No repository the caller may pull holds this image.
    #[error("image {0} unknown")]
    ImageUnknown(Digest),
    /// The blob is not stored, or not linked to the repository (layer
    /// authorization: a repository serves only the blobs its images use).
    #[error("blob {digest} unknown in repository {repository}")]
    BlobUnknown {
        /// The repository.
        repository: RepositoryName,
        /// The blob.
        digest: Digest,
    },
    /// No such upload session (or it belongs to another repository).
    #[error("upload {0} unknown")]
    UploadUnknown(UploadId),
    /// A manifest the registry cannot accept.
    #[error("{0}")]
    ManifestInvalid(String),
    /// A manifest references a blob or child manifest the repository lacks.
    #[error("{0}")]
    ManifestReferenceUnknown(String),
    /// A manifest above the size limit.
    #[error("manifest is larger than {limit} bytes")]
    ManifestTooLarge {
        /// The limit.
        limit: usize,
    },
    /// Content does not have the digest it was sent under.
    #[error("digest mismatch: expected {expected}, content is {actual}")]
    DigestMismatch {
        /// The digest the client named.
        expected: Digest,
        /// The digest of what arrived.
        actual: Digest,
    },
    /// Content does not have the size it was sent with.
    #[error("expected {expected} bytes, got {actual}")]
    SizeMismatch {
        /// Announced size.
        expected: u64,
        /// Received size.
        actual: u64,
    },
    /// A byte range outside the blob.
    #[error("requested range not satisfiable: the blob has {size} bytes")]
    RangeNotSatisfiable {
        /// The blob's size.
        size: u64,
    },
    /// A chunk refused for its offset or its length; the session is where
    /// it was (`offset` bytes).
    #[error("{reason}")]
    ChunkRefused {
        /// The repository of the session.
        repository: RepositoryName,
        /// The session.
        id: UploadId,
        /// Bytes the session holds.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// A malformed argument (query parameter, body field, name).
    #[error("invalid {what}: {reason}")]
    InvalidArgument {
        /// What was malformed (`n`, `last`, `role`, `subject`…).
        what: String,
        /// Why.
        reason: String,
        /// A name or digest (`NAME_INVALID`, `DIGEST_INVALID` for the
        /// client) rather than a parameter.
        kind: ArgumentKind,
    },
    /// A tag an immutable-tags rule of the namespace's policy protects
    /// would move to another image or be deleted.
    #[error("tag {tag} in {repository} is immutable (namespace policy rule {rule:?}){}: it may not move to another image or be deleted", current.as_ref().map(|d| format!(" and points at {d}")).unwrap_or_default())]
    TagImmutable {
        /// The repository.
        repository: RepositoryName,
        /// The tag.
        tag: registry_core::Tag,
        /// The pattern that protects it.
        rule: String,
        /// The image it points at, when known.
        current: Option<Digest>,
    },
    /// A push would bring the namespace's stored bytes past its quota;
    /// nothing was stored. The message gives usage, quota and need in
    /// bytes and binary units.
    #[error(
        "namespace {namespace} is over its quota: {} used of {}, this push needs {} more \
         ({usage} of {limit} bytes used, {needed} more needed)",
        HumanBytes(*.usage), HumanBytes(*.limit), HumanBytes(*.needed)
    )]
    QuotaExceeded {
        /// The namespace.
        namespace: Namespace,
        /// Bytes it stores.
        usage: u64,
        /// Its quota in bytes.
        limit: u64,
        /// Bytes the refused push would add.
        needed: u64,
    },
    /// The record exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// The operation would break a rule of the registry's state (such as
    /// removing the last cluster-admin); the message names the rule.
    #[error("{0}")]
    Conflict(String),
    /// An auth record (user, service account, token) that does not exist.
    #[error("{0}")]
    RecordUnknown(String),
    /// Access control is off, so this operation has no meaning.
    #[error("access control is off on this registry")]
    AccessControlOff,
    /// The caller is doing too much at once; retry after the delay.
    #[error("{message}")]
    TooManyRequests {
        /// What limit was reached.
        message: String,
        /// When to retry.
        retry_after: Duration,
    },
    /// The request body stalled: the upload is as it was before.
    #[error("{0}: the upload is left as it was before this request")]
    BodyTimeout(BoxError),
    /// The request body failed part-way: the upload is as it was before.
    #[error("request body failed: {0}")]
    BodyFailed(BoxError),
    /// Storage is full; writes fail until space is freed.
    #[error("the registry's storage is full; retry once space is freed")]
    StorageFull(BoxError),
    /// A blob raced garbage collection; retrying works.
    #[error("blob {0} is being deleted by garbage collection; retry")]
    BlobBeingDeleted(Digest),
    /// A push or delete into a proxy namespace, whose content comes from
    /// its upstream only.
    #[error("{0} is a read-only proxy namespace: its content comes from its upstream registry")]
    ProxyReadOnly(Namespace),
    /// A proxy namespace's upstream failed, refused, was rate-limited,
    /// unreachable or too slow, and nothing cached could stand in.
    #[error("upstream {upstream} of proxy namespace {namespace} is unavailable: {reason}")]
    UpstreamUnavailable {
        /// The proxy namespace.
        namespace: Namespace,
        /// The upstream's `host[:port]`.
        upstream: String,
        /// What went wrong.
        reason: String,
    },
    /// A failure that is not the caller's: logged in full, shown as
    /// "internal error".
    #[error("internal error: {0}")]
    Internal(BoxError),
}

/// What kind of argument was malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ArgumentKind {
    /// A query parameter or body field.
    Parameter,
    /// A repository, namespace, user or service-account name.
    Name,
    /// A digest.
    Digest,
    /// A tag or a manifest field.
    Manifest,
}

impl RegistryError {
    /// An invalid query parameter or body field.
    pub fn invalid(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        RegistryError::InvalidArgument {
            what: what.into(),
            reason: reason.to_string(),
            kind: ArgumentKind::Parameter,
        }
    }

    /// An invalid name (repository, namespace, user, service account).
    pub fn invalid_name(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        RegistryError::InvalidArgument {
            what: what.into(),
            reason: reason.to_string(),
            kind: ArgumentKind::Name,
        }
    }

    /// An invalid digest.
    pub fn invalid_digest(what: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        RegistryError::InvalidArgument {
            what: what.into(),
            reason: reason.to_string(),
            kind: ArgumentKind::Digest,
        }
    }

    /// An internal failure.
    pub fn internal(e: impl Into<BoxError>) -> Self {
        RegistryError::Internal(e.into())
    }
}

/// A request body that sent no byte for
/// [`Limits::body_idle_timeout`](crate::Limits).
#[derive(Debug)]
pub(crate) struct BodyIdleTimeout {
    /// The timeout that passed.
    pub(crate) idle: Duration,
}

impl std::fmt::Display for BodyIdleTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "no byte of the request body arrived for {} s",
            self.idle.as_secs_f64()
        )
    }
}

impl std::error::Error for BodyIdleTimeout {}

impl From<StorageError> for RegistryError {
    /// The meaning of storage errors an operation did not interpret itself.
    fn from(e: StorageError) -> Self {
        match e {
            StorageError::DigestMismatch { expected, actual } => {
                RegistryError::DigestMismatch { expected, actual }
            }
            StorageError::SizeMismatch { expected, actual } => {
                RegistryError::SizeMismatch { expected, actual }
            }
            StorageError::UploadUnknown { id } => match id.parse() {
                Ok(id) => RegistryError::UploadUnknown(id),
                Err(_) => RegistryError::internal(format!("upload {id} unknown")),
            },
            StorageError::RangeNotSatisfiable { size, .. } => {
                RegistryError::RangeNotSatisfiable { size }
            }
            StorageError::Incoming { source } if source.is::<BodyIdleTimeout>() => {
                RegistryError::BodyTimeout(source)
            }
            StorageError::Incoming { source } => RegistryError::BodyFailed(source),
            StorageError::StorageFull { source } => RegistryError::StorageFull(source),
            StorageError::BlobDeleted { digest } => RegistryError::BlobBeingDeleted(digest),
            StorageError::QuotaExceeded {
                namespace,
                usage,
                limit,
                needed,
            } => RegistryError::QuotaExceeded {
                namespace,
                usage,
                limit,
                needed,
            },
            other => RegistryError::Internal(Box::new(other)),
        }
    }
}

impl From<registry_auth::AuthStoreError> for RegistryError {
    /// Missing or taken auth records are the caller's business.
    fn from(e: registry_auth::AuthStoreError) -> Self {
        use registry_auth::AuthStoreError;
        match e {
            AuthStoreError::NotFound(_) => RegistryError::RecordUnknown(e.to_string()),
            AuthStoreError::AlreadyExists(what) => RegistryError::AlreadyExists(what),
            other => RegistryError::Internal(Box::new(other)),
        }
    }
}

/// Result of a service operation.
pub type RegistryResult<T> = Result<T, RegistryError>;
