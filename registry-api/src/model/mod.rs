//! The public request and response documents of the registry's JSON APIs,
//! shared by the server and by clients (`registryctl`, frontends, the
//! typed client of the `client` feature).
//!
//! - [`image`]: the Image API (`/apis/image/v1`, `docs/image-api.md`).
//! - [`admin`]: the admin API (`/apis/admin/v1`, `docs/admin-api.md`).
//! - [`events`]: webhooks and the audit trail (admin API, `docs/events.md`).
//! - [`usage`]: namespace usage (admin API, shown by the Image API too).
//! - [`distribution`]: the JSON listings of the OCI distribution API (tags,
//!   catalog, referrers).
//!
//! Every type is `Serialize` and `Deserialize` with the exact field names
//! the server writes. Response documents are `#[non_exhaustive]`: the
//! server builds them and may add fields, clients read them. Request
//! documents have constructors.

pub mod admin;
pub mod distribution;
pub mod events;
pub mod image;
pub mod usage;
