//! `registryctl mirror sync NS/REPO [--tags GLOB] [--all-platforms]`:
//! ahead-of-time mirroring into a proxy namespace
//! (`/apis/admin/v1/namespaces/{ns}/mirror/sync`), a line per tag as the
//! server reports it.

use registry::api::model::admin::{MirrorSyncEvent, MirrorSyncRequest, SyncedTag};

use crate::admin::print_json;
use crate::cli::{Global, MirrorCmd};
use crate::session::Connection;
use crate::{say, CliError, Io};

/// `1536` → `1.5 KiB`.
fn human(bytes: u64) -> String {
    registry::storage::HumanBytes(bytes).to_string()
}

/// One progress line.
fn describe(event: &MirrorSyncEvent) -> String {
    match event {
        MirrorSyncEvent::Started {
            repository,
            upstream,
            tags,
        } => format!("syncing {tags} tags of {upstream} into {repository}"),
        MirrorSyncEvent::Tag(SyncedTag {
            tag,
            digest,
            manifests,
            blobs_fetched,
            blobs_cached,
            bytes_fetched,
            error,
            ..
        }) => {
            let tag = tag.as_ref().map(ToString::to_string).unwrap_or_default();
            match error {
                Some(error) => format!("  {tag}: FAILED: {error}"),
                None => format!(
                    "  {tag}: {} ({manifests} manifests; {blobs_fetched} blobs fetched, {}; \
                     {blobs_cached} already stored)",
                    digest.as_ref().map(ToString::to_string).unwrap_or_default(),
                    human(*bytes_fetched)
                ),
            }
        }
        MirrorSyncEvent::Finished {
            tags_synced,
            tags_failed,
            blobs_fetched,
            blobs_cached,
            bytes_fetched,
        } => format!(
            "done: {tags_synced} tags synced, {tags_failed} failed; {blobs_fetched} blobs \
             fetched ({}), {blobs_cached} already stored",
            human(*bytes_fetched)
        ),
        MirrorSyncEvent::Failed { message } => format!("sync failed: {message}"),
        other => format!("{other:?}"),
    }
}

/// Runs `mirror sync` over an open connection: a non-zero exit when the
/// sync failed or any tag did.
pub(crate) async fn run(
    g: &Global,
    conn: &Connection,
    command: MirrorCmd,
    io: &mut Io<'_>,
) -> Result<(), CliError> {
    let MirrorCmd::Sync {
        target,
        tags,
        all_platforms,
    } = command;
    let ns = target.to_namespace();
    let request = MirrorSyncRequest::new(target.stream(), tags, all_platforms);
    let mut written = Ok(());
    let json = g.json;
    let last = {
        let out = &mut *io.out;
        conn.run(conn.client.mirror_sync(&ns, &request, |event| {
            if written.is_ok() && !json {
                written = say!(out, "{}", describe(event));
            }
        }))
        .await?
    };
    written?;
    if json {
        return print_json(io, &last);
    }
    match last {
        MirrorSyncEvent::Finished { tags_failed: 0, .. } => Ok(()),
        MirrorSyncEvent::Finished { tags_failed, .. } => Err(CliError::Sync(format!(
            "{tags_failed} tags of {target} failed to sync; run it again to resume"
        ))),
        MirrorSyncEvent::Failed { message } => Err(CliError::Sync(message)),
        other => Err(CliError::Sync(format!("the sync ended early: {other:?}"))),
    }
}

#[cfg(test)]
#[path = "mirror_tests.rs"]
mod tests;
