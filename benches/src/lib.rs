//! Benchmark tooling for the Data Embassy Gateway.
//!
//! A library so the load generator's logic (duration parsing, the load loop,
//! percentile maths) is unit-tested; the binaries are thin command-line
//! wrappers. It never depends on the gateway crate, so the baselines can be
//! measured while the gateway itself does not build.

pub mod backend;
pub mod compare;
pub mod conn;
pub mod duration;
pub mod events;
pub mod failover;
pub mod load;
pub mod output;
pub mod progress;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod scenario_cli;
pub mod schedule;
pub mod stats;
pub mod svg;
pub mod target;
pub mod timeline;
