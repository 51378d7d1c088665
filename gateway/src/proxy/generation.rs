//! One configuration generation: everything the request path reads, built
//! once from a compiled config. A reload builds the next generation beside
//! the current one and swaps it in whole; requests in flight keep the one
//! they started with.

use std::sync::{Arc, Mutex};

use tokio::task::JoinSet;

use super::forward::Upstream;
use super::headers::ViaValues;
use super::route::Router;
use crate::admin::metrics::RegistryMetrics;
use crate::config::Config;
use crate::sites::{checker, RegistrySites};

#[derive(Debug)]
pub struct Generation {
    pub number: u64,
    pub config: Arc<Config>,
    pub(super) router: Router,
    /// Aligned with `config.registries`.
    pub(super) registries: Vec<Arc<RegistryState>>,
    pub(super) via: ViaValues,
}

/// A registry's live state: its sites (health, continuity), its upstream
/// connection pool, and the tasks that keep the health current.
#[derive(Debug)]
pub struct RegistryState {
    pub sites: Arc<RegistrySites>,
    pub(super) metrics: RegistryMetrics,
    pub(super) upstream: Upstream,
    /// Rate limits, classes, slots and spill-over (`[burst]`), if configured.
    pub(super) admission: Option<crate::burst::Admission>,
    pub(super) cache: Option<Arc<crate::cache::Cache>>,
    tasks: Mutex<Option<JoinSet<()>>>,
}

impl RegistryState {
    /// Starts health checks and the continuity supervisor, once.
    pub fn start(&self) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if tasks.is_none() {
            let mut set = JoinSet::new();
            checker::spawn(&self.sites, &mut set);
            set.spawn(self.sites.clone().supervise());
            *tasks = Some(set);
        }
    }

    /// The burst admission state, for the admin API and tests.
    pub fn admission(&self) -> Option<&crate::burst::Admission> {
        self.admission.as_ref()
    }

    pub fn stop(&self) {
        self.tasks.lock().unwrap_or_else(|p| p.into_inner()).take();
    }
}

/// Which registries a reload kept and which it rebuilt.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReloadReport {
    pub generation: u64,
    /// Unchanged: health, continuity state and connections carried over.
    pub kept: Vec<String>,
    /// New or changed: rebuilt (unchanged sites inside keep their health).
    pub rebuilt: Vec<String>,
    pub removed: Vec<String>,
}

impl Generation {
    /// Builds generation `number` from `config`, carrying over from
    /// `previous` what did not change.
    pub fn build(config: Config, previous: Option<&Generation>, number: u64) -> (Generation, ReloadReport) {
        let mut report = ReloadReport { generation: number, ..ReloadReport::default() };
        let find_old =
            |name: &str| previous.and_then(|p| p.registries.iter().find(|r| &*r.sites.registry.name == name));
        let registries = config
            .registries
            .iter()
            .map(|r| match find_old(&r.name) {
                Some(old) if *old.sites.registry == **r => {
                    report.kept.push(r.name.to_string());
                    old.clone()
                }
                old => {
                    report.rebuilt.push(r.name.to_string());
                    // Connections carry over while what they were made
                    // with (timeouts, each site's TLS) is the same.
                    let same_links = |o: &RegistryState| {
                        let (a, b) = (&o.sites.registry, r);
                        a.limits == b.limits
                            && a.sites.len() == b.sites.len()
                            && a.sites.iter().zip(&b.sites).all(|(x, y)| x.name == y.name && x.tls == y.tls)
                    };
                    let upstream = match old {
                        Some(o) if same_links(o) => o.upstream.clone(),
                        _ => Upstream::new(r),
                    };
                    let sites = RegistrySites::carrying(r.clone(), old.map(|o| &*o.sites));
                    let names = sites.pools.iter().map(|p| p.spec.name.clone()).collect();
                    let metrics = RegistryMetrics::new(r.name.clone(), names);
                    Arc::new(RegistryState {
                        sites: Arc::new(sites),
                        metrics,
                        upstream,
                        admission: crate::burst::Admission::new(r),
                        cache: r.cache.as_ref().map(|c| Arc::new(crate::cache::Cache::new(c))),
                        tasks: Mutex::new(None),
                    })
                }
            })
            .collect();
        if let Some(p) = previous {
            for r in &p.config.registries {
                if !config.registries.iter().any(|n| n.name == r.name) {
                    report.removed.push(r.name.to_string());
                }
            }
        }
        let generation = Generation {
            number,
            router: Router::new(&config),
            via: ViaValues::new(&config.server.name),
            registries,
            config: Arc::new(config),
        };
        (generation, report)
    }

    pub fn registry(&self, name: &str) -> Option<&Arc<RegistryState>> {
        self.registries.iter().find(|r| &*r.sites.registry.name == name)
    }

    pub fn registries(&self) -> &[Arc<RegistryState>] {
        &self.registries
    }
}
