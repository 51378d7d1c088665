//! WebAssembly plugins (wasmtime, component model). The contract is
//! `wit/gateway.wit`; guests are built from `plugins/`.
//!
//! - [`engine`]: the process's one engine (pooling allocator, copy-on-write
//!   memory images, epoch ticker) and the compile cache, in memory and on disk.
//! - [`bindings`]: the generated host side of the WIT (one file).
//! - [`host`]: host imports behind capabilities; [`kv`]: the shared store.
//! - [`call`]: one hook call on a fresh (or shared) instance, with limits.
//! - [`metrics`]: calls, failures and durations; plugins' own metrics.
//!
//! Loading ([`LoadedPlugin::load`]) compiles once, links, makes an
//! `InstancePre` and asks the plugin for its manifest; a plugin that fails
//! any of that is refused with the reason. `wasmtime::Error` stays inside
//! this module; its edges speak `String` and [`HookFailure`].

pub mod bindings;
mod call;
pub mod engine;
mod host;
pub mod kv;
pub mod metrics;
pub mod spec;
pub mod watch;

use std::sync::{Arc, Mutex};

use wasmtime::component::{HasSelf, Linker};
use wasmtime::Store;

pub use bindings::wit;
pub use call::HookFailure;
pub use host::MetricOp;
pub use spec::{Capabilities, FailPolicy, InstanceMode, OverCap, PluginSpec};

use bindings::{Plugin, PluginPre};
use host::HostState;

/// A plugin ready to serve: compiled, linked, pre-instantiated.
pub struct LoadedPlugin {
    pub spec: Arc<PluginSpec>,
    /// Hex SHA-256 of the .wasm file.
    pub hash: String,
    pub manifest: wit::Manifest,
    pre: PluginPre<HostState>,
    /// Idle instances of a `shared` plugin, reused across requests.
    idle: Mutex<Vec<(Store<HostState>, Plugin)>>,
}

impl std::fmt::Debug for LoadedPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedPlugin").field("name", &self.spec.name).field("hash", &self.hash).finish()
    }
}

impl LoadedPlugin {
    /// Reads, compiles (or takes from the cache), links and tries the
    /// plugin once. The error says what failed, for the config key path.
    pub fn load(spec: PluginSpec) -> Result<Arc<LoadedPlugin>, String> {
        let bytes =
            std::fs::read(&spec.path).map_err(|e| format!("cannot read \"{}\": {e}", spec.path.display()))?;
        let engine = engine::get()?;
        let hash = engine::content_hash(&bytes);
        let component =
            engine.component(&bytes, &hash).map_err(|e| format!("not a valid plugin component: {e:#}"))?;
        let mut linker = Linker::<HostState>::new(&engine.engine);
        Plugin::add_to_linker::<HostState, HasSelf<HostState>>(&mut linker, |s| s)
            .map_err(|e| format!("cannot link: {e:#}"))?;
        // A std guest imports WASI (wasi:cli, wasi:io, ...) even when unused.
        // We link none of it: any WASI call traps, and plugins reach the
        // world only through the capabilities above.
        linker.define_unknown_imports_as_traps(&component).map_err(|e| format!("cannot link: {e:#}"))?;
        let pre = linker
            .instantiate_pre(&component)
            .and_then(PluginPre::new)
            .map_err(|e| format!("does not match the plugin world embassy:gateway/plugin@0.1.0: {e:#}"))?;
        let spec = Arc::new(spec);
        let manifest = call::describe(&pre, &spec).map_err(|e| format!("cannot instantiate: {e}"))?;
        let plugin = LoadedPlugin { spec, hash, manifest, pre, idle: Mutex::new(Vec::new()) };
        Ok(Arc::new(plugin))
    }

    /// The first 12 hex digits of the content hash, for logs and status.
    pub fn short_hash(&self) -> &str {
        &self.hash[..12.min(self.hash.len())]
    }
}

/// A registry's plugins, in the order they run.
#[derive(Clone, Debug, Default)]
pub struct Chain {
    pub plugins: Vec<Arc<LoadedPlugin>>,
}

impl Chain {
    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// Largest request-body cap among plugins that want the request body.
    pub fn request_body_cap(&self) -> Option<usize> {
        self.plugins.iter().filter(|p| p.manifest.request_body).map(|p| p.spec.max_body).max()
    }

    pub fn response_body_cap(&self) -> Option<usize> {
        self.plugins.iter().filter(|p| p.manifest.response_body).map(|p| p.spec.max_body).max()
    }

    pub fn wants(&self, hook: fn(&wit::Manifest) -> bool) -> bool {
        self.plugins.iter().any(|p| hook(&p.manifest))
    }
}

/// Two chains are the same when every plugin has the same configuration
/// and the same file content: a reload keeps the registry's state then.
impl PartialEq for Chain {
    fn eq(&self, other: &Chain) -> bool {
        self.plugins.len() == other.plugins.len()
            && self.plugins.iter().zip(&other.plugins).all(|(a, b)| a.spec == b.spec && a.hash == b.hash)
    }
}
