//! The guarded one-round-trip paths of a blob link and a manifest put (see
//! `Batch::push_guard`): taken when their checks pass, and stopped, with
//! nothing of the batch written, when they do not.

use registry_core::{Digest, Namespace, RepositoryName, Tag};

use crate::metadata::{BlobState, MetadataStore, MovedTag, NewManifest};
use crate::policy::NamespacePolicy;
use crate::sqlite::SqliteMetadataStore;
use crate::StorageError;

async fn clear_guard(store: &SqliteMetadataStore) {
    sqlx::query("DELETE FROM temp.batch_guard")
        .execute(&store.writer)
        .await
        .expect("clear");
}

async fn link_sized(
    store: &SqliteMetadataStore,
    r: &RepositoryName,
    d: &Digest,
    size: u64,
) -> Result<(), StorageError> {
    let ticket = store.blob_ticket(d).await?.with_size(size);
    store.link_blob_with(r, &ticket).await
}

async fn guard_row(store: &SqliteMetadataStore) -> Option<bool> {
    sqlx::query_scalar("SELECT ok FROM temp.batch_guard")
        .fetch_optional(&store.writer)
        .await
        .expect("guard row")
}

/// A link whose checks pass commits in the guarded batch (its guard row
/// is there); one the guard stops writes nothing of that batch and gets
/// its failure named by the checks in Rust.
#[tokio::test]
async fn links_commit_in_one_batch_unless_the_guard_stops_them() {
    let store = SqliteMetadataStore::open_in_memory().await.expect("open");
    let r: RepositoryName = "guard/app".parse().expect("name");
    let d = Digest::sha256_of(b"guarded");
    assert_eq!(guard_row(&store).await, None);

    let ticket = store.blob_ticket(&d).await.expect("ticket");
    store.link_blob_with(&r, &ticket).await.expect("link");
    assert_eq!(
        guard_row(&store).await,
        Some(true),
        "the one-batch path ran"
    );
    assert!(store.blob_linked(&r, &d).await.expect("linked"));

    // Marked for deletion: the guard stops the batch, whose touch would
    // have made the blob live again, and the checks name the failure.
    let generation = store.blob_record(&d).await.expect("record").generation;
    assert!(store.begin_blob_delete(&d, generation).await.expect("mark"));
    clear_guard(&store).await;
    let refused = store.link_blob_with(&r, &ticket).await;
    assert!(
        matches!(refused, Err(StorageError::BlobDeleted { .. })),
        "{refused:?}"
    );
    let record = store.blob_record(&d).await.expect("record");
    assert_eq!(record.state, BlobState::Deleting);
    assert!(!store.blob_linked(&r, &d).await.expect("unlinked"));
    assert_eq!(guard_row(&store).await, None, "the guard stopped the batch");

    // Deleted: a ticket from before the deletion is of another epoch, and
    // refused; a fresh one links in one batch.
    store.finish_blob_delete(&d).await.expect("deleted");
    let refused = store.link_blob_with(&r, &ticket).await;
    assert!(
        matches!(refused, Err(StorageError::BlobDeleted { .. })),
        "{refused:?}"
    );
    assert_eq!(guard_row(&store).await, None, "the guard stopped the batch");
    let fresh = store.blob_ticket(&d).await.expect("fresh ticket");
    store.link_blob_with(&r, &fresh).await.expect("relinked");
    assert_eq!(
        guard_row(&store).await,
        Some(true),
        "the one-batch path ran"
    );
    assert_eq!(
        store.blob_record(&d).await.expect("record").state,
        BlobState::Live
    );
}

/// In a namespace with a quota, a link within it takes the one batch
/// too; one past it is stopped by the guard, and the checks in Rust
/// refuse it with the figures.
#[tokio::test]
async fn links_within_a_quota_commit_in_one_batch_and_past_it_are_refused() {
    let store = SqliteMetadataStore::open_in_memory().await.expect("open");
    let team: Namespace = "quota-guard".parse().expect("namespace");
    store.create_namespace(&team).await.expect("namespace");
    let policy = NamespacePolicy {
        quota_bytes: Some(1000),
        ..NamespacePolicy::default()
    };
    store
        .set_namespace_policy(&team, &policy)
        .await
        .expect("policy");
    let r: RepositoryName = "quota-guard/app".parse().expect("name");

    let within = Digest::sha256_of(b"within");
    link_sized(&store, &r, &within, 1000)
        .await
        .expect("within the quota");
    assert_eq!(
        guard_row(&store).await,
        Some(true),
        "the one-batch path ran"
    );

    clear_guard(&store).await;
    let past = Digest::sha256_of(b"past");
    let refused = link_sized(&store, &r, &past, 1).await;
    assert!(
        matches!(
            refused,
            Err(StorageError::QuotaExceeded {
                usage: 1000,
                needed: 1,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        guard_row(&store).await,
        None,
        "the stopped batch left nothing"
    );
    assert!(!store.blob_linked(&r, &past).await.expect("not linked"));

    // Linked again, the blob is not new to the namespace: no bytes needed,
    // even once the namespace is over a lowered quota.
    let lowered = NamespacePolicy {
        quota_bytes: Some(500),
        ..NamespacePolicy::default()
    };
    store
        .set_namespace_policy(&team, &lowered)
        .await
        .expect("policy");
    clear_guard(&store).await;
    link_sized(&store, &r, &within, 1000)
        .await
        .expect("a known blob");
    assert_eq!(guard_row(&store).await, Some(true));
}

/// The conformance suite's manifest of `seed` in `r`, tagged `tag`, its
/// blobs linked.
async fn tagged(
    store: &SqliteMetadataStore,
    r: &RepositoryName,
    seed: &str,
    tag: &Tag,
) -> NewManifest {
    let mut m = crate::testing::manifest(r, seed);
    m.tags = vec![tag.clone()];
    for d in &m.blobs {
        store.link_blob(r, d).await.expect("link");
    }
    m
}

/// A put whose tags are new, or already point at its digest, commits in
/// one batch; one that moves a tag is stopped by the guard and takes the
/// path that reads the tags first, which reports the move.
#[tokio::test]
async fn puts_commit_in_one_batch_unless_a_tag_moves() {
    let store = SqliteMetadataStore::open_in_memory().await.expect("open");
    let r: RepositoryName = "guard/app".parse().expect("name");
    let latest: Tag = "latest".parse().expect("tag");

    let first = tagged(&store, &r, "first", &latest).await;
    clear_guard(&store).await;
    assert!(store
        .put_manifest(first.clone())
        .await
        .expect("put")
        .is_empty());
    assert_eq!(guard_row(&store).await, Some(true), "a new tag: one batch");
    clear_guard(&store).await;
    assert!(store
        .put_manifest(first.clone())
        .await
        .expect("again")
        .is_empty());
    assert_eq!(
        guard_row(&store).await,
        Some(true),
        "the same tag: one batch"
    );

    let second = tagged(&store, &r, "second", &latest).await;
    clear_guard(&store).await;
    let moved = store.put_manifest(second).await.expect("move");
    assert_eq!(
        moved,
        [MovedTag {
            tag: latest,
            previous: first.digest,
        }]
    );
    assert_eq!(
        guard_row(&store).await,
        None,
        "a moving tag: the guard stopped the batch"
    );
}
