//! Namespace usage and quotas. The counters themselves are kept by the
//! triggers of migration `0013_namespace_usage.sql` on every change of
//! `blob_links` (cascaded deletes included); this module reads them,
//! records sizes, checks quotas inside a linking transaction and rebuilds
//! the counters.

use registry_core::{Digest, Namespace, RepositoryName};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::batch::Batch;
use super::connections::{Readers, Slot};

use super::error::{parse, sql_limit, Error, Result};
use crate::policy::NamespacePolicy;
use crate::usage::{NamespaceUsage, RepositoryUsage, UsageRecount, UsageSummary};

/// A stored count as `u64` (the counters never go negative; a negative one
/// is corruption).
pub(super) fn count(column: &'static str, v: i64) -> Result<u64> {
    u64::try_from(v).map_err(|e| Error::Corrupt {
        column,
        value: v.to_string(),
        source: Box::new(e),
    })
}

fn sql_size(size: u64) -> i64 {
    i64::try_from(size).unwrap_or(i64::MAX)
}

/// Adds to `batch` the statement recording a verified size; the batch runs
/// in a caller's transaction. The trigger `blob_sizes_learned` brings a size
/// learned late into the counters.
pub(super) fn record_size<'a>(batch: &mut Batch<'a>, digest: &'a Digest, size: u64) -> Result<()> {
    batch.push("INSERT INTO blob_sizes (digest, size) VALUES (?, ?) ON CONFLICT DO NOTHING");
    batch.bind(digest.as_str())?.bind(sql_size(size))?;
    Ok(())
}

pub(super) async fn record_blob_sizes(writer: &Slot, sizes: &[(Digest, u64)]) -> Result<()> {
    if sizes.is_empty() {
        return Ok(());
    }
    let mut batch = Batch::new();
    for (digest, size) in sizes {
        record_size(&mut batch, digest, *size)?;
    }
    writer.transact(batch).await?;
    Ok(())
}

/// Bytes and blobs of a namespace, as the counters hold them.
async fn counters(conn: &mut SqliteConnection, namespace: &str) -> Result<(u64, u64)> {
    let row: Option<(i64, i64)> =
        sqlx::query_as("SELECT bytes, blobs FROM namespace_usage WHERE namespace = ?")
            .bind(namespace)
            .fetch_optional(conn)
            .await?;
    let (bytes, blobs) = row.unwrap_or((0, 0));
    Ok((
        count("namespace_usage.bytes", bytes)?,
        count("namespace_usage.blobs", blobs)?,
    ))
}

/// Adds to `batch` the read of `namespace`'s policy that [`check_quota`]
/// takes; returns the statement's index.
pub(super) fn quota_policy<'a>(batch: &mut Batch<'a>, namespace: &'a str) -> Result<usize> {
    let at = batch.push("SELECT policy FROM namespace_policies WHERE namespace = ?");
    batch.bind(namespace)?;
    Ok(at)
}

/// The recorded sizes (an unknown size counts 0, as in the triggers) of the
/// blobs of a JSON array (the `?`) that are new to namespace `$namespace`
/// (an SQL expression): the bytes linking them adds to its usage.
macro_rules! needed_bytes {
    ($namespace:literal) => {
        concat!(
            "SELECT coalesce(sum(s.size), 0) FROM blob_sizes s \
             WHERE s.digest IN (SELECT value FROM json_each(?)) AND NOT EXISTS \
             (SELECT 1 FROM namespace_blobs b WHERE b.namespace = ",
            $namespace,
            " AND b.digest = s.digest)"
        )
    };
}

/// A guard's condition (see [`Batch::push_guard`]) that holds when linking
/// the blobs of a JSON array keeps a namespace within its quota, or it has
/// none: never when [`check_quota`] would fail. Parameters: the namespace,
/// the array. Counts what `check_quota` counts ([`needed_bytes`]), and
/// fails as it does when they take the usage past the quota:
/// `needed > max(quota - usage, 0)` is `needed > 0 && usage + needed >
/// quota` without a sum that can overflow. A policy `check_quota` would
/// not read (not a JSON object, a quota that is not a non-negative
/// integer) fails the guard, and the caller's checks say why.
pub(super) const WITHIN_QUOTA: &str = concat!(
    "NOT EXISTS (SELECT 1 FROM namespace_policies p \
     WHERE p.namespace = ? AND CASE \
         WHEN NOT json_valid(p.policy) THEN 1 \
         WHEN json_type(p.policy) <> 'object' THEN 1 \
         WHEN coalesce(json_type(p.policy, '$.quota_bytes'), 'null') = 'null' THEN 0 \
         WHEN json_type(p.policy, '$.quota_bytes') <> 'integer' THEN 1 \
         WHEN json_extract(p.policy, '$.quota_bytes') < 0 THEN 1 \
         ELSE (",
    needed_bytes!("p.namespace"),
    ") > max(json_extract(p.policy, '$.quota_bytes') \
                   - coalesce((SELECT bytes FROM namespace_usage WHERE namespace = p.namespace), 0), 0) \
         END)"
);

