//! [`S3Backend`]: blobs in an S3-compatible bucket (AWS S3, Garage, MinIO,
//! Ceph RGW, …) over the `object_store` crate. `s3` feature.
//!
//! Layout under the configured prefix:
//! - `blobs/<algorithm>/<first two hex>/<hex>`: one object per blob;
//! - `uploads/<session id>/data`: the multipart upload of a session,
//!   completed and copied to its blob key at commit;
//! - `uploads/<session id>/data.tail-<offset>`: bytes of a session that do not
//!   fill a multipart part yet (S3 refuses parts under 5 MiB but the last),
//!   one object per acknowledged offset.
//!
//! A one-shot put whose digest is promised is written as a multipart upload
//! straight to its blob key and completed only once the digest matched:
//! readers see the whole blob or nothing, and nothing is copied. Nothing
//! relies on conditional writes (some S3 servers ignore them): concurrent
//! writers of one digest write the same bytes.
//!
//! Parts are buffered to [`S3Config::part_size`] (at least the S3 minimum
//! of 5 MiB), two uploading at a time while the next one fills: a blob is
//! never held in memory whole.
//!
//! Multipart uploads of a process killed mid-write are not visible and are
//! not listed by `object_store`: give the bucket a lifecycle rule that
//! aborts incomplete multipart uploads after a day.

mod staged;

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt};
use registry_core::{Algorithm, Digest};

use crate::backend::{AppendMode, BlobBackend, StageTarget, StagedWrite};
use crate::blob::{BlobBody, BlobInfo, ByteRange, ByteStream};
use crate::error::{Result, StorageError};
use crate::upload::UploadId;

/// The smallest multipart part S3 accepts (all but the last part).
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// Where the blobs live and how to reach them.
#[derive(Clone, Default)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// A custom endpoint (`http://127.0.0.1:3900` for Garage or MinIO);
    /// addressed path-style. `None`: AWS S3 itself.
    pub endpoint: Option<String>,
    /// The region (`garage` for Garage). `None`: from the environment,
    /// else `us-east-1`.
    pub region: Option<String>,
    /// Key prefix inside the bucket (`""` for the bucket's root), so that
    /// several registries can share a bucket.
    pub prefix: String,
    /// Access key id; `None`: the usual AWS chain (`AWS_ACCESS_KEY_ID`,
    /// web identity, instance metadata).
    pub access_key_id: Option<String>,
    /// Secret access key, with `access_key_id`.
    pub secret_access_key: Option<String>,
    /// Multipart part size in bytes (at least [`MIN_PART_SIZE`]); 0 picks
    /// the default of 8 MiB.
    pub part_size: usize,
    /// Whether request bodies are left out of the SigV4 signature
    /// (`UNSIGNED-PAYLOAD`). A signed body costs a SHA-256 pass over every
    /// byte here and another on the server, beside the digest the registry
    /// computes anyway. `None`: unsigned over HTTPS (TLS keeps the bytes
    /// intact in transit; AWS S3 itself when no endpoint is set), signed
    /// over plain HTTP, where the signature is what detects a body altered
    /// on the way.
    pub unsigned_payload: Option<bool>,
}

impl S3Config {
    /// Whether bodies go unsigned: [`unsigned_payload`](Self::unsigned_payload),
    /// else by the endpoint's scheme.
    pub fn payload_unsigned(&self) -> bool {
        self.unsigned_payload.unwrap_or_else(|| {
            self.endpoint
                .as_deref()
                .is_none_or(|endpoint| !endpoint.starts_with("http://"))
        })
    }
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("bucket", &self.bucket)
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("prefix", &self.prefix)
            .field("access_key_id", &self.access_key_id)
            .field("part_size", &self.part_size)
            .field("unsigned_payload", &self.unsigned_payload)
            .finish_non_exhaustive()
    }
}

