//! Benchmark tooling for the Data Embassy Gateway.
//!
//! A library so the load generator's logic (duration parsing, the load loop,
//! percentile maths) is unit-tested; the binaries are thin command-line
//! wrappers. It never depends on the gateway crate, so the baselines can be
//! measured while the gateway itself does not build.

pub mod backend;
pub mod conn;
pub mod duration;
pub mod load;
pub mod report;
pub mod stats;
pub mod target;
