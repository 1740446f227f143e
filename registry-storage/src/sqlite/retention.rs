//! What retention reads and deletes: a repository's manifests with their
//! children and blobs, every tag event, and the conditional delete.

use std::collections::HashMap;
use std::time::SystemTime;

use registry_core::{Digest, RepositoryName, Tag};

use super::connections::{Readers, Slot};
use super::error::{from_nanos, parse, parse_opt, sql_limit, to_nanos, Result};
use super::tags::{event_from_row, EventRow};
use crate::metadata::{ManifestNode, TagEvent};

pub(super) async fn manifest_nodes(
    reader: &Readers,
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
    let mut edges = Vec::with_capacity(2);
    for sql in [
        "SELECT manifest, child FROM manifest_children \
         WHERE repository = ? AND manifest >= ? AND manifest <= ?",
        "SELECT manifest, blob FROM manifest_blobs \
         WHERE repository = ? AND manifest >= ? AND manifest <= ?",
    ] {
        let rows: Vec<(String, String)> = sqlx::query_as(sql)
            .bind(repo)
            .bind(&first)
            .bind(&end)
            .fetch_all(&mut *tx)
            .await?;
        edges.push(rows);
    }
    let (blobs, children) = (
        edges.pop().unwrap_or_default(),
        edges.pop().unwrap_or_default(),
    );
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

/// Deletes manifest `?2` of repository `?1` unless a tag, an index or its
/// subject keeps it or a push named it at or after `?3`: index lookups
/// only (`tags_by_digest`, `manifest_children_by_child`, primary keys).
const DELETE_UNREFERENCED: &str = "DELETE FROM manifests AS m \
     WHERE m.repository = ?1 AND m.digest = ?2 AND m.pushed < ?3 \
     AND NOT EXISTS (SELECT 1 FROM tags t WHERE t.repository = ?1 AND t.digest = ?2) \
     AND NOT EXISTS (SELECT 1 FROM manifest_children c WHERE c.repository = ?1 AND c.child = ?2) \
     AND (m.subject IS NULL OR NOT EXISTS \
          (SELECT 1 FROM manifests s WHERE s.repository = ?1 AND s.digest = m.subject))";

pub(super) async fn delete_unreferenced(
    writer: &Slot,
    repository: &RepositoryName,
    digests: &[Digest],
    planned: SystemTime,
) -> Result<Vec<bool>> {
    let repo = repository.as_str();
    let planned = to_nanos(planned);
    let mut tx = writer.begin().await?;
    let mut deleted = Vec::with_capacity(digests.len());
    for digest in digests {
        // Every condition in the statement, which sees the batch's earlier
        // deletes (an index removed, then its child).
        let gone = sqlx::query(DELETE_UNREFERENCED)
            .bind(repo)
            .bind(digest.as_str())
            .bind(planned)
            .execute(&mut *tx)
            .await?;
        deleted.push(gone.rows_affected() > 0);
    }
    tx.commit().await?;
    Ok(deleted)
}

pub(super) async fn blob_reference_count(reader: &Readers, digest: &Digest) -> Result<u64> {
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM manifest_blobs WHERE blob = ?")
        .bind(digest.as_str())
        .fetch_one(reader)
        .await?;
    Ok(u64::try_from(count).unwrap_or(0))
}

pub(super) async fn tag_events(
    reader: &Readers,
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
