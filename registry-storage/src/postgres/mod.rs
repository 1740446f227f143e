//! [`PgStore`]: registry metadata and auth records in PostgreSQL, shared by
//! every replica of a registry.
//!
//! The same tables as the SQLite backend (migrations in
//! `migrations/postgres`, embedded and applied by [`PgStore::connect`]
//! under PostgreSQL's advisory lock, so replicas starting together migrate
//! once). Every write that checks before it writes is one SERIALIZABLE
//! transaction, run again when it conflicts with a concurrent one (see
//! `tx.rs`): what SQLite's single writer guarantees holds across
//! connections and replicas. Reads are single statements, or one
//! `REPEATABLE READ` snapshot where several must agree; the hot ones
//! (a manifest by digest or tag, a blob link) are one round trip each.
//!
//! The pool is bounded and every wait is: acquiring a connection, each
//! statement, and a transaction left idle, so a database that stops
//! answering turns requests into errors instead of piling them up.
//!
//! The same store implements [`registry_auth::AuthStore`], so one
//! `Arc<PgStore>` serves as both `Arc<dyn MetadataStore>` and
//! `Arc<dyn AuthStore>`.
//!
//! ```no_run
//! use registry_core::Namespace;
//! use registry_storage::{postgres::PgStore, MetadataStore};
//!
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! let store = PgStore::connect("postgres://registry@127.0.0.1/registry").await.unwrap();
//! let team: Namespace = "team".parse().unwrap();
//! store.create_namespace(&team).await.unwrap();
//! assert!(store.namespace_exists(&team).await.unwrap());
//! # });
//! ```

mod auth;
mod auth_queries;
mod blobs;
mod changes;
mod error;
mod manifests;
mod outbox;
mod repositories;
mod retention;
mod sessions;
mod tags;
mod token_queries;
mod tx;
mod usage;

use std::collections::HashSet;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use registry_core::{Digest, Namespace, Reference, RepositoryName, Tag};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

use crate::error::Result;
use crate::events::NewEvent;
use crate::metadata::{
    BlobRecord, BlobTicket, LinkedBlob, ManifestNode, MetadataStore, NewManifest, Referrer,
    RepositoryInfo, StoredManifest, TagEvent, TagRecord,
};
use crate::policy::NamespacePolicy;
use crate::usage::{NamespaceUsage, RepositoryUsage, UsageRecount, UsageSummary};

/// The advisory lock key prunes take ("registry" in ASCII): one prune at a
/// time over a database, whichever replica runs it.
const PRUNE_LOCK: i64 = 0x7265_6769_7374_7279;

/// How long a pooled connection may sit idle before the pool checks it
/// is still alive before handing it out.
const IDLE_BEFORE_PING: Duration = Duration::from_secs(10);

/// How often a prune waiting for another one tries the lock again.
const PRUNE_LOCK_POLL: Duration = Duration::from_millis(500);

pub use changes::PgChangeFeed;

/// The schema, embedded at compile time from `migrations/postgres`.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

/// Bounds of a [`PgStore`]'s connection pool and of its waits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgSettings {
    /// Most connections open at once (default 16). A replica never opens
    /// more; requests beyond wait for one, up to `acquire_timeout`.
    pub max_connections: u32,
    /// How long a query waits for a free connection, or for a new one to
    /// connect (default 10 s).
    pub acquire_timeout: Duration,
    /// Longest a statement may run before PostgreSQL cancels it (default
    /// 30 s): `statement_timeout` of every connection.
    pub statement_timeout: Duration,
    /// Longest a transaction may sit idle, such as one whose client died
    /// (default 60 s): `idle_in_transaction_session_timeout`.
    pub idle_in_transaction_timeout: Duration,
}

impl Default for PgSettings {
    fn default() -> Self {
        PgSettings {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(10),
            statement_timeout: Duration::from_secs(30),
            idle_in_transaction_timeout: Duration::from_secs(60),
        }
    }
}

impl PgSettings {
    /// These settings with at most `max` connections (at least 1).
    #[must_use]
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max.max(1);
        self
    }
}

