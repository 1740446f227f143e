//! Tags and their history.

use registry_core::{Digest, RepositoryName, Tag};
use sqlx::{PgConnection, PgPool};

use super::error::{from_nanos, now, parse, parse_opt, sql_limit, Error, Result};
use super::tx::serializable;
use crate::events::NewEvent;
use crate::metadata::{TagEvent, TagRecord};

/// Points `tag` at `digest` and records the move, unless it already points
/// there. Part of the caller's transaction.
pub(super) async fn move_tag(
    conn: &mut PgConnection,
    repository: &RepositoryName,
    tag: &Tag,
    digest: &Digest,
    at: i64,
    actor: &str,
) -> Result<()> {
    // The upsert changes no row when the tag already points at `digest`.
    let moved = sqlx::query(
        "INSERT INTO tags (repository, tag, digest, updated) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (repository, tag) DO UPDATE \
         SET digest = EXCLUDED.digest, updated = EXCLUDED.updated \
         WHERE tags.digest <> EXCLUDED.digest",
    )
    .bind(repository.as_str())
    .bind(tag.as_str())
    .bind(digest.as_str())
    .bind(at)
    .execute(&mut *conn)
    .await?;
    if moved.rows_affected() > 0 {
        sqlx::query(
            "INSERT INTO tag_events (repository, tag, digest, at, actor) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(repository.as_str())
        .bind(tag.as_str())
        .bind(digest.as_str())
        .bind(at)
        .bind(actor)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Records the deletion of every tag pointing at `digest`. Part of the
/// caller's transaction, which then deletes them.
pub(super) async fn record_deletions(
    conn: &mut PgConnection,
    repository: &RepositoryName,
    digest: &Digest,
    at: i64,
    actor: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO tag_events (repository, tag, digest, at, actor) \
         SELECT repository, tag, NULL, $1, $2 FROM tags \
         WHERE repository = $3 AND digest = $4 ORDER BY tag",
    )
    .bind(at)
    .bind(actor)
    .bind(repository.as_str())
    .bind(digest.as_str())
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM tags WHERE repository = $1 AND digest = $2")
        .bind(repository.as_str())
        .bind(digest.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub(super) async fn list_tags(
    pool: &PgPool,
    repository: &RepositoryName,
    last: Option<&Tag>,
    limit: usize,
) -> Result<Vec<Tag>> {
    // An empty string sorts before every tag.
    let after = last.map_or("", Tag::as_str);
    let tags: Vec<String> = sqlx::query_scalar(
        "SELECT tag FROM tags WHERE repository = $1 AND tag > $2 ORDER BY tag LIMIT $3",
    )
    .bind(repository.as_str())
    .bind(after)
    .bind(sql_limit(limit))
    .fetch_all(pool)
    .await?;
    tags.iter().map(|t| parse("tags.tag", t)).collect()
}

pub(super) async fn tags(
    pool: &PgPool,
    repository: &RepositoryName,
    last: Option<&Tag>,
    limit: usize,
) -> Result<Vec<TagRecord>> {
    let after = last.map_or("", Tag::as_str);
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT tag, digest, updated FROM tags WHERE repository = $1 AND tag > $2 \
         ORDER BY tag LIMIT $3",
    )
    .bind(repository.as_str())
    .bind(after)
    .bind(sql_limit(limit))
    .fetch_all(pool)
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
    pool: &PgPool,
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
         WHERE repository = $1 AND tag = $2 AND id < $3 ORDER BY id DESC LIMIT $4",
    )
    .bind(repository.as_str())
    .bind(tag.as_str())
    .bind(before)
    .bind(sql_limit(limit))
    .fetch_all(pool)
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
    pool: &PgPool,
    repository: &RepositoryName,
    tag: &Tag,
    actor: &str,
    events: &[NewEvent],
) -> Result<()> {
    serializable!(pool, |c| delete_tag_in(c, repository, tag, actor, events))
}

async fn delete_tag_in(
    tx: &mut PgConnection,
    repository: &RepositoryName,
    tag: &Tag,
    actor: &str,
    events: &[NewEvent],
) -> Result<()> {
    let deleted = sqlx::query("DELETE FROM tags WHERE repository = $1 AND tag = $2")
        .bind(repository.as_str())
        .bind(tag.as_str())
        .execute(&mut *tx)
        .await?;
    if deleted.rows_affected() == 0 {
        return Err(Error::NotFound(format!("tag {repository}:{tag}")));
    }
    sqlx::query(
        "INSERT INTO tag_events (repository, tag, digest, at, actor) VALUES ($1, $2, NULL, $3, $4)",
    )
    .bind(repository.as_str())
    .bind(tag.as_str())
    .bind(now())
    .bind(actor)
    .execute(&mut *tx)
    .await?;
    super::outbox::record_events(tx, events, now()).await
}
