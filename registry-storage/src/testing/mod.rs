//! The shared conformance suite: every backend runs these functions in its
//! own tests, and each test asserts that nothing is left behind.

mod blob;
mod events;
mod metadata;
mod shared_sessions;
mod upload;
pub use self::events::*;
pub use self::metadata::*;
pub use self::{blob::*, shared_sessions::*, upload::*};