/// Fails with `QuotaExceeded` when linking `digests` (a JSON array) into `repository`
/// would bring blobs new to its namespace past the namespace's quota. `policy`:
/// the rows of [`quota_policy`], read in the same transaction; no round
/// trip unless the policy sets a quota. Part of the linking transaction
/// (`BEGIN IMMEDIATE`): no other write runs between this check and the
/// commit.
pub(super) async fn check_quota(
    conn: &mut SqliteConnection,
    repository: &RepositoryName,
    digests: &str,
    policy: &[SqliteRow],
) -> Result<()> {
    let namespace = repository.namespace();
    let Some(policy) = policy.first() else {
        return Ok(());
    };
    let policy: String = policy.try_get(0)?;
    let Some(limit) = serde_json::from_str::<NamespacePolicy>(&policy)?.quota_bytes else {
        return Ok(());
    };
    let needed: i64 = sqlx::query_scalar(needed_bytes!("?"))
        .bind(digests)
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
    reader: &Readers,
    namespace: &Namespace,
) -> Result<NamespaceUsage> {
    // One read transaction: the four counts come from one snapshot.
    let mut tx = reader.begin().await?;
    let usage = usage_in(&mut tx, namespace.as_str()).await?;
    tx.commit().await?;
    Ok(usage)
}

async fn usage_in(conn: &mut SqliteConnection, namespace: &str) -> Result<NamespaceUsage> {
    let (bytes, blobs) = counters(conn, namespace).await?;
    let imagestreams: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM repositories WHERE namespace = ?")
            .bind(namespace)
            .fetch_one(&mut *conn)
            .await?;
    let (low, high) = range(namespace);
    let images: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM manifests WHERE repository >= ? AND repository < ?",
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
    reader: &Readers,
    repository: &RepositoryName,
) -> Result<RepositoryUsage> {
    let (blobs, bytes): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(*), COALESCE(SUM(s.size), 0) FROM blob_links l \
         LEFT JOIN blob_sizes s ON s.digest = l.digest WHERE l.repository = ?",
    )
    .bind(repository.as_str())
    .fetch_one(reader)
    .await?;
    let (images, tags): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM manifests WHERE repository = ?1), \
                (SELECT COUNT(*) FROM tags WHERE repository = ?1)",
    )
    .bind(repository.as_str())
    .fetch_one(reader)
    .await?;
    Ok(RepositoryUsage {
        bytes: count("blob_sizes.size", bytes)?,
        blobs: count("blob_links", blobs)?,
        images: count("manifests", images)?,
        tags: count("tags", tags)?,
    })
}

pub(super) async fn usage_summary(reader: &Readers, limit: usize) -> Result<UsageSummary> {
    let mut tx = reader.begin().await?;
    let summary = summary_in(&mut tx, limit).await?;
    tx.commit().await?;
    Ok(summary)
}

async fn summary_in(conn: &mut SqliteConnection, limit: usize) -> Result<UsageSummary> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT namespace, bytes, blobs FROM namespace_usage \
         ORDER BY bytes DESC, namespace LIMIT ?",
    )
    .bind(sql_limit(limit))
    .fetch_all(&mut *conn)
    .await?;
    let (total_bytes, total_blobs): (i64, i64) = sqlx::query_as(
        "SELECT COALESCE(SUM(bytes), 0), COALESCE(SUM(blobs), 0) FROM namespace_usage",
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
    reader: &Readers,
    namespace: &Namespace,
    last: Option<&Digest>,
    limit: usize,
) -> Result<Vec<Digest>> {
    let digests: Vec<String> = sqlx::query_scalar(
        "SELECT b.digest FROM namespace_blobs b WHERE b.namespace = ? AND b.digest > ? \
         AND NOT EXISTS (SELECT 1 FROM blob_sizes s WHERE s.digest = b.digest) \
         ORDER BY b.digest LIMIT ?",
    )
    .bind(namespace.as_str())
    .bind(last.map_or("", Digest::as_str))
    .bind(sql_limit(limit))
    .fetch_all(reader)
    .await?;
    digests
        .iter()
        .map(|d| parse("namespace_blobs.digest", d))
        .collect()
}

