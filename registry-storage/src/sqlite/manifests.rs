//! Manifests: put, get, delete, find, and the referrers index.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use registry_core::{Digest, Reference, RepositoryName, Tag};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use super::batch::Batch;
use super::connections::{Guarded, Readers, Slot};

use super::blobs::touch;
use super::error::{from_nanos, now, parse, parse_opt, sql_limit, Error, Result};
use super::repositories::ensure_repository;
use super::tags::{move_tag, record_deletions};
use crate::metadata::{MovedTag, NewManifest, Referrer, StoredManifest};

/// Columns of [`ManifestRow`] from `manifests m`.
macro_rules! manifest_columns {
    () => {
        "m.digest, m.media_type, m.bytes, m.subject, m.artifact_type, m.annotations, \
         m.config, m.created"
    };
}

/// A manifest by digest: one primary-key lookup.
const BY_DIGEST: &str = concat!(
    "SELECT ",
    manifest_columns!(),
    " FROM manifests m WHERE m.repository = ? AND m.digest = ?"
);

/// A manifest by tag: two primary-key lookups in one statement.
const BY_TAG: &str = concat!(
    "SELECT ",
    manifest_columns!(),
    " FROM tags t JOIN manifests m ON m.repository = t.repository AND m.digest = t.digest \
     WHERE t.repository = ? AND t.tag = ?"
);

/// Referrers of a subject, sorted by digest (served by `manifests_by_subject`).
const REFERRERS: &str = "SELECT digest, media_type, size, artifact_type, annotations \
     FROM manifests WHERE repository = ? AND subject = ? AND digest > ? ORDER BY digest LIMIT ?";

/// [`REFERRERS`] of one artifact type.
const REFERRERS_OF_TYPE: &str = "SELECT digest, media_type, size, artifact_type, annotations \
     FROM manifests WHERE repository = ? AND subject = ? AND artifact_type = ? AND digest > ? \
     ORDER BY digest LIMIT ?";

#[derive(sqlx::FromRow)]
struct ManifestRow {
    digest: String,
    media_type: String,
    bytes: Vec<u8>,
    subject: Option<String>,
    artifact_type: Option<String>,
    annotations: String,
    config: Option<String>,
    created: i64,
}

impl ManifestRow {
    fn into_stored(self, repository: &RepositoryName) -> Result<StoredManifest> {
        Ok(StoredManifest {
            repository: repository.clone(),
            digest: parse("manifests.digest", &self.digest)?,
            media_type: self.media_type,
            bytes: Bytes::from(self.bytes),
            subject: parse_opt("manifests.subject", self.subject.as_deref())?,
            artifact_type: self.artifact_type,
            annotations: decode_annotations(&self.annotations)?,
            config: parse_opt("manifests.config", self.config.as_deref())?,
            created: from_nanos(self.created),
        })
    }
}

fn decode_annotations(json: &str) -> Result<BTreeMap<String, String>> {
    Ok(serde_json::from_str(json)?)
}

/// A JSON array of the distinct strings, for `json_each(?)`: one statement
/// takes a whole list (a manifest's blobs or children, a push's tags).
pub(super) fn json_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    let distinct: BTreeSet<&str> = items.into_iter().collect();
    serde_json::Value::from(distinct.into_iter().collect::<Vec<_>>()).to_string()
}

/// [`json_list`] of digests.
pub(super) fn digest_list<'a>(digests: impl IntoIterator<Item = &'a Digest>) -> String {
    json_list(digests.into_iter().map(Digest::as_str))
}

/// The first row's first column of statement `at` of a batch, if any.
fn first_text(rows: &[Vec<SqliteRow>], at: Option<usize>) -> Result<Option<String>> {
    match at.and_then(|i| rows.get(i)).and_then(|r| r.first()) {
        Some(row) => Ok(Some(row.try_get(0)?)),
        None => Ok(None),
    }
}

/// What a manifest put binds, computed once for either of its paths.
struct PutValues {
    now: i64,
    annotations: String,
    size: i64,
    /// JSON arrays (see [`json_list`]), `None` when empty.
    blobs: Option<String>,
    children: Option<String>,
    tags: Option<String>,
}