/// Registry metadata and auth records in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The longest one call may take, on the client's side: the statement
    /// timeout is the server's, and a server that vanished (a dropped
    /// network) never sends the cancellation.
    deadline: Duration,
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`,
    /// with libpq's query parameters) with the default [`PgSettings`], and
    /// applies pending migrations. A URL that does not parse, a database
    /// that cannot be reached within the acquire timeout or refuses the
    /// login, and a failed migration are errors that say which.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, PgSettings::default()).await
    }

    /// [`connect`](Self::connect) with other pool bounds.
    pub async fn connect_with(url: &str, settings: PgSettings) -> Result<Self> {
        // sqlx parses any scheme as PostgreSQL's; another is a mistake.
        let scheme = url.split_once("://").map_or("", |(scheme, _)| scheme);
        if !matches!(scheme, "postgres" | "postgresql") {
            return Err(error::Error::UrlScheme(scheme.to_owned()).into());
        }
        let options = PgConnectOptions::from_str(url).map_err(error::Error::Url)?;
        Self::connect_options(options, settings).await
    }

    /// [`connect`](Self::connect) with options built by the caller (to set
    /// a password that is not in a URL, say); the statement timeouts of
    /// `settings` are added to them.
    pub async fn connect_options(options: PgConnectOptions, settings: PgSettings) -> Result<Self> {
        Ok(Self::open(options, settings).await?)
    }

    async fn open(options: PgConnectOptions, settings: PgSettings) -> Result<Self, error::Error> {
        let millis = |d: Duration| d.as_millis().max(1).to_string();
        let options = options.application_name("registry").options([
            ("statement_timeout", millis(settings.statement_timeout)),
            (
                "idle_in_transaction_session_timeout",
                millis(settings.idle_in_transaction_timeout),
            ),
        ]);
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(1))
            .acquire_timeout(settings.acquire_timeout)
            // sqlx pings every connection it hands out by default: a second
            // round trip to the server before each query. A connection in
            // steady use is known alive (the pool pings it again on release
            // anyway); only one idle for a while, which a server restart or a
            // dropped network may have cut, is checked first.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= IDLE_BEFORE_PING {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await?;
        MIGRATOR.run(&pool).await?;
        // A write may wait for a connection, then run (and be retried on
        // conflicts, each attempt short); twice the statement timeout
        // leaves room for that without letting a dead server hold a caller.
        let deadline = settings.acquire_timeout + settings.statement_timeout.saturating_mul(2);
        Ok(PgStore { pool, deadline })
    }

    /// Runs one call of the store within [`PgStore::deadline`].
    async fn bounded<T, E>(
        &self,
        work: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, error::Error>
    where
        error::Error: From<E>,
    {
        tokio::time::timeout(self.deadline, work)
            .await
            .map_err(|_| error::Error::TimedOut(self.deadline))?
            .map_err(error::Error::from)
    }

    /// Takes the prune lock: a session-level advisory lock on a connection
    /// of its own (taken out of the pool), held until the guard drops it.
    /// Closing the connection releases the lock, also when this process
    /// dies; a transaction would not do, since a prune outlasts the idle
    /// transaction timeout. Tried again every half second (a blocking
    /// `pg_advisory_lock` would meet the statement timeout).
    async fn prune_lock(&self) -> Result<crate::metadata::PruneGuard, error::Error> {
        let mut conn = self.pool.acquire().await?.detach();
        loop {
            let locked: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(PRUNE_LOCK)
                .fetch_one(&mut conn)
                .await?;
            if locked {
                return Ok(crate::metadata::PruneGuard::holding(std::sync::Mutex::new(
                    conn,
                )));
            }
            tokio::time::sleep(PRUNE_LOCK_POLL).await;
        }
    }

    /// Closes every connection, waiting for running statements to finish.
    ///
    /// Dropping the last clone of a store also closes its connections, in
    /// the background.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

#[async_trait]
impl MetadataStore for PgStore {
    async fn create_namespace_raising(
        &self,
        namespace: &Namespace,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        Ok(self
            .bounded(repositories::create_namespace(
                &self.pool, namespace, &events,
            ))
            .await?)
    }

    async fn namespace_exists(&self, namespace: &Namespace) -> Result<bool> {
        Ok(self
            .bounded(repositories::namespace_exists(&self.pool, namespace))
            .await?)
    }

    async fn list_namespaces(&self) -> Result<Vec<Namespace>> {
        Ok(self
            .bounded(repositories::list_namespaces(&self.pool))
            .await?)
    }

    async fn delete_namespace_raising(
        &self,
        namespace: &Namespace,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        Ok(self
            .bounded(repositories::delete_namespace(
                &self.pool, namespace, &events,
            ))
            .await?)
    }

    async fn namespace_policy(&self, namespace: &Namespace) -> Result<NamespacePolicy> {
        Ok(self
            .bounded(repositories::namespace_policy(&self.pool, namespace))
            .await?)
    }

    async fn set_namespace_policy_raising(
        &self,
        namespace: &Namespace,
        policy: &NamespacePolicy,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        Ok(self
            .bounded(repositories::set_namespace_policy(
                &self.pool, namespace, policy, &events,
            ))
            .await?)
    }

    async fn repository(&self, name: &RepositoryName) -> Result<Option<RepositoryInfo>> {
        Ok(self
            .bounded(repositories::repository(&self.pool, name))
            .await?)
    }

    async fn list_repositories(
        &self,
        namespace: Option<&Namespace>,
        last: Option<&str>,
        limit: usize,
    ) -> Result<Vec<RepositoryName>> {
        Ok(self
            .bounded(repositories::list_repositories(
                &self.pool, namespace, last, limit,
            ))
            .await?)
    }

    async fn delete_repository_raising(
        &self,
        name: &RepositoryName,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        Ok(self
            .bounded(repositories::delete_repository(&self.pool, name, &events))
            .await?)
    }

    async fn put_manifest(&self, manifest: NewManifest) -> Result<Vec<crate::MovedTag>> {
        Ok(self
            .bounded(manifests::put_manifest(&self.pool, manifest))
            .await?)
    }

    async fn get_manifest(
        &self,
        repository: &RepositoryName,
        reference: &Reference,
    ) -> Result<Option<StoredManifest>> {
        Ok(self
            .bounded(manifests::get_manifest(&self.pool, repository, reference))
            .await?)
    }

    async fn delete_manifest_raising(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
        actor: &str,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        Ok(self
            .bounded(manifests::delete_manifest(
                &self.pool, repository, digest, actor, &events,
            ))
            .await?)
    }

    async fn manifests_present(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
    ) -> Result<Vec<bool>> {
        Ok(self
            .bounded(manifests::manifests_present(
                &self.pool, repository, digests,
            ))
            .await?)
    }

    async fn manifest_nodes(
        &self,
        repository: &RepositoryName,
        last: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<ManifestNode>> {
        Ok(self
            .bounded(retention::manifest_nodes(
                &self.pool, repository, last, limit,
            ))
            .await?)
    }

    async fn delete_unreferenced_manifests(
        &self,
        repository: &RepositoryName,
        digests: &[Digest],
        planned: SystemTime,
    ) -> Result<Vec<bool>> {
        Ok(self
            .bounded(retention::delete_unreferenced(
                &self.pool, repository, digests, planned,
            ))
            .await?)
    }

    async fn blob_reference_count(&self, digest: &Digest) -> Result<u64> {
        Ok(self
            .bounded(retention::blob_reference_count(&self.pool, digest))
            .await?)
    }

    async fn tag_events(
        &self,
        repository: &RepositoryName,
        after: Option<(&Tag, u64)>,
        limit: usize,
    ) -> Result<Vec<(Tag, TagEvent)>> {
        Ok(self
            .bounded(retention::tag_events(&self.pool, repository, after, limit))
            .await?)
    }

    async fn lock_prune(&self) -> Result<crate::metadata::PruneGuard> {
        Ok(self.prune_lock().await?)
    }

    async fn find_manifest(&self, digest: &Digest) -> Result<Vec<RepositoryName>> {
        Ok(self
            .bounded(manifests::find_manifest(&self.pool, digest))
            .await?)
    }

    async fn list_tags(
        &self,
        repository: &RepositoryName,
        last: Option<&Tag>,
        limit: usize,
    ) -> Result<Vec<Tag>> {
        Ok(self
            .bounded(tags::list_tags(&self.pool, repository, last, limit))
            .await?)
    }

    async fn tags(
        &self,
        repository: &RepositoryName,
        last: Option<&Tag>,
        limit: usize,
    ) -> Result<Vec<TagRecord>> {
        Ok(self
            .bounded(tags::tags(&self.pool, repository, last, limit))
            .await?)
    }

    async fn tag_history(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<TagEvent>> {
        Ok(self
            .bounded(tags::tag_history(
                &self.pool, repository, tag, before, limit,
            ))
            .await?)
    }

    async fn delete_tag_raising(
        &self,
        repository: &RepositoryName,
        tag: &Tag,
        actor: &str,
        events: Vec<NewEvent>,
    ) -> Result<()> {
        Ok(self
            .bounded(tags::delete_tag(
                &self.pool, repository, tag, actor, &events,
            ))
            .await?)
    }

    async fn link_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<()> {
        Ok(self
            .bounded(blobs::link_blob(&self.pool, repository, digest))
            .await?)
    }

    async fn linked_blob(
        &self,
        repository: &RepositoryName,
        digest: &Digest,
    ) -> Result<Option<LinkedBlob>> {
        Ok(self
            .bounded(blobs::linked_blob(&self.pool, repository, digest))
            .await?)
    }

    async fn unlink_blob(&self, repository: &RepositoryName, digest: &Digest) -> Result<()> {
        Ok(self
            .bounded(blobs::unlink_blob(&self.pool, repository, digest))
            .await?)
    }

    async fn referrers(
        &self,
        repository: &RepositoryName,
        subject: &Digest,
        artifact_type: Option<&str>,
        last: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<Referrer>> {
        Ok(
            manifests::referrers(&self.pool, repository, subject, artifact_type, last, limit)
                .await?,
        )
    }

    async fn referenced_blobs(&self) -> Result<HashSet<Digest>> {
        Ok(self.bounded(blobs::referenced_blobs(&self.pool)).await?)
    }

    async fn forget_blob(&self, digest: &Digest) -> Result<()> {
        Ok(self.bounded(blobs::forget_blob(&self.pool, digest)).await?)
    }

    async fn blob_record(&self, digest: &Digest) -> Result<BlobRecord> {
        Ok(self.bounded(blobs::blob_record(&self.pool, digest)).await?)
    }

    async fn link_blob_with(&self, repository: &RepositoryName, ticket: &BlobTicket) -> Result<()> {
        Ok(self
            .bounded(blobs::link_blob_with(&self.pool, repository, ticket))
            .await?)
    }

    async fn begin_blob_delete(&self, digest: &Digest, generation: u64) -> Result<bool> {
        Ok(self
            .bounded(blobs::begin_blob_delete(&self.pool, digest, generation))
            .await?)
    }

    async fn finish_blob_delete(&self, digest: &Digest) -> Result<()> {
        Ok(self
            .bounded(blobs::finish_blob_delete(&self.pool, digest))
            .await?)
    }

    async fn record_blob_sizes(&self, sizes: &[(Digest, u64)]) -> Result<()> {
        Ok(self
            .bounded(usage::record_blob_sizes(&self.pool, sizes))
            .await?)
    }

    async fn unsized_blobs(
        &self,
        namespace: &Namespace,
        last: Option<&Digest>,
        limit: usize,
    ) -> Result<Vec<Digest>> {
        Ok(self
            .bounded(usage::unsized_blobs(&self.pool, namespace, last, limit))
            .await?)
    }

    async fn namespace_usage(&self, namespace: &Namespace) -> Result<NamespaceUsage> {
        Ok(self
            .bounded(usage::namespace_usage(&self.pool, namespace))
            .await?)
    }

    async fn repository_usage(&self, repository: &RepositoryName) -> Result<RepositoryUsage> {
        Ok(self
            .bounded(usage::repository_usage(&self.pool, repository))
            .await?)
    }

    async fn usage_summary(&self, limit: usize) -> Result<UsageSummary> {
        Ok(self
            .bounded(usage::usage_summary(&self.pool, limit))
            .await?)
    }

    async fn recount_usage(&self, namespace: &Namespace) -> Result<UsageRecount> {
        Ok(self
            .bounded(usage::recount_usage(&self.pool, namespace))
            .await?)
    }

    async fn stale_blob_deletes(&self, before: SystemTime) -> Result<Vec<Digest>> {
        Ok(self
            .bounded(blobs::stale_blob_deletes(
                &self.pool,
                error::to_nanos(before),
            ))
            .await?)
    }
}

#[cfg(test)]
mod tests;
