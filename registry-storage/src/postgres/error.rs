//! The PostgreSQL backend's private error, its conversions to the public
//! [`StorageError`] and [`AuthStoreError`], and the column conversions both
//! halves of the store share.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use registry_auth::AuthStoreError;

use crate::error::{BoxError, StorageError};

/// What can go wrong inside the PostgreSQL backend. Private: callers see it
/// as a [`StorageError`] or an [`AuthStoreError`].
#[derive(Debug, thiserror::Error)]
pub(super) enum Error {
    /// The database failed, or could not be reached in time.
    #[error("postgres: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// Applying the embedded migrations failed.
    #[error("postgres migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A call took longer than the store's deadline (the database stopped
    /// answering).
    #[error("postgres did not answer within {0:?}")]
    TimedOut(Duration),
    /// The database URL does not parse.
    #[error("invalid database URL: {0}")]
    Url(#[source] sqlx::Error),
    /// The database URL is not a PostgreSQL one.
    #[error("invalid database URL: scheme {0:?}, expected postgres:// or postgresql://")]
    UrlScheme(String),
    /// Annotations or a policy could not be encoded or decoded.
    #[error("stored JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A stored value does not parse back into its type.
    #[error("stored {column} {value:?} is invalid: {source}")]
    Corrupt {
        /// The column it came from.
        column: &'static str,
        /// The stored text.
        value: String,
        /// Why it does not parse.
        source: BoxError,
    },
    /// A stored auth value does not parse back into its type. The value is
    /// not part of the message: it may be a password hash.
    #[error("stored {column} is invalid: {source}")]
    CorruptSecret {
        /// The column it came from.
        column: &'static str,
        /// Why it does not parse.
        source: BoxError,
    },
    /// A time outside what unix nanoseconds in an `i64` can hold.
    #[error("time {0} is outside the storable range (about 1677 to 2262)")]
    TimeOutOfRange(time::OffsetDateTime),
    /// An auth change this store has no query for (a newer
    /// `registry-auth`).
    #[error("auth change {0} has no query in this store")]
    UnknownAuthChange(String),
    /// The object does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The object exists already.
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// Garbage collection is deleting (or deleted) the blob.
    #[error("blob {0} deleted by garbage collection")]
    BlobDeleted(registry_core::Digest),
    /// An immutable tag points at another digest.
    #[error("tag {0} points at {1} and may not move")]
    TagImmutable(registry_core::Tag, registry_core::Digest),
    /// A link would take the namespace past its quota.
    #[error("namespace {namespace} is over its quota")]
    QuotaExceeded {
        /// The namespace.
        namespace: registry_core::Namespace,
        /// Bytes it stores.
        usage: u64,
        /// Its quota.
        limit: u64,
        /// Bytes the link would add.
        needed: u64,
    },
    /// A child manifest an index names is not in the repository.
    #[error("manifest {0} is not in the repository")]
    ManifestMissing(registry_core::Digest),
    /// A bounded collection is full.
    #[error("limit reached: {0}")]
    LimitReached(String),
}

/// SQLSTATE `disk_full`.
const DISK_FULL: &str = "53100";
/// SQLSTATE `serialization_failure`.
const SERIALIZATION_FAILURE: &str = "40001";
/// SQLSTATE `deadlock_detected`.
const DEADLOCK_DETECTED: &str = "40P01";

impl Error {
    /// The SQLSTATE of a database error.
    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        match self {
            Error::Sqlx(sqlx::Error::Database(e)) => e.code(),
            _ => None,
        }
    }

    /// Whether the database could not grow (its disk is full).
    fn is_full(&self) -> bool {
        match self {
            Error::Sqlx(sqlx::Error::Io(e)) => crate::error::io_is_full(e),
            _ => self.code().is_some_and(|c| c == DISK_FULL),
        }
    }

    /// Whether the transaction lost to a concurrent one and may simply run
    /// again: a serialization failure or a deadlock.
    pub(super) fn is_retryable(&self) -> bool {
        self.code()
            .is_some_and(|c| c == SERIALIZATION_FAILURE || c == DEADLOCK_DETECTED)
    }
}

impl From<crate::outbox_rows::Corrupt> for Error {
    fn from(c: crate::outbox_rows::Corrupt) -> Self {
        Error::Corrupt {
            column: c.column,
            value: c.value,
            source: c.source,
        }
    }
}

