//! `registry-server`: the registry as a standalone server.
//!
//! ```text
//! cargo run --release --example registry-server -- --listen 127.0.0.1:5000 --data-dir ./data
//! ```
//!
//! Blobs and upload sessions live under the data directory, metadata in
//! `registry.db` (SQLite) beside them, the state of upload sessions in
//! `registry-uploads.db`; with `--storage s3` blobs go to an
//! S3-compatible bucket and upload sessions to the database; with
//! `--database-url postgres://…` metadata and auth records (and, with S3,
//! upload sessions) go to PostgreSQL, which replicas share. Settings come from flags, their
//! `REGISTRY_*` environment variables, and an optional TOML file
//! (`--config`), in that order of precedence. With `--tls-cert` and
//! `--tls-key` (PEM) it serves HTTPS (rustls, ring) instead of plain HTTP.
//! The web UI (`examples/web-ui/`) is served at `/ui/` unless `--no-ui`.

mod auth_setup;
mod config;
mod directory;
mod events_config;
mod flags;
mod oidc;
mod proxy_config;
mod serve;
mod storage_config;
mod tls;
mod token_config;
#[path = "../web-ui/assets.rs"]
mod web_ui;

use std::time::Instant;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use clap::Parser;
use registry::api::{router, Limits, Registry};
use registry::storage::postgres::PgStore;
use registry::storage::sqlite::SqliteMetadataStore;
use registry::storage::Stores;
use storage_config::StorageSetting;

use registry::storage::filesystem::{permissions, Durability};
use tracing_subscriber::EnvFilter;

use config::{DurabilitySetting, LogFormat, Settings};
use flags::Flags;

/// One structured log line per request.
async fn access_log(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    tracing::info!(
        target: "access",
        %method,
        path,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down: finishing requests in flight");
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_env("REGISTRY_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let settings = match Settings::load(Flags::parse()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("registry-server: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    init_logging(settings.log_format);
    match run(settings).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("registry-server: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(settings: Settings) -> Result<(), String> {
    // Checked first: a bad certificate should not leave a half-made data dir.
    let tls_config = match &settings.tls {
        Some(files) => Some(tls::server_config(&files.cert, &files.key)?),
        None => None,
    };
    let durability = match settings.durability {
        DurabilitySetting::Fsync => Durability::Fsync,
        DurabilitySetting::None => Durability::None,
    };
    // Private to its owner (0700; existing installs are tightened): it holds
    // the database of password and token hashes and the signing key.
    permissions::create_private_dir(&settings.data_dir).map_err(|e| {
        format!(
            "cannot create data directory {}: {e}",
            settings.data_dir.display()
        )
    })?;
    let dir = &settings.data_dir;
    let key = dir.join("token-signing.key");
    permissions::restrict(&key, permissions::PRIVATE_FILE_MODE)
        .map_err(|e| format!("cannot restrict the mode of {}: {e}", key.display()))?;
    serve::raise_open_files_limit(settings.serve.max_connections);
    let open_error = |e: registry::storage::StorageError| {
        format!("cannot open data directory {}: {e}", dir.display())
    };
    let s3_error = |s3: &registry::storage::s3::S3Config, e| {
        format!(
            "cannot use S3 bucket {} at {}: {e}",
            s3.bucket,
            s3.endpoint.as_deref().unwrap_or("AWS S3")
        )
    };
    let stores = match (&settings.storage, &settings.database_url) {
        (StorageSetting::Filesystem, None) => Stores::data_dir(dir, durability)
            .await
            .map_err(open_error)?,
        // Blobs and uploads stay under the data dir; metadata and auth
        // records go to the database, which replicas share.
        (StorageSetting::Filesystem, Some(url)) => Stores::postgres(url.expose(), dir, durability)
            .await
            .map_err(|e| format!("cannot use the database {url}: {e}"))?,
        (StorageSetting::S3(s3), None) => {
            // Metadata, upload sessions and auth records stay in the data
            // directory's database; blobs go to the bucket.
            let database = SqliteMetadataStore::open(dir.join("registry.db"))
                .await
                .map_err(open_error)?;
            Stores::s3(s3, database)
                .await
                .map_err(|e| s3_error(s3, e))?
        }
        // Nothing but the bucket and the database: any replica serves any
        // request and continues any upload.
        (StorageSetting::S3(s3), Some(url)) => {
            let database = PgStore::connect(url.expose())
                .await
                .map_err(|e| format!("cannot use the database {url}: {e}"))?;
            let changes = database
                .change_feed()
                .await
                .map_err(|e| format!("cannot listen for changes on the database {url}: {e}"))?;
            Stores::s3(s3, database)
                .await
                .map_err(|e| s3_error(s3, e))?
                .with_change_feed(changes)
        }
    };
    let mut limits = Limits::default();
    limits.body_idle_timeout = settings.body_idle_timeout;
    let limits = settings.upload_limits.apply(limits);
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", settings.listen))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let scheme = if tls_config.is_some() {
        "https"
    } else {
        "http"
    };
    let server_url = format!("{scheme}://{addr}");
    let mut events = settings.events.clone();
    events.source = settings
        .public_url
        .clone()
        .unwrap_or_else(|| server_url.clone());
    let mut builder = Registry::builder(stores.clone())
        .limits(limits)
        .events(events);
    for proxy in &settings.proxies {
        tracing::info!(namespace = %proxy.namespace, upstream = %proxy.upstream,
            hosts = ?proxy.all_hosts(), "proxy namespace");
        builder = builder.proxy(proxy.clone());
    }
    let registry = if settings.auth {
        auth_setup::enable(builder, &stores, &settings, &server_url).await?
    } else {
        tracing::warn!("authentication is off: anyone who reaches this port may push and delete");
        builder
            .build()
            .await
            .map_err(|e| format!("cannot start the registry: {e}"))?
    };
    // Idle upload sessions and stale temp files go without a prune.
    let _maintenance = registry.spawn_maintenance();
    // Proxy namespaces' scheduled mirroring (`sync` rules of [[proxy]]).
    let _mirror_sync = registry.spawn_mirror_sync();
    let _scheduled_prune = settings.prune_interval.map(|every| {
        tracing::info!(every_secs = every.as_secs(), "scheduled prune on");
        registry.spawn_scheduled_prune(every, registry::storage::GcOptions::default())
    });
    let mut app =
        web_ui::mount(router(&registry), settings.ui).layer(middleware::from_fn(access_log));
    if tls_config.is_some() {
        // Without --public-url, token realms and pull secrets follow the
        // request's Host: with this, under the https scheme.
        app = app.layer(middleware::from_fn(tls::mark_https));
    }
    let database = settings.database_url.as_ref().map(ToString::to_string);
    tracing::info!(%addr, tls = tls_config.is_some(), data_dir = %settings.data_dir.display(), ?durability, database, "registry listening");
    println!("registry-server listening on {server_url}");
    let tls = tls_config.map(tokio_rustls::TlsAcceptor::from);
    serve::serve(listener, tls, app, settings.serve, shutdown_signal()).await;
    Ok(())
}
