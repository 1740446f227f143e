//! Where blobs live: the data directory (default) or an S3-compatible
//! bucket. Flags over the config file; S3 credentials come from the usual
//! AWS chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, web identity,
//! instance metadata), never from a flag.

use registry::storage::s3::S3Config;

use crate::config::FileConfig;

/// The blob storage flags; each also reads an environment variable.
#[derive(Debug, Default, clap::Args)]
pub struct StorageFlags {
    /// Where blobs live: `filesystem` (under --data-dir) or `s3` (a bucket;
    /// needs --s3-bucket) [default: filesystem].
    #[arg(long, env = "REGISTRY_STORAGE", value_name = "KIND")]
    pub storage: Option<StorageKind>,
    /// S3 endpoint of a non-AWS server (`http://127.0.0.1:3900` for
    /// Garage), addressed path-style [default: AWS S3].
    #[arg(long, env = "REGISTRY_S3_ENDPOINT", value_name = "URL")]
    pub s3_endpoint: Option<String>,
    /// The S3 bucket.
    #[arg(long, env = "REGISTRY_S3_BUCKET", value_name = "NAME")]
    pub s3_bucket: Option<String>,
    /// The S3 region [default: AWS_REGION, else us-east-1].
    #[arg(long, env = "REGISTRY_S3_REGION", value_name = "REGION")]
    pub s3_region: Option<String>,
    /// Key prefix inside the bucket, so that registries can share one
    /// [default: none].
    #[arg(long, env = "REGISTRY_S3_PREFIX", value_name = "PREFIX")]
    pub s3_prefix: Option<String>,
    /// Leave request bodies out of the S3 signature (`UNSIGNED-PAYLOAD`):
    /// one SHA-256 pass less per byte on each side [default: true for an
    /// https:// endpoint and AWS, false for http://].
    #[arg(long, env = "REGISTRY_S3_UNSIGNED_PAYLOAD", value_name = "BOOL")]
    pub s3_unsigned_payload: Option<bool>,
}

/// The kinds of blob storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageKind {
    /// Under the data directory.
    Filesystem,
    /// In an S3-compatible bucket.
    S3,
}

/// The blob storage in force.
#[derive(Debug, Clone)]
pub enum StorageSetting {
    /// Blobs and upload sessions under the data directory.
    Filesystem,
    /// Blobs in a bucket; upload sessions in the metadata database.
    S3(S3Config),
}

impl StorageSetting {
    /// Flags over the config file over the default (filesystem).
    pub fn load(flags: StorageFlags, file: &FileConfig) -> Result<Self, String> {
        let endpoint = flags.s3_endpoint.or_else(|| file.s3_endpoint.clone());
        let bucket = flags.s3_bucket.or_else(|| file.s3_bucket.clone());
        let region = flags.s3_region.or_else(|| file.s3_region.clone());
        let prefix = flags.s3_prefix.or_else(|| file.s3_prefix.clone());
        let unsigned_payload = flags.s3_unsigned_payload.or(file.s3_unsigned_payload);
        match flags
            .storage
            .or(file.storage)
            .unwrap_or(StorageKind::Filesystem)
        {
            StorageKind::Filesystem => {
                if bucket.is_some() || endpoint.is_some() || unsigned_payload.is_some() {
                    return Err("--s3-bucket, --s3-endpoint and --s3-unsigned-payload \
                                need --storage s3 (REGISTRY_STORAGE=s3, storage = \"s3\")"
                        .into());
                }
                Ok(StorageSetting::Filesystem)
            }
            StorageKind::S3 => {
                let bucket = bucket.filter(|b| !b.trim().is_empty()).ok_or(
                    "--storage s3 needs a bucket: --s3-bucket (REGISTRY_S3_BUCKET, s3_bucket)",
                )?;
                if let Some(endpoint) = &endpoint {
                    let url = url::Url::parse(endpoint)
                        .map_err(|e| format!("--s3-endpoint {endpoint:?} is not a URL: {e}"))?;
                    if !matches!(url.scheme(), "http" | "https") {
                        return Err(format!(
                            "--s3-endpoint {endpoint:?} must be an http:// or https:// URL"
                        ));
                    }
                }
                Ok(StorageSetting::S3(S3Config {
                    bucket,
                    endpoint,
                    region,
                    prefix: prefix.unwrap_or_default(),
                    unsigned_payload,
                    ..S3Config::default()
                }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(flags: StorageFlags) -> Result<StorageSetting, String> {
        StorageSetting::load(flags, &FileConfig::default())
    }

    #[test]
    fn filesystem_by_default_and_s3_needs_a_bucket() {
        assert!(matches!(
            load(StorageFlags::default()),
            Ok(StorageSetting::Filesystem)
        ));
        let no_bucket = load(StorageFlags {
            storage: Some(StorageKind::S3),
            ..StorageFlags::default()
        });
        assert!(no_bucket.unwrap_err().contains("--s3-bucket"));
        let stray = load(StorageFlags {
            s3_bucket: Some("b".into()),
            ..StorageFlags::default()
        });
        assert!(stray.unwrap_err().contains("--storage s3"));
    }

    #[test]
    fn s3_settings_from_flags_and_file() {
        let file: FileConfig = toml::from_str(
            "storage = \"s3\"\ns3_bucket = \"images\"\ns3_prefix = \"prod\"\n\
             s3_endpoint = \"http://127.0.0.1:3900\"\ns3_region = \"garage\"\n",
        )
        .unwrap();
        let flags = StorageFlags {
            s3_prefix: Some("staging".into()),
            ..StorageFlags::default()
        };
        let Ok(StorageSetting::S3(config)) = StorageSetting::load(flags, &file) else {
            panic!("not s3");
        };
        assert_eq!(config.bucket, "images");
        assert_eq!(config.prefix, "staging");
        assert_eq!(config.region.as_deref(), Some("garage"));
        // Signed over plain HTTP unless asked; unsigned over HTTPS.
        assert!(!config.payload_unsigned());
        let https = S3Config {
            endpoint: Some("https://s3.example.test".into()),
            ..config.clone()
        };
        assert!(https.payload_unsigned());
        assert!(S3Config::default().payload_unsigned(), "AWS itself");
        let flags = StorageFlags {
            s3_unsigned_payload: Some(true),
            ..StorageFlags::default()
        };
        let Ok(StorageSetting::S3(config)) = StorageSetting::load(flags, &file) else {
            panic!("not s3");
        };
        assert!(config.payload_unsigned());
        let file: FileConfig = toml::from_str(
            "storage = \"s3\"\ns3_bucket = \"b\"\ns3_unsigned_payload = false\n\
             s3_endpoint = \"https://s3.example.test\"\n",
        )
        .unwrap();
        let Ok(StorageSetting::S3(config)) = StorageSetting::load(StorageFlags::default(), &file)
        else {
            panic!("not s3");
        };
        assert!(!config.payload_unsigned());
        let bad = load(StorageFlags {
            storage: Some(StorageKind::S3),
            s3_bucket: Some("b".into()),
            s3_endpoint: Some("ftp://x".into()),
            ..StorageFlags::default()
        });
        assert!(bad.unwrap_err().contains("http://"));
    }
}
