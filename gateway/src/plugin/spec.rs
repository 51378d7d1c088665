//! A plugin's compiled configuration: what `config/plugins.rs` produces
//! from `[[registries.NAME.plugins]]` and the host loads.

use std::path::PathBuf;
use std::time::Duration;

/// What the gateway does when a plugin fails (trap, timeout, memory, bad output).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPolicy {
    /// Skip the plugin: the request goes on as if it were not there.
    Open,
    /// Fail the request with a 5xx naming the plugin.
    Closed,
}

/// How a plugin's instances are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceMode {
    /// A fresh instance for every request: nothing one citizen sent can
    /// survive into another request. The default.
    PerRequest,
    /// Instances are reused across requests (faster); only for plugins
    /// declared stateless that handle public data.
    Shared,
}

/// A body larger than the plugin's cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverCap {
    /// Skip the plugin for this request; the body streams on untouched.
    Skip,
    /// Refuse: 413 for a request body, a 5xx for a response body.
    Reject,
}

/// The host capabilities a plugin may call (each a WIT interface).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    pub log: bool,
    pub metrics: bool,
    pub kv: bool,
    pub clock: bool,
    pub config: bool,
}

impl Capabilities {
    pub const NAMES: [&'static str; 5] = ["log", "metrics", "kv", "clock", "config"];

    /// Grants `name`; false when there is no such capability.
    pub fn grant(&mut self, name: &str) -> bool {
        let slot = match name {
            "log" => &mut self.log,
            "metrics" => &mut self.metrics,
            "kv" => &mut self.kv,
            "clock" => &mut self.clock,
            "config" => &mut self.config,
            _ => return false,
        };
        *slot = true;
        true
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PluginSpec {
    /// Unique within the registry; names metrics and log lines.
    pub name: String,
    /// The registry whose chain this plugin is in (the kv namespace).
    pub registry: String,
    pub path: PathBuf,
    /// The `config` table as JSON text.
    pub config_json: String,
    pub capabilities: Capabilities,
    pub fail: FailPolicy,
    pub instance: InstanceMode,
    /// Wall-clock budget of one hook call (epoch deadline).
    pub timeout: Duration,
    /// Largest linear memory one instance may grow to.
    pub max_memory: usize,
    /// Largest body buffered for the plugin, and largest body it may return.
    pub max_body: usize,
    pub over_cap: OverCap,
}