/// Why an [`S3Config`] cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum S3ConfigError {
    /// No bucket named.
    #[error("no S3 bucket given")]
    NoBucket,
    /// The part size is under the S3 minimum.
    #[error("S3 part size {0} is under the S3 minimum of 5 MiB")]
    PartTooSmall(usize),
    /// The prefix is not a valid object path.
    #[error("S3 prefix {prefix:?} is not a valid key prefix: {source}")]
    Prefix {
        /// The prefix.
        prefix: String,
        /// Why.
        source: object_store::path::Error,
    },
    /// `object_store` refused the configuration (bad endpoint URL, …).
    #[error("S3 configuration: {0}")]
    Store(#[from] object_store::Error),
}

/// Blobs in an S3 bucket; see the [module docs](self). Use it through
/// [`BackendBlobStore`](crate::backend::BackendBlobStore) and
/// [`BackendUploadStore`](crate::backend::BackendUploadStore).
#[derive(Debug)]
pub struct S3Backend {
    store: Arc<AmazonS3>,
    prefix: Option<Path>,
    part_size: usize,
}

impl S3Backend {
    /// A backend for `config` (no request is made: an unreachable endpoint
    /// shows at the first operation; see [`check`](Self::check)). Installs
    /// rustls's *ring* provider as the process default unless one is
    /// installed (the workspace builds reqwest without a provider).
    pub fn new(config: &S3Config) -> Result<Self, S3ConfigError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        if config.bucket.is_empty() {
            return Err(S3ConfigError::NoBucket);
        }
        let part_size = match config.part_size {
            0 => 8 * 1024 * 1024,
            n if n < MIN_PART_SIZE => return Err(S3ConfigError::PartTooSmall(n)),
            n => n,
        };
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(&config.bucket)
            .with_unsigned_payload(config.payload_unsigned());
        if let Some(endpoint) = &config.endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"))
                .with_virtual_hosted_style_request(false);
        }
        if let Some(region) = &config.region {
            builder = builder.with_region(region);
        }
        if let (Some(id), Some(secret)) = (&config.access_key_id, &config.secret_access_key) {
            builder = builder
                .with_access_key_id(id)
                .with_secret_access_key(secret);
        }
        let prefix = config.prefix.trim_matches('/');
        let prefix = if prefix.is_empty() {
            None
        } else {
            Some(Path::parse(prefix).map_err(|source| S3ConfigError::Prefix {
                prefix: config.prefix.clone(),
                source,
            })?)
        };
        Ok(S3Backend {
            store: Arc::new(builder.build()?),
            prefix,
            part_size,
        })
    }

    /// Makes one listing request, so that a wrong endpoint, bucket or
    /// credentials show at start instead of at the first push.
    pub async fn check(&self) -> Result<()> {
        let mut listing = self.store.list(Some(&self.key("blobs")));
        match listing.next().await {
            Some(Err(e)) => Err(store_error(e)),
            _ => Ok(()),
        }
    }

    fn key(&self, rest: &str) -> Path {
        let full = match &self.prefix {
            Some(prefix) => format!("{prefix}/{rest}"),
            None => rest.to_owned(),
        };
        Path::from(full)
    }

    fn blob_key(&self, digest: &Digest) -> Path {
        let hex = digest.hex();
        self.key(&format!(
            "blobs/{}/{}/{hex}",
            digest.algorithm().as_str(),
            &hex[..2]
        ))
    }

    fn session_key(&self, id: &UploadId, name: &str) -> Path {
        self.key(&format!("uploads/{id}/{name}"))
    }

    /// The digest a blob key names, if it is one.
    fn digest_of(&self, key: &Path) -> Option<Digest> {
        let parts: Vec<_> = key.parts().collect();
        let [.., alg, _, hex] = parts.as_slice() else {
            return None;
        };
        let algorithm: Algorithm = alg.as_ref().parse().ok()?;
        format!("{}:{}", algorithm.as_str(), hex.as_ref())
            .parse()
            .ok()
    }
}

/// An `object_store` error as a storage error (not-found is mapped by the
/// callers that expect it).
fn store_error(e: object_store::Error) -> StorageError {
    StorageError::backend(e)
}

fn not_found_or(digest: &Digest) -> impl FnOnce(object_store::Error) -> StorageError + '_ {
    move |e| match e {
        object_store::Error::NotFound { .. } => StorageError::not_found(format!("blob {digest}")),
        e => store_error(e),
    }
}

