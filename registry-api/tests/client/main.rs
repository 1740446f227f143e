//! The typed client (`registry_api::client`) against the registry served
//! in process on a loopback port, with access control off and on, and
//! against small stand-ins that answer wrong bytes or other challenges.
#![cfg(feature = "client")]

mod access_control;
mod admin_api;
#[path = "../common/mod.rs"]
mod common;
mod defences;
mod round_trip;
mod support;
