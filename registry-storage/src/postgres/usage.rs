//! Namespace usage and quotas. The counters themselves are kept by the
//! triggers of migration `0001_schema.sql` on every change of
//! `blob_links` (cascaded deletes included); this module reads them,
//! records sizes, checks quotas inside a linking transaction and rebuilds
//! the counters.

use std::collections::BTreeSet;

use registry_core::{Digest, Namespace, RepositoryName};
use sqlx::{PgConnection, PgPool};

use super::error::{parse, sql_limit, to_i64, to_u64, Error, Result};
use super::tx::{serializable, snapshot};
use crate::policy::NamespacePolicy;
use crate::usage::{NamespaceUsage, RepositoryUsage, UsageRecount, UsageSummary};

/// A stored count as `u64` (the counters never go negative; a negative one
/// is corruption).
pub(super) fn count(column: &'static str, v: i64) -> Result<u64> {
    to_u64(column, v)
}

/// Records a verified size; part of a caller's transaction. The trigger
/// `blob_sizes_learned` brings a size learned late into the counters.
pub(super) async fn record_size(conn: &mut PgConnection, digest: &Digest, size: u64) -> Result<()> {
    sqlx::query("INSERT INTO blob_sizes (digest, size) VALUES ($1, $2) ON CONFLICT DO NOTHING")
        .bind(digest.as_str())
        .bind(to_i64(size))
        .execute(conn)
        .await?;
    Ok(())
}

pub(super) async fn record_blob_sizes(pool: &PgPool, sizes: &[(Digest, u64)]) -> Result<()> {
    if sizes.is_empty() {
        return Ok(());
    }
    // One statement; the first size of a digest listed twice wins, as it
    // would one insert after another.
    let digests: Vec<&str> = sizes.iter().map(|(d, _)| d.as_str()).collect();
    let sizes: Vec<i64> = sizes.iter().map(|(_, s)| to_i64(*s)).collect();
    serializable!(pool, |c| {
        sqlx::query(
            "INSERT INTO blob_sizes (digest, size) \
             SELECT DISTINCT ON (d) d, s FROM unnest($1::text[], $2::bigint[]) \
             WITH ORDINALITY AS t(d, s, i) ORDER BY d, i ON CONFLICT DO NOTHING",
        )
        .bind(&digests)
        .bind(&sizes)
        .execute(c)
    })?;
    Ok(())
}

/// Bytes and blobs of a namespace, as the counters hold them.
async fn counters(conn: &mut PgConnection, namespace: &str) -> Result<(u64, u64)> {
    let row: Option<(i64, i64)> =
        sqlx::query_as("SELECT bytes, blobs FROM namespace_usage WHERE namespace = $1")
            .bind(namespace)
            .fetch_optional(conn)
            .await?;
    let (bytes, blobs) = row.unwrap_or((0, 0));
    Ok((
        count("namespace_usage.bytes", bytes)?,
        count("namespace_usage.blobs", blobs)?,
    ))
}

/// Fails with `QuotaExceeded` when linking `digests` into `repository`
/// would bring blobs new to its namespace past the namespace's quota. Part
/// of the linking transaction (SERIALIZABLE): a concurrent link that changes
/// the counters read here makes one of the two run again.
pub(super) async fn check_quota<'a>(
    conn: &mut PgConnection,
    repository: &RepositoryName,
    digests: impl IntoIterator<Item = &'a Digest>,
) -> Result<()> {
    let namespace = repository.namespace();
    let policy: Option<String> =
        sqlx::query_scalar("SELECT policy FROM namespace_policies WHERE namespace = $1")
            .bind(namespace)
            .fetch_optional(&mut *conn)
            .await?;
    let Some(policy) = policy else {
        return Ok(());
    };
    let Some(limit) = serde_json::from_str::<NamespacePolicy>(&policy)?.quota_bytes else {
        return Ok(());
    };
    // The sizes the triggers would count for the blobs new to the
    // namespace: the recorded ones (an unknown size counts 0).
    let distinct: Vec<&str> = digests
        .into_iter()
        .map(Digest::as_str)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let needed: i64 = sqlx::query_scalar(
        "SELECT COALESCE(SUM(s.size), 0)::bigint FROM blob_sizes s \
         WHERE s.digest = ANY($1) AND NOT EXISTS \
         (SELECT 1 FROM namespace_blobs b WHERE b.namespace = $2 AND b.digest = s.digest)",
    )
    .bind(&distinct)
    .bind(namespace)
    .fetch_one(&mut *conn)
    .await?;
    let needed = count("blob_sizes.size", needed)?;
    if needed == 0 {
        return Ok(());
    }
    let (usage, _) = counters(conn, namespace).await?;
    if usage.saturating_add(needed) > limit {
        return Err(Error::QuotaExceeded {
            namespace: repository.to_namespace(),
            usage,
            limit,
            needed,
        });
    }
    Ok(())
}

/// The first byte after every repository name of `namespace` (`ns/…`):
/// `'0'` follows `'/'`, so `name >= 'ns/' AND name < 'ns0'` is the
/// namespace's contiguous key range.
fn range(namespace: &str) -> (String, String) {
    (format!("{namespace}/"), format!("{namespace}0"))
}

pub(super) async fn namespace_usage(
    pool: &PgPool,
    namespace: &Namespace,
) -> Result<NamespaceUsage> {
    // One snapshot: the four counts agree.
    let mut tx = snapshot(pool).await?;
    let usage = usage_in(&mut tx, namespace.as_str()).await?;
    tx.commit().await?;
    Ok(usage)
}

