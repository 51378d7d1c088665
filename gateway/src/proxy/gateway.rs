//! The gateway as the server, the admin API and tests hold it: the current
//! configuration generation behind an atomic swap, and what outlives
//! generations (metrics).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;

use super::body::ResponseBody;
use super::context::ConnInfo;
use super::generation::{Generation, ReloadReport};
use crate::admin::metrics::Metrics;
use crate::config::{self, Config, ConfigErrors};
use crate::sites::continuity::ContinuityEvent;
use crate::sites::RegistrySites;

pub struct Gateway {
    current: ArcSwap<Generation>,
    metrics: Metrics,
    next_generation: AtomicU64,
    /// One reload at a time; requests never take this.
    reloading: Mutex<()>,
    running: AtomicBool,
    /// The file the configuration came from, for reloads by signal or API.
    source: Mutex<Option<PathBuf>>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("generation", &self.current.load().number).finish_non_exhaustive()
    }
}

/// Why a reload was refused; the old configuration keeps serving.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("the new configuration is invalid:\n{0}")]
    Invalid(ConfigErrors),
    #[error("{0} cannot change without a restart")]
    NeedsRestart(&'static str),
    #[error("this gateway was not started from a file (the demo embeds its configuration)")]
    NoSource,
}

impl Gateway {
    pub fn new(config: Config) -> Arc<Gateway> {
        let (generation, _) = Generation::build(config, None, 1);
        let metrics = Metrics::new();
        metrics.config_generation.set(1);
        Arc::new(Gateway {
            current: ArcSwap::from_pointee(generation),
            metrics,
            next_generation: AtomicU64::new(2),
            reloading: Mutex::new(()),
            running: AtomicBool::new(false),
            source: Mutex::new(None),
        })
    }

    /// The generation serving now; hold it for the length of a request.
    pub fn current(&self) -> Arc<Generation> {
        self.current.load_full()
    }

    pub fn config(&self) -> Arc<Config> {
        self.current.load().config.clone()
    }

    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The live site state of a registry, for the admin API and tests.
    pub fn sites(&self, registry: &str) -> Option<Arc<RegistrySites>> {
        self.current.load().registry(registry).map(|r| r.sites.clone())
    }

    pub fn all_sites(&self) -> Vec<Arc<RegistrySites>> {
        self.current.load().registries().iter().map(|r| r.sites.clone()).collect()
    }

    /// Every continuity change of `registry`, as it happens.
    pub fn subscribe(&self, registry: &str) -> Option<tokio::sync::broadcast::Receiver<ContinuityEvent>> {
        self.sites(registry).map(|s| s.continuity.subscribe())
    }

    /// Health checks and supervisors of the current generation (idempotent);
    /// the server calls this when it starts serving.
    pub fn start_background(&self) {
        self.running.store(true, Ordering::SeqCst);
        self.current.load().registries().iter().for_each(|r| r.start());
    }

    /// True between the server starting and shutdown beginning.
    pub fn is_serving(&self) -> bool {
        self.running.load(Ordering::SeqCst)
    }

    pub fn stop_background(&self) {
        self.running.store(false, Ordering::SeqCst);
        self.current.load().registries().iter().for_each(|r| r.stop());
    }

    /// Swaps in `config` if it can be, carrying over the state of what did
    /// not change. On any error the old configuration keeps serving.
    pub fn reload(&self, config: Config) -> Result<ReloadReport, ReloadError> {
        let _one_at_a_time = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let old = self.current.load_full();
        if config.server.listen != old.config.server.listen {
            return Err(self.refused(ReloadError::NeedsRestart("server.listen")));
        }
        if config.admin.as_ref().map(|a| a.listen) != old.config.admin.as_ref().map(|a| a.listen) {
            return Err(self.refused(ReloadError::NeedsRestart("admin.listen")));
        }
        let number = self.next_generation.fetch_add(1, Ordering::SeqCst);
        let (generation, report) = Generation::build(config, Some(&old), number);
        if self.running.load(Ordering::SeqCst) {
            generation.registries().iter().for_each(|r| r.start());
        }
        self.current.store(Arc::new(generation));
        // Registries that were rebuilt or removed stop checking; kept ones
        // are shared with the new generation and keep running.
        for r in old.registries() {
            if !report.kept.iter().any(|k| **k == *r.sites.registry.name) {
                r.stop();
            }
        }
        self.metrics.config_generation.set(number as i64);
        self.metrics.config_reloads.with_label_values(&["ok"]).inc();
        tracing::warn!(generation = number, kept = ?report.kept, rebuilt = ?report.rebuilt, removed = ?report.removed, "configuration reloaded");
        Ok(report)
    }

    /// Reads, compiles and swaps in the file at `path`.
    pub fn reload_file(&self, path: &Path) -> Result<ReloadReport, ReloadError> {
        let config = config::load(path).map_err(|e| self.refused(ReloadError::Invalid(e)))?;
        self.reload(config)
    }

    /// Remembers the file the configuration came from.
    pub fn set_source(&self, path: PathBuf) {
        *self.source.lock().unwrap_or_else(|p| p.into_inner()) = Some(path);
    }

    /// Reloads from the file the configuration came from (SIGHUP, admin).
    pub fn reload_source(&self) -> Result<ReloadReport, ReloadError> {
        let path = self.source.lock().unwrap_or_else(|p| p.into_inner()).clone();
        match path {
            Some(path) => self.reload_file(&path),
            None => Err(self.refused(ReloadError::NoSource)),
        }
    }

    fn refused(&self, err: ReloadError) -> ReloadError {
        self.metrics.config_reloads.with_label_values(&["refused"]).inc();
        tracing::error!(error = %err, "configuration reload refused; the running configuration keeps serving");
        err
    }

    /// Runs one request through every phase on the current generation;
    /// never fails: errors become responses.
    pub async fn handle(&self, conn: &ConnInfo, req: Request<Incoming>) -> Response<ResponseBody> {
        let generation = self.current.load_full();
        generation.handle(conn, req, &self.metrics).await
    }
}
