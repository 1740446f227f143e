//! The S3 server of the tests (`REGISTRY_TEST_S3_*`, Garage in CI) and
//! `registry-server --storage s3` commands over it.
#![allow(dead_code)]

use super::examples::ServerProcess;

pub struct S3 {
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub key_id: String,
    pub secret: String,
}

pub fn s3(test: &str) -> Option<S3> {
    let var = |name: &str| std::env::var(format!("REGISTRY_TEST_S3_{name}")).ok();
    let Some(endpoint) = var("ENDPOINT") else {
        eprintln!("skipped {test}: REGISTRY_TEST_S3_ENDPOINT is not set (bash .ci/services.sh start sets it)");
        return None;
    };
    Some(S3 {
        endpoint,
        region: var("REGION").unwrap_or_else(|| "garage".into()),
        bucket: var("BUCKET").expect("REGISTRY_TEST_S3_BUCKET"),
        key_id: var("ACCESS_KEY_ID").expect("REGISTRY_TEST_S3_ACCESS_KEY_ID"),
        secret: var("SECRET_ACCESS_KEY").expect("REGISTRY_TEST_S3_SECRET_ACCESS_KEY"),
    })
}

/// The server over the bucket under `prefix`, with `extra` arguments
/// (a `--database-url`; without one its database is in `dir`).
pub fn server(
    dir: &std::path::Path,
    s3: &S3,
    bucket: &str,
    prefix: &str,
    extra: &[&str],
) -> std::process::Command {
    let mut command = ServerProcess::command(
        dir,
        &[
            "--storage",
            "s3",
            "--s3-endpoint",
            &s3.endpoint,
            "--s3-region",
            &s3.region,
            "--s3-bucket",
            bucket,
            "--s3-prefix",
            prefix,
        ],
    );
    command.args(extra);
    command
        .env("AWS_ACCESS_KEY_ID", &s3.key_id)
        .env("AWS_SECRET_ACCESS_KEY", &s3.secret);
    command
}
