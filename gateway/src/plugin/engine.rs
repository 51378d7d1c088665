//! The one wasmtime engine of the process: pooling allocator with
//! copy-on-write memory images, an epoch ticker, and the compile cache
//! (in memory, and on disk keyed by content hash).
//!
//! Costly work happens here, once per distinct plugin file: compile (or
//! load the compiled artifact from disk). Requests only instantiate.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// Epoch tick: a call's deadline is counted in these.
pub const TICK: Duration = Duration::from_millis(1);
/// Instances alive at once across all plugins (each request holds one per
/// plugin for the length of a hook call; shared instances are kept).
const POOL_INSTANCES: u32 = 512;
/// Engine-wide ceiling of one instance's memory; per plugin `max_memory`
/// is enforced below it by the store's limiter.
pub const MAX_MEMORY: usize = 256 << 20;
/// Engine-wide wasm stack: deep recursion traps here, not in the host.
const MAX_WASM_STACK: usize = 512 << 10;

pub struct PluginEngine {
    pub engine: Engine,
    /// Compiled components by content hash; reloads that keep a file reuse it.
    compiled: Mutex<HashMap<String, Component>>,
    cache_dir: Option<PathBuf>,
}

static ENGINE: OnceLock<Result<Arc<PluginEngine>, String>> = OnceLock::new();

/// The process's engine, created (with its ticker thread) on first use.
pub fn get() -> Result<Arc<PluginEngine>, String> {
    ENGINE
        .get_or_init(|| build().map(Arc::new).map_err(|e| format!("cannot start the wasm engine: {e}")))
        .clone()
}

fn build() -> wasmtime::Result<PluginEngine> {
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(POOL_INSTANCES)
        .total_core_instances(POOL_INSTANCES)
        .total_memories(POOL_INSTANCES)
        .total_tables(POOL_INSTANCES)
        .max_memory_size(MAX_MEMORY)
        .table_elements(20_000)
        // Keep a little of each slot's memory mapped between instances:
        // fewer page faults on the next instantiation, bounded RSS.
        .linear_memory_keep_resident(128 << 10)
        .table_keep_resident(128 << 10);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(MAX_WASM_STACK)
        .memory_init_cow(true)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    let engine = Engine::new(&config)?;
    // One ticker per engine, not per request: a call's deadline is a number
    // of ticks, checked by the guest code at loop heads and calls.
    let ticker = engine.weak();
    std::thread::Builder::new().name("wasm-epoch".into()).spawn(move || {
        while let Some(engine) = ticker.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(TICK);
        }
    })?;
    Ok(PluginEngine { engine, compiled: Mutex::new(HashMap::new()), cache_dir: cache_dir() })
}

/// `GATEWAY_PLUGIN_CACHE` or `$XDG_CACHE_HOME` / `~/.cache` +
/// `data-embassy-gateway/plugins`; none: compile every start.
fn cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("GATEWAY_PLUGIN_CACHE") {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("data-embassy-gateway").join("plugins"))
}

/// Hex SHA-256 of a plugin file: its identity in caches and the admin API.
pub fn content_hash(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl PluginEngine {
    /// The compiled component for `bytes` (hash `hash`): from memory, from
    /// the disk cache, or compiled now (and written to the disk cache).
    pub fn component(&self, bytes: &[u8], hash: &str) -> wasmtime::Result<Component> {
        let mut compiled = self.compiled.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = compiled.get(hash) {
            return Ok(c.clone());
        }
        let component = self.cached_or_compiled(bytes, hash)?;
        compiled.insert(hash.to_string(), component.clone());
        Ok(component)
    }

    fn cached_or_compiled(&self, bytes: &[u8], hash: &str) -> wasmtime::Result<Component> {
        let Some(dir) = &self.cache_dir else { return Component::new(&self.engine, bytes) };
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        let file = dir.join(format!("{hash}-{:016x}.cwasm", h.finish()));
        if file.is_file() {
            match load_artifact(&self.engine, &file) {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::warn!(file = %file.display(), error = %e, "compiled plugin cache unusable; compiling")
                }
            }
        }
        let artifact = self.engine.precompile_component(bytes)?;
        match store_artifact(dir, &file, &artifact) {
            Ok(()) => load_artifact(&self.engine, &file),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "cannot write the compiled plugin cache");
                Component::new(&self.engine, bytes)
            }
        }
    }
}

/// Loads a compiled artifact from the cache directory.
#[allow(unsafe_code)]
fn load_artifact(engine: &Engine, file: &Path) -> wasmtime::Result<Component> {
    // SAFETY: wasmtime requires that the file be a trusted artifact made by
    // `precompile_component` of a compatible engine. Only this function's
    // sibling `store_artifact` writes this directory (created 0700 for this
    // user), the name carries the engine's compatibility hash, and wasmtime
    // still checks the header and version before use.
    unsafe { Component::deserialize_file(engine, file) }
}

fn store_artifact(dir: &Path, file: &Path, artifact: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    // Write then rename: a concurrent reader never sees half a file.
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, artifact)?;
    std::fs::rename(&tmp, file)
}
