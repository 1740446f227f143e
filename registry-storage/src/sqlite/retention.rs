//! What retention reads and deletes: a repository's manifests with their
//! children and blobs, every tag event, and the conditional delete.

use std::collections::HashMap;
use std::time::SystemTime;

use registry_core::{Digest, RepositoryName, Tag};
use sqlx::SqlitePool;

use super::error::{from_nanos, parse, parse_opt, sql_limit, to_nanos, Result};
use super::tags::{event_from_row, EventRow};
use crate::metadata::{ManifestNode, TagEvent};

pub(super) async fn manifest_nodes(
    reader: &SqlitePool,
    repository: &RepositoryName,
    last: Option<&Digest>,
    limit: usize,
) -> Result<Vec<ManifestNode>> {
    let repo = repository.as_str();
    let after = last.map_or("", Digest::as_str);
    // One read transaction: the page's manifests and their edges agree.
    let mut tx = reader.begin().await?;
    let rows: Vec<(String, i64, i64, Option<String>)> = sqlx::query_as(
        "SELECT digest, created, pushed, subject FROM manifests \
         WHERE repository = ? AND digest > ? ORDER BY digest LIMIT ?",
    )
    .bind(repo)
    .bind(after)
    .bind(sql_limit(limit))
    .fetch_all(&mut *tx)
    .await?;
    let (Some(first), Some(end)) = (rows.first(), rows.last()) else {
        return Ok(Vec::new());
    };
    let (first, end) = (first.0.clone(), end.0.clone());
    // The edges of the page's manifests: two range scans of the primary keys.
    let children: Vec<(String, String)> = sqlx::query_as(
        "SELECT manifest, child FROM manifest_children \
         WHERE repository = ? AND manifest >= ? AND manifest <= ?",
    )
    .bind(repo)
    .bind(&first)
    .bind(&end)
    .fetch_all(&mut *tx)
    .await?;
    let blobs: Vec<(String, String)> = sqlx::query_as(
        "SELECT manifest, blob FROM manifest_blobs \
         WHERE repository = ? AND manifest >= ? AND manifest <= ?",
    )
    .bind(repo)
    .bind(&first)
    .bind(&end)
    .fetch_all(&mut *tx)
    .await?;
    let mut nodes = Vec::with_capacity(rows.len());
    let mut at: HashMap<String, usize> = HashMap::with_capacity(rows.len());
    for (digest, created, pushed, subject) in rows {
        at.insert(digest.clone(), nodes.len());
        nodes.push(ManifestNode {
            digest: parse("manifests.digest", &digest)?,
            created: from_nanos(created),
            pushed: from_nanos(pushed),
            subject: parse_opt("manifests.subject", subject.as_deref())?,
            children: Vec::new(),
            blobs: Vec::new(),
        });
    }
    for (manifest, child) in children {
        if let Some(&i) = at.get(&manifest) {
            nodes[i]
                .children
                .push(parse("manifest_children.child", &child)?);
        }
    }
    for (manifest, blob) in blobs {
        if let Some(&i) = at.get(&manifest) {
            nodes[i].blobs.push(parse("manifest_blobs.blob", &blob)?);
        }
    }
    Ok(nodes)
}

pub(super) async fn delete_unreferenced(
    writer: &SqlitePool,
    repository: &RepositoryName,
    digest: &Digest,
    planned: SystemTime,
) -> Result<bool> {
    let repo = repository.as_str();
    let d = digest.as_str();
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    // Every condition in the statement: one short write transaction.
    let deleted = sqlx::query(
        "DELETE FROM manifests AS m WHERE m.repository = ?1 AND m.digest = ?2 AND m.pushed < ?3 \
         AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository = ?1 AND t.digest = ?2) \
         AND NOT EXISTS (SELECT 1 FROM manifest_children c \
                         WHERE c.repository = ?1 AND c.child = ?2) \
         AND (m.subject IS NULL OR NOT EXISTS (SELECT 1 FROM manifests s \
                         WHERE s.repository = ?1 AND s.digest = m.subject))",
    )
    .bind(repo)
    .bind(d)
    .bind(to_nanos(planned))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(deleted.rows_affected() > 0)
}

pub(super) async fn blob_reference_count(reader: &SqlitePool, digest: &Digest) -> Result<u64> {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM manifest_blobs WHERE blob = ?")
        .bind(digest.as_str())
        .fetch_one(reader)
        .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

pub(super) async fn tag_events(
    reader: &SqlitePool,
    repository: &RepositoryName,
    after: Option<(&Tag, u64)>,
    limit: usize,
) -> Result<Vec<(Tag, TagEvent)>> {
    let (tag, seq) = after.map_or(("", 0), |(t, s)| (t.as_str(), s));
    let seq = i64::try_from(seq).unwrap_or(i64::MAX);
    // Row values over `tag_events_by_tag` (repository, tag, id).
    let rows: Vec<(String, i64, Option<String>, i64, String)> = sqlx::query_as(
        "SELECT tag, id, digest, at, actor FROM tag_events \
         WHERE repository = ? AND (tag, id) > (?, ?) ORDER BY tag, id LIMIT ?",
    )
    .bind(repository.as_str())
    .bind(tag)
    .bind(seq)
    .bind(sql_limit(limit))
    .fetch_all(reader)
    .await?;
    rows.into_iter()
        .map(|(tag, id, digest, at, actor)| {
            let row: EventRow = (id, digest, at, actor);
            Ok((parse("tag_events.tag", &tag)?, event_from_row(row)?))
        })
        .collect()
}