/// Puts a manifest.
///
/// Usually one round trip: `BEGIN IMMEDIATE`, the reads the checks need, a
/// guard that holds when no tag moves and the checks would pass, the
/// writes and `COMMIT`. When the guard fails, the transaction stays open
/// with the reads' rows: the checks run in Rust and name what failed, or
/// pass (a tag moves, whose `tag.moved` event needs the digest it leaves)
/// and the writes follow in a second round trip.
pub(super) async fn put_manifest(writer: &Slot, m: NewManifest) -> Result<Vec<MovedTag>> {
    // Each statement takes every blob, child or tag at once (JSON arrays):
    // a push costs the same statements whatever its number of layers.
    let v = PutValues {
        now: now(),
        annotations: serde_json::to_string(&m.annotations)?,
        size: i64::try_from(m.bytes.len()).unwrap_or(i64::MAX),
        blobs: (!m.blobs.is_empty()).then(|| digest_list(&m.blobs)),
        children: (!m.children.is_empty()).then(|| digest_list(&m.children)),
        tags: (!m.tags.is_empty()).then(|| json_list(m.tags.iter().map(Tag::as_str))),
    };
    // What the put depends on, read under the write lock (`BEGIN
    // IMMEDIATE`, so the busy timeout applies instead of a deferred
    // transaction failing when it upgrades):
    // - the tags, read under the write lock: immutable ones cannot move and
    //   no other push moves one before the commit, so the `tag.moved`
    //   events name the digest each tag really left;
    // - a blob a collector is deleting (or deleted) cannot be referenced:
    //   this check and the touch that stops a later collector share the
    //   transaction (see `crate::gc`);
    // - an index's children: a retention run deleting one cannot commit
    //   between this check and the commit;
    // - the namespace's policy, for the quota.
    let repo = m.repository.as_str();
    let mut checks = Batch::new();
    let mut tags_at = None;
    if let Some(tags) = &v.tags {
        tags_at = Some(checks.push(
            "SELECT tag, digest FROM tags WHERE repository = ? \
             AND tag IN (SELECT value FROM json_each(?))",
        ));
        checks.bind(repo)?.bind(tags.as_str())?;
    }
    let mut gone_at = None;
    let mut policy_at = None;
    if let Some(blobs) = &v.blobs {
        gone_at = Some(checks.push(GONE));
        checks.bind(blobs.as_str())?;
        policy_at = Some(super::usage::quota_policy(
            &mut checks,
            m.repository.namespace(),
        )?);
    }
    let mut missing_at = None;
    if let Some(children) = &v.children {
        missing_at = Some(checks.push(MISSING));
        checks.bind(children.as_str())?.bind(repo)?;
    }
    push_put_guard(&mut checks, &m, &v)?;
    put_writes(&mut checks, &m, &v, m.tags.iter(), &m.events)?;
    let (mut tx, rows) = match writer.transact_guarded(checks).await? {
        Guarded::Committed => return Ok(Vec::new()),
        Guarded::Stopped(tx, rows) => (tx, rows),
    };

    let mut current = BTreeMap::new();
    for row in tags_at.map_or(&[][..], |i| &rows[i]) {
        let (tag, digest): (String, String) = (row.try_get(0)?, row.try_get(1)?);
        current.insert(
            parse::<Tag>("tags.tag", &tag)?,
            parse::<Digest>("tags.digest", &digest)?,
        );
    }
    for tag in &m.fixed_tags {
        if let Some(other) = current.get(tag).filter(|d| *d != &m.digest) {
            return Err(Error::TagImmutable(tag.clone(), other.clone()));
        }
    }
    if let Some(gone) = first_text(&rows, gone_at)? {
        return Err(Error::BlobDeleted(parse("blob_records.digest", &gone)?));
    }
    if let Some(missing) = first_text(&rows, missing_at)? {
        return Err(Error::ManifestMissing(parse("manifest child", &missing)?));
    }
    if let (Some(blobs), Some(policy)) = (&v.blobs, policy_at) {
        super::usage::check_quota(&mut tx, &m.repository, blobs, &rows[policy]).await?;
    }

    // The writes and the commit: one more round trip.
    let (events, moved) = crate::metadata::push_events(&m, |tag| current.get(tag));
    let mut writes = Batch::new();
    let moving = m.tags.iter().filter(|t| current.get(*t) != Some(&m.digest));
    put_writes(&mut writes, &m, &v, moving, &events)?;
    tx.commit_with(writes).await?;
    Ok(moved)
}

/// A blob of a JSON array that a collector is deleting or deleted.
const GONE: &str =
    "SELECT digest FROM blob_records WHERE digest IN (SELECT value FROM json_each(?)) \
     AND state <> 0 ORDER BY digest LIMIT 1";

/// A manifest of a JSON array that is not in a repository.
const MISSING: &str = "SELECT value FROM json_each(?) WHERE NOT EXISTS \
     (SELECT 1 FROM manifests WHERE repository = ? AND digest = value) LIMIT 1";