pub(super) async fn recount_usage(writer: &Slot, namespace: &Namespace) -> Result<UsageRecount> {
    let ns = namespace.as_str();
    let (low, high) = range(ns);
    let mut tx = writer.begin().await?;
    let before = usage_in(&mut tx, ns).await?;
    // Rebuilt from the links alone; the triggers turn the new rows into
    // the counters, so the recount and the maintained path cannot differ
    // in how they count.
    sqlx::query("DELETE FROM namespace_blobs WHERE namespace = ?")
        .bind(ns)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM namespace_usage WHERE namespace = ?")
        .bind(ns)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO namespace_blobs (namespace, digest, size, links) \
         SELECT ?, l.digest, COALESCE(s.size, 0), COUNT(*) FROM blob_links l \
         LEFT JOIN blob_sizes s ON s.digest = l.digest \
         WHERE l.repository >= ? AND l.repository < ? GROUP BY l.digest",
    )
    .bind(ns)
    .bind(&low)
    .bind(&high)
    .execute(&mut *tx)
    .await?;
    let after = usage_in(&mut tx, ns).await?;
    tx.commit().await?;
    Ok(UsageRecount { before, after })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use bytes::Bytes;
    use registry_core::media_type;

    use super::*;
    use crate::metadata::{MetadataStore, NewManifest};
    use crate::sqlite::SqliteMetadataStore;

    /// The part of migration 0013 that fills the tables for existing data.
    fn backfill() -> &'static str {
        let migration = include_str!("../../migrations/sqlite/0013_namespace_usage.sql");
        let start = migration
            .find("-- Existing data")
            .expect("the migration has a backfill");
        &migration[start..]
    }

    #[tokio::test]
    async fn migration_counts_existing_links_with_the_sizes_manifests_declare() {
        let store = SqliteMetadataStore::open_in_memory().await.unwrap();
        let repo: RepositoryName = "old/app".parse().unwrap();
        let d = |s: &str| Digest::sha256_of(s.as_bytes());
        let (config, layer, loose) = (d("config"), d("layer"), d("loose"));
        let bytes = Bytes::from(format!(
            r#"{{"schemaVersion":2,"mediaType":"{}","config":{{"mediaType":"x","digest":"{config}","size":12}},"layers":[{{"mediaType":"y","digest":"{layer}","size":3000}}]}}"#,
            media_type::OCI_MANIFEST
        ));
        store
            .put_manifest(NewManifest {
                repository: repo.clone(),
                digest: Digest::sha256_of(&bytes),
                media_type: media_type::OCI_MANIFEST.to_owned(),
                bytes,
                subject: None,
                artifact_type: None,
                annotations: BTreeMap::new(),
                config: Some(config.clone()),
                blobs: vec![config, layer],
                children: Vec::new(),
                tags: Vec::new(),
                fixed_tags: Vec::new(),
                actor: "t".to_owned(),
                events: Vec::new(),
                tag_moved: Vec::new(),
            })
            .await
            .unwrap();
        store.link_blob(&repo, &loose).await.unwrap();
        // As a database from before the migration: links, no usage.
        sqlx::raw_sql(
            "DELETE FROM namespace_blobs; DELETE FROM namespace_usage; DELETE FROM blob_sizes;",
        )
        .execute(&store.writer)
        .await
        .unwrap();
        let old: Namespace = "old".parse().unwrap();
        assert_eq!(store.namespace_usage(&old).await.unwrap().bytes, 0);
        sqlx::raw_sql(backfill())
            .execute(&store.writer)
            .await
            .unwrap();
        let usage = store.namespace_usage(&old).await.unwrap();
        assert_eq!((usage.bytes, usage.blobs), (3012, 3));
        assert_eq!(
            store.unsized_blobs(&old, None, 10).await.unwrap(),
            vec![loose]
        );
    }
}
