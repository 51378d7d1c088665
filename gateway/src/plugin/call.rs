//! One hook call: an instance (fresh per request, or an idle shared one),
//! the epoch deadline and memory limits, and what a failure was.

use std::sync::Arc;

use wasmtime::{Store, Trap};

use super::bindings::{wit, Plugin, PluginPre};
use super::engine::{self, TICK};
use super::host::{HostState, MetricOp};
use super::spec::{InstanceMode, PluginSpec};
use super::LoadedPlugin;

/// Idle instances a `shared` plugin keeps at most.
const MAX_IDLE: usize = 16;

/// Why a hook call failed; the request then follows the fail policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookFailure {
    #[error("ran past its {0} ms deadline")]
    Timeout(u64),
    #[error("went over its memory limit of {0} bytes")]
    Memory(usize),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("returned an invalid result: {0}")]
    Output(String),
    #[error("no instance available: {0}")]
    Unavailable(String),
}

impl HookFailure {
    /// The metric label of the outcome.
    pub fn label(&self) -> &'static str {
        match self {
            HookFailure::Timeout(_) => "timeout",
            HookFailure::Memory(_) => "memory",
            HookFailure::Trap(_) => "trap",
            HookFailure::Output(_) => "bad_output",
            HookFailure::Unavailable(_) => "unavailable",
        }
    }
}

fn new_store(spec: &Arc<PluginSpec>) -> Store<HostState> {
    let engine = engine::get().map(|e| e.engine.clone()).unwrap_or_default();
    let mut store = Store::new(&engine, HostState::new(spec.clone()));
    store.limiter(|s| s);
    store
}

fn deadline_ticks(spec: &PluginSpec) -> u64 {
    (spec.timeout.as_nanos() / TICK.as_nanos()).max(1) as u64 + 1
}

/// Instantiates once and asks for the manifest (at load).
pub fn describe(pre: &PluginPre<HostState>, spec: &Arc<PluginSpec>) -> Result<wit::Manifest, HookFailure> {
    let mut store = new_store(spec);
    store.set_epoch_deadline(deadline_ticks(spec));
    let plugin = pre.instantiate(&mut store).map_err(|e| classify(&e, &store, spec))?;
    plugin.embassy_gateway_hooks().call_describe(&mut store).map_err(|e| classify(&e, &store, spec))
}

fn classify(err: &wasmtime::Error, store: &Store<HostState>, spec: &PluginSpec) -> HookFailure {
    if store.data().memory_refused {
        return HookFailure::Memory(spec.max_memory);
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => HookFailure::Timeout(spec.timeout.as_millis() as u64),
        Some(trap) => HookFailure::Trap(format!("{trap}")),
        None => HookFailure::Trap(format!("{err:#}")),
    }
}

impl LoadedPlugin {
    /// Runs `f` on an instance under the plugin's limits. Returns the
    /// result and the metric updates the call asked for.
    pub fn run<R>(
        &self,
        f: impl FnOnce(&Plugin, &mut Store<HostState>) -> wasmtime::Result<R>,
    ) -> (Result<R, HookFailure>, Vec<MetricOp>) {
        let shared = self.spec.instance == InstanceMode::Shared;
        let reused = if shared { self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop() } else { None };
        let (mut store, plugin) = match reused {
            Some(pair) => pair,
            None => {
                let mut store = new_store(&self.spec);
                store.set_epoch_deadline(deadline_ticks(&self.spec));
                match self.pre.instantiate(&mut store) {
                    Ok(plugin) => (store, plugin),
                    Err(e) => {
                        let failure = match classify(&e, &store, &self.spec) {
                            HookFailure::Trap(text) if text.contains("pool") => {
                                HookFailure::Unavailable(text)
                            }
                            other => other,
                        };
                        return (Err(failure), Vec::new());
                    }
                }
            }
        };
        store.set_epoch_deadline(deadline_ticks(&self.spec));
        let result = f(&plugin, &mut store).map_err(|e| classify(&e, &store, &self.spec));
        let ops = std::mem::take(&mut store.data_mut().ops);
        // A shared instance goes back only after a clean call: a trapped
        // instance is poisoned and must never run again.
        if shared && result.is_ok() {
            // Bounded: idle instances hold slots of the engine's pool, which
            // per-request plugins need too.
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push((store, plugin));
            }
        }
        (result, ops)
    }

    pub fn on_request(&self, req: &wit::Request) -> (Result<wit::RequestAction, HookFailure>, Vec<MetricOp>) {
        let (result, ops) = self.run(|p, s| p.embassy_gateway_hooks().call_on_request(s, req));
        (result.and_then(|a| self.check_request_action(a)), ops)
    }

    pub fn choose_site(
        &self,
        req: &wit::Request,
        sites: &[wit::SiteInfo],
    ) -> (Result<Option<String>, HookFailure>, Vec<MetricOp>) {
        self.run(|p, s| p.embassy_gateway_hooks().call_choose_site(s, req, sites))
    }

    pub fn on_response(
        &self,
        req: &wit::Request,
        served: &wit::ServedBy,
        resp: &wit::UpstreamResponse,
    ) -> (Result<Option<wit::ResponseChanges>, HookFailure>, Vec<MetricOp>) {
        let (result, ops) = self.run(|p, s| p.embassy_gateway_hooks().call_on_response(s, req, served, resp));
        let checked = result.and_then(|c| match &c {
            Some(ch) => self.check_output(&ch.set_headers, ch.body.as_deref()).map(|()| c),
            None => Ok(c),
        });
        (checked, ops)
    }

    fn check_request_action(&self, action: wit::RequestAction) -> Result<wit::RequestAction, HookFailure> {
        match &action {
            wit::RequestAction::Continue(c) | wit::RequestAction::HintSite((_, c)) => {
                self.check_output(&c.set_headers, c.body.as_deref())?
            }
            wit::RequestAction::Respond(r) => {
                if !(100..=599).contains(&r.status) {
                    return Err(HookFailure::Output(format!("status {} is not an HTTP status", r.status)));
                }
                self.check_output(&r.headers, Some(&r.body))?
            }
        }
        Ok(action)
    }

    /// What a plugin hands back is bounded like what it is given.
    fn check_output(&self, headers: &[(String, String)], body: Option<&[u8]>) -> Result<(), HookFailure> {
        if headers.len() > 100 {
            return Err(HookFailure::Output(format!("{} header fields (at most 100)", headers.len())));
        }
        match body {
            Some(b) if b.len() > self.spec.max_body => Err(HookFailure::Output(format!(
                "a body of {} bytes (max_body is {})",
                b.len(),
                self.spec.max_body
            ))),
            _ => Ok(()),
        }
    }
}