/// [`put_manifest`]'s guard: holds only when no tag of the put points at
/// another digest (no tag moves, so no immutable tag is in the way and no
/// `tag.moved` event is due; the put's own events are all there are) and
/// the checks in Rust would pass: no blob is being deleted or deleted,
/// every child is in the repository, and the namespace stays within its
/// quota, if any.
fn push_put_guard<'a>(batch: &mut Batch<'a>, m: &'a NewManifest, v: &'a PutValues) -> Result<()> {
    let repo = m.repository.as_str();
    let mut condition = vec!["1".to_owned()];
    if v.tags.is_some() {
        condition.push(
            "NOT EXISTS (SELECT 1 FROM tags WHERE repository = ? \
             AND tag IN (SELECT value FROM json_each(?)) AND digest <> ?)"
                .to_owned(),
        );
    }
    if v.blobs.is_some() {
        condition.push(format!("NOT EXISTS ({GONE})"));
        condition.push(super::usage::WITHIN_QUOTA.to_owned());
    }
    if v.children.is_some() {
        condition.push(format!("NOT EXISTS ({MISSING})"));
    }
    batch.push_guard(&condition.join(" AND "));
    if let Some(tags) = &v.tags {
        batch
            .bind(repo)?
            .bind(tags.as_str())?
            .bind(m.digest.as_str())?;
    }
    if let Some(blobs) = &v.blobs {
        batch
            .bind(blobs.as_str())?
            .bind(m.repository.namespace())?
            .bind(blobs.as_str())?;
    }
    if let Some(children) = &v.children {
        batch.bind(children.as_str())?.bind(repo)?;
    }
    Ok(())
}

/// A put's writes: its blobs marked live and wanted now, the repository,
/// the manifest and its references, the tags in `moving` and the events.
fn put_writes<'a>(
    writes: &mut Batch<'a>,
    m: &'a NewManifest,
    v: &'a PutValues,
    moving: impl Iterator<Item = &'a Tag>,
    events: &'a [crate::events::NewEvent],
) -> Result<()> {
    let now = v.now;
    if let Some(blobs) = &v.blobs {
        touch(writes, blobs, now)?;
    }
    ensure_repository(writes, &m.repository, now)?;
    let repo = m.repository.as_str();
    let digest = m.digest.as_str();
    // Same digest, same bytes: the first row (and its `created`) wins;
    // `pushed` says a push named it again (retention keeps it then).
    writes.push(
        "INSERT INTO manifests (repository, digest, media_type, bytes, size, subject, \
         artifact_type, annotations, config, created, pushed) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (repository, digest) DO UPDATE SET pushed = excluded.pushed",
    );
    writes
        .bind(repo)?
        .bind(digest)?
        .bind(m.media_type.as_str())?
        .bind(m.bytes.as_ref())?
        .bind(v.size)?
        .bind(m.subject.as_ref().map(Digest::as_str))?
        .bind(m.artifact_type.as_deref())?
        .bind(v.annotations.as_str())?
        .bind(m.config.as_ref().map(Digest::as_str))?
        .bind(now)?
        .bind(now)?;
    // `WHERE true`: SQLite's parser needs it between a SELECT and an
    // upsert clause.
    if let Some(blobs) = &v.blobs {
        writes.push(
            "INSERT INTO manifest_blobs (repository, manifest, blob) \
             SELECT ?, ?, value FROM json_each(?) WHERE true ON CONFLICT DO NOTHING",
        );
        writes.bind(repo)?.bind(digest)?.bind(blobs.as_str())?;
        writes.push(
            "INSERT INTO blob_links (repository, digest, created) \
             SELECT ?, value, ? FROM json_each(?) WHERE true ON CONFLICT DO NOTHING",
        );
        writes.bind(repo)?.bind(now)?.bind(blobs.as_str())?;
    }
    if let Some(children) = &v.children {
        writes.push(
            "INSERT INTO manifest_children (repository, manifest, child) \
             SELECT ?, ?, value FROM json_each(?) WHERE true ON CONFLICT DO NOTHING",
        );
        writes.bind(repo)?.bind(digest)?.bind(children.as_str())?;
    }
    for tag in moving {
        move_tag(writes, &m.repository, tag, &m.digest, now, &m.actor)?;
    }
    super::outbox::record_events(writes, events, now)?;
    Ok(())
}

pub(super) async fn get_manifest(
    reader: &Readers,
    repository: &RepositoryName,
    reference: &Reference,
) -> Result<Option<StoredManifest>> {
    let row: Option<ManifestRow> = match reference {
        Reference::Digest(digest) => {
            sqlx::query_as(BY_DIGEST)
                .bind(repository.as_str())
                .bind(digest.as_str())
                .fetch_optional(reader)
                .await?
        }
        Reference::Tag(tag) => {
            sqlx::query_as(BY_TAG)
                .bind(repository.as_str())
                .bind(tag.as_str())
                .fetch_optional(reader)
                .await?
        }
    };
    row.map(|r| r.into_stored(repository)).transpose()
}

