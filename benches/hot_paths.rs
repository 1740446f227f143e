//! Criterion benches of the pure hot paths: manifest parsing, name and
//! reference parsing, the authorizer's check and registry tokens (issuing,
//! verifying a token first seen, verifying one seen before).
//!
//! `cargo bench --bench hot_paths`

// criterion_group! and criterion_main! generate undocumented items.
#![allow(missing_docs)]

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use registry::auth::{
    Action, Authorizer, ClusterRole, ClusterRoleBinding, Identity, MemoryAuthStore, Resource, Role,
    RoleBinding, Scope, Subject, TokenIssuer, TokenSettings, TokenSource,
};
use registry::core::{media_type, Digest, Manifest, Reference, RepositoryName};
use std::hint::black_box;

fn manifest_bytes() -> Vec<u8> {
    let d = |s: &str| Digest::sha256_of(s.as_bytes()).to_string();
    let layers: Vec<_> = (0..8)
        .map(|i| {
            serde_json::json!({"mediaType": media_type::OCI_LAYER_GZIP, "digest": d(&i.to_string()), "size": 1000 + i})
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": media_type::OCI_MANIFEST,
        "config": {"mediaType": media_type::OCI_CONFIG, "digest": d("c"), "size": 1234},
        "layers": layers,
        "annotations": {"org.opencontainers.image.created": "2026-11-24T00:00:00Z"},
    }))
    .expect("serialises")
}

fn parsing(c: &mut Criterion) {
    let bytes = manifest_bytes();
    c.bench_function("manifest_parse_8_layers", |b| {
        b.iter(|| Manifest::parse(Some(media_type::OCI_MANIFEST), black_box(&bytes)))
    });
    c.bench_function("repository_name_parse", |b| {
        b.iter(|| black_box("team/web/frontend-app").parse::<RepositoryName>())
    });
    let digest = Digest::sha256_of(b"x").to_string();
    c.bench_function("reference_parse_digest", |b| {
        b.iter(|| black_box(digest.as_str()).parse::<Reference>())
    });
}

fn authorization(c: &mut Criterion) {
    let mut bindings = Vec::new();
    for ns in 0..200 {
        for user in 0..5 {
            bindings.push(RoleBinding {
                namespace: format!("ns{ns}").parse().expect("namespace"),
                role: Role::Editor,
                subject: format!("user{user}").parse::<Subject>().expect("subject"),
            });
        }
    }
    let cluster = vec![ClusterRoleBinding {
        role: ClusterRole::ClusterAdmin,
        subject: "root".parse().expect("subject"),
    }];
    let authz = Authorizer::new(&bindings, &cluster);
    let identity = Identity::user("user3".parse().expect("user"));
    let repo: RepositoryName = "ns150/app".parse().expect("repo");
    c.bench_function("authorizer_check_1000_bindings", |b| {
        b.iter(|| {
            authz.check(
                black_box(&identity),
                Action::Push,
                &Resource::Repository(&repo),
            )
        })
    });

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let store = Arc::new(MemoryAuthStore::new());
    let issuer = runtime
        .block_on(TokenIssuer::load(
            store,
            "registry",
            &TokenSettings::default(),
        ))
        .expect("issuer");
    let scopes = Scope::parse_all(["repository:ns150/app:pull,push"]).expect("scope");
    let now = time::OffsetDateTime::now_utc();
    let issue = || {
        issuer
            .issue_at(&identity, &scopes, TokenSource::Password, "registry", now)
            .expect("token")
            .token
    };
    c.bench_function("token_issue", |b| b.iter(issue));
    c.bench_function("token_verify_first_time", |b| {
        b.iter_batched(
            issue,
            |token| issuer.verify_at(black_box(token.expose()), now),
            BatchSize::SmallInput,
        )
    });
    let token = issue();
    c.bench_function("token_verify_again", |b| {
        b.iter(|| issuer.verify_at(black_box(token.expose()), now))
    });
}

criterion_group!(benches, parsing, authorization);
criterion_main!(benches);