async fn usage_in(conn: &mut PgConnection, namespace: &str) -> Result<NamespaceUsage> {
    let (bytes, blobs) = counters(conn, namespace).await?;
    let imagestreams: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM repositories WHERE namespace = $1")
            .bind(namespace)
            .fetch_one(&mut *conn)
            .await?;
    let (low, high) = range(namespace);
    let images: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM manifests WHERE repository >= $1 AND repository < $2",
    )
    .bind(&low)
    .bind(&high)
    .fetch_one(&mut *conn)
    .await?;
    Ok(NamespaceUsage {
        bytes,
        blobs,
        imagestreams: count("repositories", imagestreams)?,
        images: count("manifests", images)?,
    })
}

pub(super) async fn repository_usage(
    pool: &PgPool,
    repository: &RepositoryName,
) -> Result<RepositoryUsage> {
    let (blobs, bytes): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(s.size), 0)::bigint FROM blob_links l \
         LEFT JOIN blob_sizes s ON s.digest = l.digest WHERE l.repository = $1",
    )
    .bind(repository.as_str())
    .fetch_one(pool)
    .await?;
    let (images, tags): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM manifests WHERE repository = $1), \
                (SELECT COUNT(*) FROM tags WHERE repository = $1)",
    )
    .bind(repository.as_str())
    .fetch_one(pool)
    .await?;
    Ok(RepositoryUsage {
        bytes: count("blob_sizes.size", bytes)?,
        blobs: count("blob_links", blobs)?,
        images: count("manifests", images)?,
        tags: count("tags", tags)?,
    })
}

pub(super) async fn usage_summary(pool: &PgPool, limit: usize) -> Result<UsageSummary> {
    let mut tx = snapshot(pool).await?;
    let summary = summary_in(&mut tx, limit).await?;
    tx.commit().await?;
    Ok(summary)
}

async fn summary_in(conn: &mut PgConnection, limit: usize) -> Result<UsageSummary> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT namespace, bytes, blobs FROM namespace_usage \
         ORDER BY bytes DESC, namespace LIMIT $1",
    )
    .bind(sql_limit(limit))
    .fetch_all(&mut *conn)
    .await?;
    let (total_bytes, total_blobs): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(bytes), 0)::bigint, COALESCE(SUM(blobs), 0)::bigint \
         FROM namespace_usage",
    )
    .fetch_one(&mut *conn)
    .await?;
    let mut summary = UsageSummary {
        largest: Vec::with_capacity(rows.len()),
        rest: NamespaceUsage {
            bytes: count("namespace_usage.bytes", total_bytes)?,
            blobs: count("namespace_usage.blobs", total_blobs)?,
            ..NamespaceUsage::default()
        },
    };
    for (namespace, bytes, blobs) in rows {
        let usage = NamespaceUsage {
            bytes: count("namespace_usage.bytes", bytes)?,
            blobs: count("namespace_usage.blobs", blobs)?,
            ..NamespaceUsage::default()
        };
        summary.rest.bytes = summary.rest.bytes.saturating_sub(usage.bytes);
        summary.rest.blobs = summary.rest.blobs.saturating_sub(usage.blobs);
        summary
            .largest
            .push((parse("namespace_usage.namespace", &namespace)?, usage));
    }
    Ok(summary)
}

pub(super) async fn unsized_blobs(
    pool: &PgPool,
    namespace: &Namespace,
    last: Option<&Digest>,
    limit: usize,
) -> Result<Vec<Digest>> {
    let digests: Vec<String> = sqlx::query_scalar(
        "SELECT b.digest FROM namespace_blobs b WHERE b.namespace = $1 AND b.digest > $2 \
         AND NOT EXISTS (SELECT 1 FROM blob_sizes s WHERE s.digest = b.digest) \
         ORDER BY b.digest LIMIT $3",
    )
    .bind(namespace.as_str())
    .bind(last.map_or("", Digest::as_str))
    .bind(sql_limit(limit))
    .fetch_all(pool)
    .await?;
    digests
        .iter()
        .map(|d| parse("namespace_blobs.digest", d))
        .collect()
}

pub(super) async fn recount_usage(pool: &PgPool, namespace: &Namespace) -> Result<UsageRecount> {
    serializable!(pool, |c| recount_in(c, namespace))
}

async fn recount_in(tx: &mut PgConnection, namespace: &Namespace) -> Result<UsageRecount> {
    let ns = namespace.as_str();
    let (low, high) = range(ns);
    let before = usage_in(tx, ns).await?;
    // Rebuilt from the links alone; the triggers turn the new rows into
    // the counters, so the recount and the maintained path cannot differ
    // in how they count.
    sqlx::query("DELETE FROM namespace_blobs WHERE namespace = $1")
        .bind(ns)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM namespace_usage WHERE namespace = $1")
        .bind(ns)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO namespace_blobs (namespace, digest, size, links) \
         SELECT $1::text, l.digest, COALESCE(s.size, 0), COUNT(*) FROM blob_links l \
         LEFT JOIN blob_sizes s ON s.digest = l.digest \
         WHERE l.repository >= $2 AND l.repository < $3 GROUP BY l.digest, s.size",
    )
    .bind(ns)
    .bind(&low)
    .bind(&high)
    .execute(&mut *tx)
    .await?;
    let after = usage_in(tx, ns).await?;
    Ok(UsageRecount { before, after })
}