impl From<Error> for StorageError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(what) => StorageError::NotFound { what },
            Error::AlreadyExists(what) => StorageError::AlreadyExists { what },
            Error::BlobDeleted(digest) => StorageError::BlobDeleted { digest },
            Error::TagImmutable(tag, current) => StorageError::TagImmutable { tag, current },
            Error::QuotaExceeded {
                namespace,
                usage,
                limit,
                needed,
            } => StorageError::QuotaExceeded {
                namespace,
                usage,
                limit,
                needed,
            },
            Error::ManifestMissing(digest) => StorageError::ManifestMissing { digest },
            Error::LimitReached(what) => StorageError::LimitReached { what },
            full if full.is_full() => StorageError::StorageFull {
                source: Box::new(full),
            },
            other => StorageError::backend(other),
        }
    }
}

impl From<Error> for AuthStoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::NotFound(what) => AuthStoreError::not_found(what),
            Error::AlreadyExists(what) => AuthStoreError::already_exists(what),
            other => AuthStoreError::backend(other),
        }
    }
}

/// Result of the backend's internal functions.
pub(super) type Result<T, E = Error> = std::result::Result<T, E>;

/// Turns a unique-key violation of an insert into `AlreadyExists`, naming
/// the record with `what` (given the violated constraint's name).
pub(super) fn inserted<T, E>(
    result: Result<T, E>,
    what: impl FnOnce(Option<&str>) -> String,
) -> Result<()>
where
    Error: From<E>,
{
    match result.map_err(Error::from) {
        Ok(_) => Ok(()),
        Err(Error::Sqlx(sqlx::Error::Database(e))) if e.is_unique_violation() => {
            Err(Error::AlreadyExists(what(e.constraint())))
        }
        Err(e) => Err(e),
    }
}

/// Parses a stored column value back into its validated type.
pub(super) fn parse<T>(column: &'static str, value: &str) -> Result<T>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    value.parse().map_err(|e: T::Err| Error::Corrupt {
        column,
        value: value.to_owned(),
        source: Box::new(e),
    })
}

/// Parses an optional stored column value.
pub(super) fn parse_opt<T>(column: &'static str, value: Option<&str>) -> Result<Option<T>>
where
    T: FromStr,
    T::Err: std::error::Error + Send + Sync + 'static,
{
    value.map(|v| parse(column, v)).transpose()
}

/// A stored count or size as `u64` (a negative one is corruption).
pub(super) fn to_u64(column: &'static str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|e| Error::Corrupt {
        column,
        value: v.to_string(),
        source: Box::new(e),
    })
}

/// A size or count as the schema's BIGINT, saturating.
pub(super) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A time as unix nanoseconds, saturating outside ±292 years of the epoch.
pub(super) fn to_nanos(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_nanos()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_nanos()).map_or(i64::MIN, |n| -n),
    }
}

/// The inverse of [`to_nanos`].
pub(super) fn from_nanos(nanos: i64) -> SystemTime {
    let offset = Duration::from_nanos(nanos.unsigned_abs());
    let t = if nanos >= 0 {
        UNIX_EPOCH.checked_add(offset)
    } else {
        UNIX_EPOCH.checked_sub(offset)
    };
    t.unwrap_or(UNIX_EPOCH)
}

/// Now, as stored.
pub(super) fn now() -> i64 {
    to_nanos(SystemTime::now())
}

/// A listing limit as SQL wants it.
pub(super) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanos_round_trip() {
        let now = SystemTime::now();
        assert_eq!(from_nanos(to_nanos(now)), now);
        let before = UNIX_EPOCH - Duration::from_secs(86_400);
        assert_eq!(from_nanos(to_nanos(before)), before);
    }

    #[test]
    fn errors_keep_their_meaning() {
        let e: StorageError = Error::NotFound("tag a/b:c".into()).into();
        assert!(e.is_not_found());
        let e: StorageError = Error::AlreadyExists("namespace a".into()).into();
        assert!(matches!(e, StorageError::AlreadyExists { .. }));
        let e: StorageError = Error::Sqlx(sqlx::Error::RowNotFound).into();
        assert!(matches!(e, StorageError::Backend { .. }));
        let e: AuthStoreError = Error::NotFound("user a".into()).into();
        assert!(matches!(e, AuthStoreError::NotFound(_)));
        let e: AuthStoreError = Error::AlreadyExists("user a".into()).into();
        assert!(matches!(e, AuthStoreError::AlreadyExists(_)));
        let e: AuthStoreError = Error::Sqlx(sqlx::Error::PoolTimedOut).into();
        assert!(matches!(e, AuthStoreError::Backend { .. }));
        assert!(!Error::Sqlx(sqlx::Error::PoolTimedOut).is_retryable());
    }
}
