//! Retention on 10,000 manifests in SQLite (a data directory's metadata
//! store): 100 ImageStreams of one namespace, each with 100 images pushed
//! to `latest` in turn (so a 100-event history) and every tenth also
//! tagged `stable`; the policy keeps 5 revisions per tag, so a run keeps
//! 10 images per ImageStream (latest's last 5, stable's last 5) and
//! removes 9,000 manifests.
//!
//! - `retention_10k/dry_run`: reading and planning everything, changing
//!   nothing;
//! - `retention_10k/prune`: a real run on a fresh copy of the database;
//! - `retention_10k/slowest_push_during_prune`: while a real run goes, a
//!   client pushes manifests into the same namespace one after another;
//!   the figure is the longest any one push took (a run holds the write
//!   lock for one short transaction at a time, never for the whole run).
//!
//! `cargo bench --bench retention`

// criterion_group! and criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use registry::core::{media_type, Digest, Namespace, RepositoryName, Tag};
use registry::storage::retention::apply_retention;
use registry::storage::sqlite::SqliteMetadataStore;
use registry::storage::{MetadataStore, NamespacePolicy, NewManifest};

const REPOSITORIES: usize = 100;
const IMAGES: usize = 100;
const DB_FILES: [&str; 3] = ["m.db", "m.db-wal", "m.db-shm"];

fn manifest(repository: &RepositoryName, seed: &str, tags: &[&str]) -> NewManifest {
    let bytes = Bytes::from(format!(
        "{{\"schemaVersion\":2,\"mediaType\":\"{}\",\"seed\":\"{seed}\"}}",
        media_type::OCI_MANIFEST
    ));
    let config = Digest::sha256_of(format!("{seed}/config").as_bytes());
    NewManifest {
        repository: repository.clone(),
        digest: Digest::sha256_of(&bytes),
        media_type: media_type::OCI_MANIFEST.to_owned(),
        bytes,
        subject: None,
        artifact_type: None,
        annotations: BTreeMap::new(),
        config: Some(config.clone()),
        blobs: vec![
            config,
            Digest::sha256_of(format!("{seed}/layer").as_bytes()),
        ],
        children: Vec::new(),
        tags: tags
            .iter()
            .map(|t| t.parse::<Tag>().expect("tag"))
            .collect(),
        fixed_tags: Vec::new(),
        actor: "bench".to_owned(),
        events: Vec::new(),
        tag_moved: Vec::new(),
    }
}

/// Builds the 10,000-manifest database once; returns its directory.
async fn template(dir: &Path) -> PathBuf {
    let path = dir.join("template");
    std::fs::create_dir_all(&path).expect("template dir");
    let store = SqliteMetadataStore::open(path.join("m.db"))
        .await
        .expect("open");
    let team: Namespace = "team".parse().expect("namespace");
    store.create_namespace(&team).await.expect("namespace");
    let policy: NamespacePolicy =
        serde_json::from_str(r#"{"keep_tag_revisions":5}"#).expect("policy");
    store
        .set_namespace_policy(&team, &policy)
        .await
        .expect("policy");
    for r in 0..REPOSITORIES {
        let repository: RepositoryName = format!("team/app{r}").parse().expect("repository");
        for i in 0..IMAGES {
            let tags: &[&str] = if i % 10 == 0 {
                &["latest", "stable"]
            } else {
                &["latest"]
            };
            store
                .put_manifest(manifest(&repository, &format!("{r}/{i}"), tags))
                .await
                .expect("put");
        }
    }
    store.close().await;
    path
}

/// A fresh copy of the template database, open.
async fn copy(template: &Path, dir: &Path) -> SqliteMetadataStore {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("copy dir");
    for file in DB_FILES {
        let from = template.join(file);
        if from.exists() {
            std::fs::copy(&from, dir.join(file)).expect("copy");
        }
    }
    SqliteMetadataStore::open(dir.join("m.db"))
        .await
        .expect("open copy")
}

fn retention(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let tmp = tempfile::tempdir().expect("tempdir");
    let started = Instant::now();
    let template = rt.block_on(template(tmp.path()));
    eprintln!(
        "retention bench: {} manifests written in {:.1}s",
        REPOSITORIES * IMAGES,
        started.elapsed().as_secs_f64()
    );
    let work = tmp.path().join("work");

    let mut group = c.benchmark_group("retention_10k");
    group.sample_size(10);
    let store = rt.block_on(copy(&template, &work));
    let report = rt.block_on(apply_retention(&store, true)).expect("dry run");
    assert_eq!(report.manifests_scanned, (REPOSITORIES * IMAGES) as u64);
    let removes = report.manifests_removed;
    assert_eq!(removes, (REPOSITORIES * (IMAGES - 10)) as u64);
    group.bench_function("dry_run", |b| {
        b.iter(|| rt.block_on(apply_retention(&store, true)).expect("dry run"))
    });
    rt.block_on(store.close());

    group.bench_function("prune", |b| {
        b.iter_batched(
            || rt.block_on(copy(&template, &work)),
            |store| {
                let report = rt.block_on(apply_retention(&store, false)).expect("run");
                assert_eq!(report.manifests_removed, removes);
                rt.block_on(store.close());
            },
            BatchSize::PerIteration,
        )
    });

    group.bench_function("slowest_push_during_prune", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for n in 0..iterations {
                let store = Arc::new(rt.block_on(copy(&template, &work)));
                let slowest = rt.block_on(async {
                    let pruning = {
                        let store = store.clone();
                        tokio::spawn(async move { apply_retention(store.as_ref(), false).await })
                    };
                    let repository: RepositoryName = "team/pushing".parse().expect("repository");
                    let mut slowest = Duration::ZERO;
                    let mut i = 0;
                    while !pruning.is_finished() {
                        let m = manifest(&repository, &format!("push {n} {i}"), &["latest"]);
                        let at = Instant::now();
                        store.put_manifest(m).await.expect("push during prune");
                        slowest = slowest.max(at.elapsed());
                        i += 1;
                    }
                    let report = pruning.await.expect("join").expect("prune");
                    assert!(report.manifests_removed >= removes);
                    slowest
                });
                rt.block_on(store.close());
                total += slowest;
            }
            total
        })
    });
    group.finish();
}

criterion_group!(benches, retention);
criterion_main!(benches);
