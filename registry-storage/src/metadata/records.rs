//! What the [`MetadataStore`] stores and returns:
//! manifests to put and as stored, tags and their history, referrers,
//! blob records and the tickets that link blobs safely.

use std::collections::BTreeMap;
use std::time::SystemTime;

use bytes::Bytes;
use registry_core::{Digest, RepositoryName, Tag};

use crate::events::NewEvent;
#[cfg(doc)]
use crate::{error::StorageError, metadata::MetadataStore};

/// A manifest to store, with what the API learned by parsing it.
#[derive(Debug, Clone)]
pub struct NewManifest {
    /// Repository it is pushed to.
    pub repository: RepositoryName,
    /// Digest of `bytes`.
    pub digest: Digest,
    /// Media type it is served with.
    pub media_type: String,
    /// The exact bytes received.
    pub bytes: Bytes,
    /// Digest of the manifest this one refers to (referrers API).
    pub subject: Option<Digest>,
    /// Artifact type, for referrers filtering.
    pub artifact_type: Option<String>,
    /// Top-level annotations, shown in referrers listings.
    pub annotations: BTreeMap<String, String>,
    /// Config blob (image manifests).
    pub config: Option<Digest>,
    /// Blobs it references (config and layers): linked to the repository.
    pub blobs: Vec<Digest>,
    /// Child manifests it references (indexes).
    pub children: Vec<Digest>,
    /// Tags to point at it, in the same transaction.
    pub tags: Vec<Tag>,
    /// Tags of `tags` that may be created or left as they are, never moved
    /// from another image (immutable tags): when one points at another
    /// digest, `put_manifest` stores nothing and fails with
    /// [`StorageError::TagImmutable`].
    pub fixed_tags: Vec<Tag>,
    /// Who pushed it, recorded in tag history.
    pub actor: String,
    /// Events the push raised, recorded in the same transaction (see
    /// [`crate::events`]).
    pub events: Vec<NewEvent>,
    /// Events to record for tags of `tags` this push moves from another
    /// manifest (`tag.moved`), at most one per tag: the store records a
    /// tag's event, in the same transaction and before `events`, only when
    /// the tag pointed at another digest, adding that digest to its data
    /// as `previous_digest`; the others are dropped. Decided inside the
    /// transaction, so concurrent pushes of one tag each see the move they
    /// made.
    pub tag_moved: Vec<(Tag, NewEvent)>,
}

/// A tag a [`put_manifest`](MetadataStore::put_manifest) moved from
/// another manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedTag {
    /// The tag.
    pub tag: Tag,
    /// Where it pointed before.
    pub previous: Digest,
}

/// Adds `previous_digest` to a `tag.moved` event's data.
fn moved_event(mut event: NewEvent, previous: &Digest) -> NewEvent {
    if let serde_json::Value::Object(data) = &mut event.data {
        data.insert(
            "previous_digest".to_owned(),
            previous.as_str().to_owned().into(),
        );
    }
    event
}

/// The `tag.moved` events of `m` for the tags that pointed elsewhere
/// (`current`: a tag's digest before the push), then `m`'s other events:
/// what a store records with the push, and the tags moved.
pub(crate) fn push_events<'a>(
    m: &NewManifest,
    current: impl Fn(&Tag) -> Option<&'a Digest>,
) -> (Vec<NewEvent>, Vec<MovedTag>) {
    let mut events = Vec::with_capacity(m.events.len() + m.tag_moved.len());
    let mut moved = Vec::new();
    for tag in &m.tags {
        let Some(previous) = current(tag).filter(|d| *d != &m.digest) else {
            continue;
        };
        if let Some((_, event)) = m.tag_moved.iter().find(|(t, _)| t == tag) {
            events.push(moved_event(event.clone(), previous));
        }
        moved.push(MovedTag {
            tag: tag.clone(),
            previous: previous.clone(),
        });
    }
    events.extend(m.events.iter().cloned());
    (events, moved)
}

/// A stored manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    /// Repository it belongs to.
    pub repository: RepositoryName,
    /// Digest of `bytes`.
    pub digest: Digest,
    /// Media type it is served with.
    pub media_type: String,
    /// The exact bytes received.
    pub bytes: Bytes,
    /// Subject digest, if any.
    pub subject: Option<Digest>,
    /// Artifact type, if any.
    pub artifact_type: Option<String>,
    /// Top-level annotations.
    pub annotations: BTreeMap<String, String>,
    /// Config blob (image manifests).
    pub config: Option<Digest>,
    /// When it was first pushed to this repository.
    pub created: SystemTime,
}

