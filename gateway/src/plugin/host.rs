//! Host imports: what a plugin may call, each behind its capability. A
//! capability not granted answers `host-error::denied`, which the guest
//! sees as an ordinary error value (never a trap).

use std::sync::Arc;
use std::time::Instant;

use wasmtime::{ResourceLimiter, StoreLimits};

use super::bindings::embassy::gateway::{clock, config, kv, log, metrics};
use super::bindings::wit::{self, HostError};
use super::spec::PluginSpec;

/// A metric update a call asked for; applied by the caller after the call,
/// so the store needs no handle on the gateway's registry.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricOp {
    Count(String, u64),
    Observe(String, f64),
}

/// Each store's data: the plugin's grants, limits, and what its calls left.
pub struct HostState {
    pub spec: Arc<PluginSpec>,
    limits: StoreLimits,
    /// Set when the limiter refused memory: tells a memory blow-up from
    /// another trap.
    pub memory_refused: bool,
    pub ops: Vec<MetricOp>,
    started: Instant,
}

impl HostState {
    pub fn new(spec: Arc<PluginSpec>) -> HostState {
        let limits = wasmtime::StoreLimitsBuilder::new()
            .memory_size(spec.max_memory)
            .table_elements(20_000)
            .instances(8)
            .tables(8)
            .memories(4)
            .build();
        HostState { spec, limits, memory_refused: false, ops: Vec::new(), started: Instant::now() }
    }

    fn grant(&self, granted: bool, what: &str) -> Result<(), HostError> {
        if granted {
            Ok(())
        } else {
            Err(HostError::Denied(format!("capability `{what}` is not granted to plugin {}", self.spec.name)))
        }
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let ok = self.limits.memory_growing(current, desired, max)?;
        self.memory_refused |= !ok;
        Ok(ok)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, max)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }
    fn tables(&self) -> usize {
        self.limits.tables()
    }
    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

impl wit::Host for HostState {}

impl log::Host for HostState {
    fn write(&mut self, level: log::Level, message: String) -> Result<(), HostError> {
        self.grant(self.spec.capabilities.log, "log")?;
        let mut text = message;
        if text.len() > 4096 {
            let mut cut = 4096;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        let (plugin, registry) = (&self.spec.name, &self.spec.registry);
        match level {
            log::Level::Trace => tracing::trace!(target: "plugin", %plugin, %registry, "{text}"),
            log::Level::Debug => tracing::debug!(target: "plugin", %plugin, %registry, "{text}"),
            log::Level::Info => tracing::info!(target: "plugin", %plugin, %registry, "{text}"),
            log::Level::Warn => tracing::warn!(target: "plugin", %plugin, %registry, "{text}"),
            log::Level::Error => tracing::error!(target: "plugin", %plugin, %registry, "{text}"),
        }
        Ok(())
    }
}

fn metric_name(name: &str) -> Result<(), HostError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(HostError::Invalid(format!("metric name \"{name}\": use [a-z0-9_], at most 64 bytes")))
    }
}

impl metrics::Host for HostState {
    fn counter_add(&mut self, name: String, value: u64) -> Result<(), HostError> {
        self.grant(self.spec.capabilities.metrics, "metrics")?;
        metric_name(&name)?;
        self.ops.push(MetricOp::Count(name, value));
        Ok(())
    }

    fn histogram_observe(&mut self, name: String, value: f64) -> Result<(), HostError> {
        self.grant(self.spec.capabilities.metrics, "metrics")?;
        metric_name(&name)?;
        if !value.is_finite() {
            return Err(HostError::Invalid("histogram values must be finite".into()));
        }
        self.ops.push(MetricOp::Observe(name, value));
        Ok(())
    }
}

impl kv::Host for HostState {
    fn get(&mut self, key: String) -> Result<Option<Vec<u8>>, HostError> {
        self.grant(self.spec.capabilities.kv, "kv")?;
        super::kv::store().get(&self.spec.registry, &key)
    }

    fn set(&mut self, key: String, value: Vec<u8>, ttl_ms: u64) -> Result<(), HostError> {
        self.grant(self.spec.capabilities.kv, "kv")?;
        super::kv::store().set(&self.spec.registry, &key, value, ttl_ms)
    }

    fn incr(&mut self, key: String, delta: i64, ttl_ms: u64) -> Result<i64, HostError> {
        self.grant(self.spec.capabilities.kv, "kv")?;
        super::kv::store().incr(&self.spec.registry, &key, delta, ttl_ms)
    }

    fn delete(&mut self, key: String) -> Result<(), HostError> {
        self.grant(self.spec.capabilities.kv, "kv")?;
        super::kv::store().delete(&self.spec.registry, &key)
    }
}

impl clock::Host for HostState {
    fn now_ms(&mut self) -> Result<u64, HostError> {
        self.grant(self.spec.capabilities.clock, "clock")?;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Ok(now.as_millis() as u64)
    }

    fn monotonic_ns(&mut self) -> Result<u64, HostError> {
        self.grant(self.spec.capabilities.clock, "clock")?;
        Ok(self.started.elapsed().as_nanos() as u64)
    }
}

impl config::Host for HostState {
    fn get(&mut self) -> Result<String, HostError> {
        self.grant(self.spec.capabilities.config, "config")?;
        Ok(self.spec.config_json.clone())
    }
}
