//! Core types of the registry: digests, repository names, tags and
//! references, media types, manifest parsing, the image config subset, and
//! the OCI error codes.
//!
//! Everything here is pure: no IO, no async. Strings from the outside are
//! parsed once into validated types; after that nothing passes a digest or a
//! name around as `&str`.
//!
//! ```
//! use registry_core::{Digest, Manifest, Reference, RepositoryName};
//!
//! let name: RepositoryName = "team/app".parse().unwrap();
//! assert_eq!((name.namespace(), name.stream()), ("team", "app"));
//!
//! let config = Digest::sha256_of(b"{}");
//! let doc = format!(
//!     r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
//!         "config":{{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"{config}","size":2}},
//!         "layers":[]}}"#
//! );
//! let manifest = Manifest::parse(None, doc.as_bytes()).unwrap();
//! assert_eq!(manifest.blob_references().next().unwrap().digest, config);
//!
//! let by_digest: Reference = config.to_string().parse().unwrap();
//! assert!(by_digest.as_digest().is_some());
//! ```

pub mod config;
pub mod digest;
pub mod error_code;
pub mod event;
pub mod manifest;
pub mod media_type;
pub mod name;

pub use config::{ImageConfig, ImageConfigError};
pub use digest::{Algorithm, Digest, DigestError, Digester, InvalidHashState};
pub use error_code::{ErrorCode, ErrorEnvelope, ErrorInfo};
pub use event::{EventType, NewEvent, UnknownEventType};
pub use manifest::{Descriptor, Manifest, ManifestError, ManifestKind, Platform};
pub use name::{NameError, Namespace, Reference, ReferenceError, RepositoryName, Tag, TagError};