pub(super) async fn delete_manifest(
    writer: &Slot,
    repository: &RepositoryName,
    digest: &Digest,
    actor: &str,
    events: &[crate::events::NewEvent],
) -> Result<()> {
    let mut tx = writer.begin().await?;
    // An immutable tag is never deleted with its image, however it came to
    // point there after the caller's own check: checked under the write lock.
    let pointing: Vec<String> =
        sqlx::query_scalar("SELECT tag FROM tags WHERE repository = ? AND digest = ? ORDER BY tag")
            .bind(repository.as_str())
            .bind(digest.as_str())
            .fetch_all(&mut *tx)
            .await?;
    if !pointing.is_empty() {
        let policy: Option<String> =
            sqlx::query_scalar("SELECT policy FROM namespace_policies WHERE namespace = ?")
                .bind(repository.namespace())
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(policy) = policy {
            let policy: crate::policy::NamespacePolicy = serde_json::from_str(&policy)?;
            for tag in &pointing {
                let tag: registry_core::Tag = parse("tags.tag", tag)?;
                if policy.immutable_rule(&tag).is_some() {
                    return Err(Error::TagImmutable(tag, digest.clone()));
                }
            }
        }
    }
    // Record the tags' deletion before the cascade removes them.
    record_deletions(&mut tx, repository, digest, now(), actor).await?;
    // Cascades to its tags, blob references and children; the referrers
    // index is an index of this table.
    let deleted = sqlx::query("DELETE FROM manifests WHERE repository = ? AND digest = ?")
        .bind(repository.as_str())
        .bind(digest.as_str())
        .execute(&mut *tx)
        .await?;
    if deleted.rows_affected() == 0 {
        // Dropping `tx` rolls back; there was nothing to record anyway.
        return Err(Error::NotFound(format!("manifest {repository}@{digest}")));
    }
    let mut batch = Batch::new();
    super::outbox::record_events(&mut batch, events, now())?;
    tx.commit_with(batch).await?;
    Ok(())
}

pub(super) async fn manifests_present(
    reader: &Readers,
    repository: &RepositoryName,
    digests: &[Digest],
) -> Result<Vec<bool>> {
    // One statement for the whole list.
    let list = digest_list(digests);
    let found: Vec<String> = sqlx::query_scalar(
        "SELECT digest FROM manifests \
         WHERE repository = ? AND digest IN (SELECT value FROM json_each(?))",
    )
    .bind(repository.as_str())
    .bind(list)
    .fetch_all(reader)
    .await?;
    let found: std::collections::HashSet<String> = found.into_iter().collect();
    Ok(digests.iter().map(|d| found.contains(d.as_str())).collect())
}

pub(super) async fn find_manifest(
    reader: &Readers,
    digest: &Digest,
) -> Result<Vec<RepositoryName>> {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT repository FROM manifests WHERE digest = ? ORDER BY repository")
            .bind(digest.as_str())
            .fetch_all(reader)
            .await?;
    names
        .iter()
        .map(|n| parse("manifests.repository", n))
        .collect()
}

#[derive(sqlx::FromRow)]
struct ReferrerRow {
    digest: String,
    media_type: String,
    size: i64,
    artifact_type: Option<String>,
    annotations: String,
}

pub(super) async fn referrers(
    reader: &Readers,
    repository: &RepositoryName,
    subject: &Digest,
    artifact_type: Option<&str>,
    last: Option<&Digest>,
    limit: usize,
) -> Result<Vec<Referrer>> {
    let after = last.map_or("", Digest::as_str);
    let rows: Vec<ReferrerRow> = match artifact_type {
        None => {
            sqlx::query_as(REFERRERS)
                .bind(repository.as_str())
                .bind(subject.as_str())
                .bind(after)
                .bind(sql_limit(limit))
                .fetch_all(reader)
                .await?
        }
        Some(at) => {
            sqlx::query_as(REFERRERS_OF_TYPE)
                .bind(repository.as_str())
                .bind(subject.as_str())
                .bind(at)
                .bind(after)
                .bind(sql_limit(limit))
                .fetch_all(reader)
                .await?
        }
    };
    rows.into_iter()
        .map(|r| {
            Ok(Referrer {
                digest: parse("manifests.digest", &r.digest)?,
                media_type: r.media_type,
                size: u64::try_from(r.size).map_err(|e| Error::Corrupt {
                    column: "manifests.size",
                    value: r.size.to_string(),
                    source: Box::new(e),
                })?,
                artifact_type: r.artifact_type,
                annotations: decode_annotations(&r.annotations)?,
            })
        })
        .collect()
}
