//! The gateway's host imports, each a capability granted in the gateway
//! config. A capability that was not granted returns
//! `Err(HostError::Denied(..))`; the helpers here that return `()` ignore
//! that, so a plugin degrades quietly when, say, logging is not granted.

use serde::de::DeserializeOwned;

use crate::bindings::embassy::gateway as wit;
use crate::HostError;
pub use wit::log::Level;

/// Capability `log`: one line in the gateway's log, tagged with the plugin.
pub fn log(level: Level, message: &str) {
    let _ = wit::log::write(level, message);
}

pub fn info(message: &str) {
    log(Level::Info, message);
}

pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Capability `metrics`.
pub mod metrics {
    use super::{wit, HostError};

    pub fn count(name: &str, value: u64) -> Result<(), HostError> {
        wit::metrics::counter_add(name, value)
    }

    pub fn observe(name: &str, value: f64) -> Result<(), HostError> {
        wit::metrics::histogram_observe(name, value)
    }
}

/// Capability `kv`: the registry's shared store with TTLs and counters.
pub mod kv {
    pub use super::wit::kv::{delete, get, incr, set};
}

/// Capability `clock`.
pub mod clock {
    pub use super::wit::clock::{monotonic_ns, now_ms};
}

/// Capability `config`: this plugin's `config` table, parsed into `T`.
pub fn config<T: DeserializeOwned>() -> Result<T, String> {
    let text = wit::config::get().map_err(|e| format!("{e:?}"))?;
    serde_json::from_str(&text).map_err(|e| format!("plugin config: {e}"))
}
