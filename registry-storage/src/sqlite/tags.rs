//! Tags and their history.

use registry_core::{Digest, RepositoryName, Tag};
use sqlx::SqliteConnection;

use super::batch::Batch;
use super::connections::{Readers, Slot};

use super::error::{from_nanos, now, parse, parse_opt, sql_limit, Error, Result};
use crate::metadata::{TagEvent, TagRecord};

/// Adds to `batch` the statements pointing `tag` at `digest` and recording
/// the move, unless it already points there; the batch runs in the caller's
/// transaction.
pub(super) fn move_tag<'a>(
    batch: &mut Batch<'a>,
    repository: &'a RepositoryName,
    tag: &'a Tag,
    digest: &'a Digest,
    at: i64,
    actor: &'a str,
) -> Result<()> {
    // The upsert changes no row when the tag already points at `digest`,
    // and then `changes()` (the rows the statement before changed) keeps
    // the history as it is.
    batch.push(
        "INSERT INTO tags (repository, tag, digest, updated) VALUES (?, ?, ?, ?) \
         ON CONFLICT (repository, tag) DO UPDATE \
         SET digest = excluded.digest, updated = excluded.updated \
         WHERE tags.digest <> excluded.digest",
    );
    batch
        .bind(repository.as_str())?
        .bind(tag.as_str())?
        .bind(digest.as_str())?
        .bind(at)?;
    batch.push(
        "INSERT INTO tag_events (repository, tag, digest, at, actor) \
         SELECT ?, ?, ?, ?, ? WHERE changes() > 0",
    );
    batch
        .bind(repository.as_str())?
        .bind(tag.as_str())?
        .bind(digest.as_str())?
        .bind(at)?
        .bind(actor)?;
    Ok(())
}

/// Records the deletion of every tag pointing at `digest`. Part of the
/// caller's transaction, which then deletes them.
pub(super) async fn record_deletions(
    conn: &mut SqliteConnection,
    repository: &RepositoryName,
    digest: &Digest,
    at: i64,
    actor: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO tag_events (repository, tag, digest, at, actor) \
         SELECT repository, tag, NULL, ?, ? FROM tags \
         WHERE repository = ? AND digest = ? ORDER BY tag",
    )
    .bind(at)
    .bind(actor)
    .bind(repository.as_str())
    .bind(digest.as_str())
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM tags WHERE repository = ? AND digest = ?")
        .bind(repository.as_str())
        .bind(digest.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn list_tags(
    reader: &Readers,
    repository: &RepositoryName,
    last: Option<&Tag>,
    limit: usize,
) -> Result<Vec<Tag>> {
    // An empty string sorts before every tag.
    let after = last.map_or("", Tag::as_str);
    let tags: Vec<String> = sqlx::query_scalar(
        "SELECT tag FROM tags WHERE repository = ? AND tag > ? ORDER BY tag LIMIT ?",
    )
    .bind(repository.as_str())
    .bind(after)
    .bind(sql_limit(limit))
    .fetch_all(reader)
    .await?;
    tags.iter().map(|t| parse("tags.tag", t)).collect()
}

pub(super) async fn tags(
    reader: &Readers,
    repository: &RepositoryName,
    last: Option<&Tag>,
    limit: usize,
) -> Result<Vec<TagRecord>> {
    let after = last.map_or("", Tag::as_str);
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT tag, digest, updated FROM tags WHERE repository = ? AND tag > ? \
         ORDER BY tag LIMIT ?",
    )
    .bind(repository.as_str())
    .bind(after)
    .bind(sql_limit(limit))
    .fetch_all(reader)
    .await?;
    rows.into_iter()
        .map(|(tag, digest, updated)| {
            Ok(TagRecord {
                tag: parse("tags.tag", &tag)?,
                digest: parse("tags.digest", &digest)?,
                updated: from_nanos(updated),
            })
        })
        .collect()
}

pub(super) async fn tag_history(
    reader: &Readers,
    repository: &RepositoryName,
    tag: &Tag,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<TagEvent>> {
    // Ordered by id, not time: events of one clock tick keep their order.
    // The id is the event's `seq`; `tag_events_by_tag` serves the range.
    let before = before.map_or(i64::MAX, |b| i64::try_from(b).unwrap_or(i64::MAX));
    let rows: Vec<EventRow> = sqlx::query_as(
        "SELECT id, digest, at, actor FROM tag_events \
         WHERE repository = ? AND tag = ? AND id < ? ORDER BY id DESC LIMIT ?",
    )
    .bind(repository.as_str())
    .bind(tag.as_str())
    .bind(before)
    .bind(sql_limit(limit))
    .fetch_all(reader)
    .await?;
    rows.into_iter().map(event_from_row).collect()
}

/// A `tag_events` row: id, digest, at, actor.
pub(super) type EventRow = (i64, Option<String>, i64, String);

/// Reads a [`TagEvent`] back from its row.
pub(super) fn event_from_row((id, digest, at, actor): EventRow) -> Result<TagEvent> {
    Ok(TagEvent {
        seq: u64::try_from(id).map_err(|e| Error::Corrupt {
            column: "tag_events.id",
            value: id.to_string(),
            source: Box::new(e),
        })?,
        digest: parse_opt("tag_events.digest", digest.as_deref())?,
        at: from_nanos(at),
        actor,
    })
}

pub(super) async fn delete_tag(
    writer: &Slot,
    repository: &RepositoryName,
    tag: &Tag,
    actor: &str,
    events: &[crate::events::NewEvent],
) -> Result<()> {
    let mut tx = writer.begin().await?;
    let deleted = sqlx::query("DELETE FROM tags WHERE repository = ? AND tag = ?")
        .bind(repository.as_str())
        .bind(tag.as_str())
        .execute(&mut *tx)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound(format!("tag {repository}:{tag}")));
    }
    sqlx::query(
        "INSERT INTO tag_events (repository, tag, digest, at, actor) VALUES (?, ?, NULL, ?, ?)",
    )
    .bind(repository.as_str())
    .bind(tag.as_str())
    .bind(now())
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    let mut batch = Batch::new();
    super::outbox::record_events(&mut batch, events, now())?;
    tx.commit_with(batch).await?;
    Ok(())
}