/// One manifest of a repository as retention sees it (see
/// [`crate::retention`]): when it came, and what it depends on and keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestNode {
    /// Its digest.
    pub digest: Digest,
    /// When it was first pushed to the repository.
    pub created: SystemTime,
    /// When a push last named it (a push of the same digest again moves
    /// this, never `created`).
    pub pushed: SystemTime,
    /// The manifest it refers to (referrers API), if any.
    pub subject: Option<Digest>,
    /// Child manifests it references (indexes).
    pub children: Vec<Digest>,
    /// Blobs it references (config and layers).
    pub blobs: Vec<Digest>,
}

/// A repository (an ImageStream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryInfo {
    /// Its name.
    pub name: RepositoryName,
    /// When it was created (first blob or manifest).
    pub created: SystemTime,
}

/// Where a tag points now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRecord {
    /// The tag.
    pub tag: Tag,
    /// The manifest it points at.
    pub digest: Digest,
    /// When it last moved.
    pub updated: SystemTime,
}

/// One move of a tag. `digest: None` records the tag's deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagEvent {
    /// Position in the tag's history: larger for every later event of the
    /// same tag (not necessarily consecutive). The cursor of
    /// [`MetadataStore::tag_history`] pages.
    pub seq: u64,
    /// Where the tag pointed after the event, or `None` when it was deleted.
    pub digest: Option<Digest>,
    /// When.
    pub at: SystemTime,
    /// Who moved it.
    pub actor: String,
}

/// A manifest that refers to a subject (an entry of the referrers index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Referrer {
    /// The referring manifest's digest.
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// Its size.
    pub size: u64,
    /// Its artifact type.
    pub artifact_type: Option<String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
}

/// Where a blob stands in garbage collection's deletion protocol (see
/// [`crate::gc`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobState {
    /// Its bytes are (or may be) stored and nothing is deleting them.
    Live,
    /// A collector recorded that it is deleting the bytes: no link and no
    /// manifest may take the blob until the deletion ends.
    Deleting,
    /// A collector deleted the bytes. Only a link made with a
    /// [`BlobTicket`] taken after the deletion (by a client that stored the
    /// bytes again) makes it live.
    Deleted,
}

/// What the metadata store records of a blob for garbage collection. A blob
/// the store never heard of is [`BlobRecord::UNKNOWN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobRecord {
    /// Where it stands.
    pub state: BlobState,
    /// Moves whenever the blob is linked, referenced by a committed
    /// manifest or marked by a collector: a collector deletes only if it
    /// has not moved since the collector read it.
    pub generation: u64,
    /// Moves whenever a collector starts deleting the blob: a
    /// [`BlobTicket`] is good only while it has not moved.
    pub epoch: u64,
    /// When the generation last moved, if ever.
    pub touched: Option<SystemTime>,
}

impl BlobRecord {
    /// The record of a blob the store never heard of.
    pub const UNKNOWN: BlobRecord = BlobRecord {
        state: BlobState::Live,
        generation: 0,
        epoch: 0,
        touched: None,
    };
}

/// A blob as linked to a repository ([`MetadataStore::linked_blob`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkedBlob {
    /// Its verified size, when recorded (by a sized [`BlobTicket`] or
    /// [`MetadataStore::record_blob_sizes`]).
    pub size: Option<u64>,
}

/// Taken before storing (or finding) a blob's bytes, and handed to
/// [`MetadataStore::link_blob_with`] afterwards: the link is recorded only
/// if no collector started deleting the blob in between, so bytes found
/// present by a no-op put cannot be deleted under a link that is then
/// acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobTicket {
    digest: Digest,
    epoch: u64,
    size: Option<u64>,
}

impl BlobTicket {
    /// A ticket for `digest` at `epoch` (backends build these from a record).
    pub fn new(digest: Digest, epoch: u64) -> Self {
        BlobTicket {
            digest,
            epoch,
            size: None,
        }
    }

    /// The same ticket carrying the blob's size, once the caller verified
    /// it (an upload's commit, a stat): the link records it for usage
    /// accounting, in the same transaction.
    #[must_use]
    pub fn with_size(mut self, size: u64) -> Self {
        self.size = Some(size);
        self
    }

    /// The blob's verified size, if the caller gave it.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// The blob.
    pub fn digest(&self) -> &Digest {
        &self.digest
    }

    /// The blob's epoch when the ticket was taken.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }
}
