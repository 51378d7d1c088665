//! Data Embassy Gateway: one address for a state's registries, served from
//! home or from a data embassy abroad. See `DESIGN.md` and the README.
// Denied, not forbidden: the one exception is loading our own compiled
// plugin artifacts from the disk cache (plugin/engine.rs, with its SAFETY note).
#![deny(unsafe_code)]

pub mod admin;
pub mod burst;
pub mod cache;
pub mod config;
pub mod demo;
pub mod plugin;
pub mod proxy;
pub mod server;
pub mod sites;
pub mod tls;

pub use proxy::Gateway;
pub use server::{serve, serve_with_tls};
