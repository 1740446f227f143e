//! The SQLite backend's private error, and conversions between API values
//! and their SQL column forms.

use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::error::{BoxError, StorageError};

/// What can go wrong inside the SQLite backend. Private: callers see it as
/// a [`StorageError`].
#[derive(Debug, thiserror::Error)]
pub(super) enum Error {
    /// The database failed.
    #[error("sqlite: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// Applying the embedded migrations failed.
    #[error("sqlite migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Annotations could not be encoded or decoded.
    #[error("annotations JSON: {0}")]
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

/// SQLite's primary result code for "database or disk is full".
const SQLITE_FULL: i64 = 13;

impl Error {
    /// Whether the database could not grow: the disk or quota is full
    /// (`SQLITE_FULL`, or an IO error saying so), or it reached its
    /// `max_page_count`.
    fn is_full(&self) -> bool {
        match self {
            Error::Sqlx(sqlx::Error::Database(e)) => e
                .code()
                .and_then(|code| code.parse::<i64>().ok())
                // Extended codes keep the primary code in the low byte.
                .is_some_and(|code| code & 0xff == SQLITE_FULL),
            Error::Sqlx(sqlx::Error::Io(e)) => crate::error::io_is_full(e),
            _ => false,
        }
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

/// Result of the backend's internal functions.
pub(super) type Result<T, E = Error> = std::result::Result<T, E>;

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
    fn storage_error_keeps_meaning() {
        let e: StorageError = Error::NotFound("tag a/b:c".into()).into();
        assert!(e.is_not_found());
        let e: StorageError = Error::AlreadyExists("namespace a".into()).into();
        assert!(matches!(e, StorageError::AlreadyExists { .. }));
        let e: StorageError = Error::Sqlx(sqlx::Error::RowNotFound).into();
        assert!(matches!(e, StorageError::Backend { .. }));
    }
}