fn info(digest: Digest, meta: &ObjectMeta) -> BlobInfo {
    BlobInfo {
        digest,
        size: meta.size,
        modified: Some(SystemTime::from(meta.last_modified)),
    }
}

#[async_trait]
impl BlobBackend for S3Backend {
    async fn stat(&self, digest: &Digest) -> Result<Option<BlobInfo>> {
        match self.store.head(&self.blob_key(digest)).await {
            Ok(meta) => Ok(Some(info(digest.clone(), &meta))),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error(e)),
        }
    }

    async fn get(&self, digest: &Digest, range: Option<ByteRange>) -> Result<BlobBody> {
        let key = self.blob_key(digest);
        let (total_size, (start, end), result) = match range {
            None => {
                let result = self.store.get(&key).await.map_err(not_found_or(digest))?;
                let size = result.meta.size;
                (size, (0, size), result)
            }
            Some(range) => {
                let meta = self.store.head(&key).await.map_err(not_found_or(digest))?;
                let (start, end) = range.resolve(meta.size)?;
                let options = GetOptions {
                    range: Some(GetRange::Bounded(start..end)),
                    ..GetOptions::default()
                };
                let result = self
                    .store
                    .get_opts(&key, options)
                    .await
                    .map_err(not_found_or(digest))?;
                (meta.size, (start, end), result)
            }
        };
        Ok(BlobBody {
            total_size,
            range: (start, end),
            stream: result.into_stream().map_err(store_error).boxed(),
        })
    }

    async fn delete(&self, digest: &Digest) -> Result<()> {
        let key = self.blob_key(digest);
        // S3 deletes of missing keys succeed: look first, as the contract
        // asks for NotFound (deletes are rare: prunes and admins).
        self.store.head(&key).await.map_err(not_found_or(digest))?;
        self.store.delete(&key).await.map_err(store_error)
    }

    fn list(&self) -> BoxStream<'_, Result<BlobInfo>> {
        self.store
            .list(Some(&self.key("blobs")))
            .map_err(store_error)
            .try_filter_map(move |meta| {
                let found = self.digest_of(&meta.location).map(|d| info(d, &meta));
                futures::future::ready(Ok(found))
            })
            .boxed()
    }

    async fn stage(&self, target: StageTarget<'_>) -> Result<StagedWrite> {
        let key = match target {
            StageTarget::Blob(digest) => self.blob_key(digest),
            StageTarget::Session(id) => self.session_key(id, "data"),
        };
        Ok(staged::State::new(key).encode(0, bytes::Bytes::new()))
    }

    async fn append(
        &self,
        staged: &StagedWrite,
        body: ByteStream,
        mode: AppendMode,
    ) -> Result<StagedWrite> {
        staged::append(self, staged, body, mode).await
    }

    async fn publish(&self, staged: StagedWrite, digest: &Digest) -> Result<BlobInfo> {
        staged::publish(self, staged, digest).await
    }

    async fn abort(&self, staged: StagedWrite) -> Result<()> {
        staged::abort(self, &staged).await
    }

    async fn release(&self, old: &StagedWrite, new: &StagedWrite) {
        staged::release(self, old, new).await;
    }

    async fn remove_stale_staged(&self, live: &HashSet<UploadId>, age: Duration) -> Result<u64> {
        let cutoff = SystemTime::now() - age;
        let mut removed = 0;
        let mut listing = self.store.list(Some(&self.key("uploads")));
        while let Some(meta) = listing.try_next().await.map_err(store_error)? {
            let session = meta
                .location
                .parts()
                .rev()
                .nth(1)
                .and_then(|id| id.as_ref().parse::<UploadId>().ok());
            let owned = session.is_some_and(|id| live.contains(&id));
            if owned || SystemTime::from(meta.last_modified) > cutoff {
                continue;
            }
            match self.store.delete(&meta.location).await {
                Ok(()) => removed += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(store_error(e)),
            }
        }
        Ok(removed)
    }
}
