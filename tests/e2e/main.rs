//! End-to-end tests: real sockets on 127.0.0.1:0, real backends, the real
//! gateway (in process, and as a process where the binary itself matters).

mod fixtures;

mod burst;
mod cache;
mod cli;
mod config_errors;
mod continuity;
mod errors;
mod hardening;
mod headers;
mod http2;
mod operators;
mod ops;
mod plugins_misbehave;
mod plugins_reload;
mod plugins_routing;
mod plugins_tax;
mod plugins_translate;
mod routing;
mod shutdown;
mod streaming;
mod tls;
mod upstream_tls;
