//! The Image API (`/apis/image/v1`) in process: ImageStreams, tag history,
//! image metadata (image manifests and indexes), the repository list, and
//! who may see what.

#[path = "../common/mod.rs"]
mod common;
mod image_streams;
mod images;
mod support;
mod visibility;
