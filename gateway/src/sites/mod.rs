//! Sites: where a registry is served from, their backends' health, and the
//! continuity state that decides which site serves.
//!
//! - [`backend`]: one backend's health, ejection and load (atomics).
//! - [`checker`]: active health checks and snapshot as-of refreshes.
//! - [`continuity`]: the normal / failover / override state machine.

pub mod backend;
pub mod checker;
pub mod continuity;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{broadcast, Notify};
use tower::retry::budget::{Budget, TpsBudget};

use crate::config::{Freshness, Registry, SiteKind, SiteSpec, SnapshotSource, WritePolicy};
pub use backend::Transition;
use backend::{now_ms, BackendState};
use continuity::{Continuity, Mode};

/// Live state of one registry's sites.
#[derive(Debug)]
pub struct RegistrySites {
    pub registry: Arc<Registry>,
    /// Shared with the previous configuration's state for sites whose
    /// config did not change, so health and ejections survive a reload.
    pub pools: Vec<Arc<SitePool>>,
    pub continuity: Continuity,
    /// Woken on every health transition; the supervisor re-evaluates.
    changed: Notify,
    retry_budget: TpsBudget,
    health_events: broadcast::Sender<HealthEvent>,
    /// When overflow reads last went to an embassy (burst::spill).
    pub spill: crate::burst::spill::SpillMark,
}

/// A backend's health transition, for subscribers (tests, metrics).
#[derive(Debug, Clone)]
pub struct HealthEvent {
    pub site: Arc<str>,
    pub backend: String,
    pub transition: Transition,
}

/// A site's backends with a round-robin cursor.
#[derive(Debug)]
pub struct SitePool {
    pub spec: SiteSpec,
    /// The site's name as a header value, for `x-served-by` on every answer.
    pub name_value: http::HeaderValue,
    pub backends: Vec<BackendState>,
    next: AtomicUsize,
    /// Last known as-of time of a snapshot site.
    as_of: Mutex<Option<SystemTime>>,
}

/// The site and backend chosen for one attempt.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub index: usize,
    pub site: &'a SiteSpec,
    pub backend: &'a BackendState,
}

/// Why no site can take a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoSite {
    /// Every site is down, drained, or excluded by an override.
    AllDown,
    /// A write, home cannot take it, and the write policy is `reject`.
    WriteRejected,
}

impl RegistrySites {
    pub fn new(registry: Arc<Registry>) -> RegistrySites {
        RegistrySites::carrying(registry, None)
    }

    /// Like [`Self::new`], reusing `previous`'s pools for unchanged sites.
    pub fn carrying(registry: Arc<Registry>, previous: Option<&RegistrySites>) -> RegistrySites {
        let reuse =
            |spec: &SiteSpec| previous.and_then(|p| p.pools.iter().find(|pool| pool.spec == *spec)).cloned();
        let pools: Vec<Arc<SitePool>> = registry
            .sites
            .iter()
            .map(|spec| {
                reuse(spec).unwrap_or_else(|| {
                    Arc::new(SitePool {
                        name_value: http::HeaderValue::from_str(&spec.name)
                            .unwrap_or_else(|_| http::HeaderValue::from_static("site")),
                        backends: spec.backends.iter().map(|a| BackendState::new(a.clone())).collect(),
                        spec: spec.clone(),
                        next: AtomicUsize::new(0),
                        as_of: Mutex::new(initial_as_of(&spec.freshness)),
                    })
                })
            })
            .collect();
        let names = pools.iter().map(|p| p.spec.name.clone()).collect();
        let c = &registry.continuity;
        let continuity = Continuity::new(registry.name.clone(), names, c.failback_hold);
        let retry_budget = TpsBudget::new(
            Duration::from_secs(10),
            c.retry_min_per_second,
            c.retry_budget.clamp(0.0, 1000.0),
        );
        RegistrySites {
            registry,
            pools,
            continuity,
            changed: Notify::new(),
            retry_budget,
            health_events: broadcast::channel(256).0,
            spill: Default::default(),
        }
    }

    /// The continuity state as operators see it: `spill` while home is
    /// saturated and overflow goes to an embassy, else the state machine's.
    pub fn state_label(&self) -> String {
        let mode = self.continuity.decision().mode;
        if mode == Mode::Normal && self.spill.active() {
            return "spill".into();
        }
        self.continuity.label(mode)
    }

    pub fn site_index(&self, name: &str) -> Option<usize> {
        self.pools.iter().position(|p| &*p.spec.name == name)
    }

    fn home_usable(&self) -> bool {
        let now = now_ms();
        self.pools[0].backends.iter().any(|b| b.usable(now))
    }

    /// Sites to try for a request, best first. Health is read live, so a
    /// backend that just failed is skipped even before the state machine
    /// has moved.
    pub fn plan(&self, write: bool) -> Result<Vec<usize>, NoSite> {
        let decision = self.continuity.decision();
        let now = now_ms();
        let mut order: Vec<usize> = match decision.mode {
            Mode::Override { site } => vec![site],
            Mode::Normal => (0..self.pools.len()).collect(),
            // Home last: it serves only if no embassy can, during the hold.
            Mode::Failover => (1..self.pools.len()).chain([0]).collect(),
        };
        order.retain(|&i| !decision.draining[i]);
        let usable: Vec<usize> =
            order.iter().copied().filter(|&i| self.pools[i].backends.iter().any(|b| b.usable(now))).collect();
        // Panic routing: when passive ejection alone has emptied the list,
        // trying ejected backends beats refusing everyone; only backends that
        // failed their active checks are truly off limits.
        let mut order = if usable.is_empty() {
            order.retain(|&i| self.pools[i].backends.iter().any(|b| b.healthy()));
            order
        } else {
            usable
        };
        if write {
            let policy = self.registry.continuity.write_policy;
            order.retain(|&i| self.takes_writes(i, policy));
            if order.is_empty() && policy == WritePolicy::Reject {
                return Err(NoSite::WriteRejected);
            }
        }
        if order.is_empty() {
            return Err(NoSite::AllDown);
        }
        Ok(order)
    }

    fn takes_writes(&self, site: usize, policy: WritePolicy) -> bool {
        let spec = &self.pools[site].spec;
        spec.kind == SiteKind::Home || (policy == WritePolicy::Forward && spec.freshness == Freshness::Live)
    }

    /// A usable backend of `site`, round-robin; under panic routing (see
    /// [`Self::plan`]) an ejected but healthy one.
    pub fn target(&self, site: usize) -> Option<Target<'_>> {
        let pool = &self.pools[site];
        let n = pool.backends.len();
        let start = if n == 1 { 0 } else { pool.next.fetch_add(1, Ordering::Relaxed) };
        let now = now_ms();
        let ring = (0..n).map(|k| &pool.backends[(start + k) % n]);
        let backend = ring.clone().find(|b| b.usable(now)).or_else(|| ring.clone().find(|b| b.healthy()));
        backend.map(|backend| Target { index: site, site: &pool.spec, backend })
    }

    /// Every original request earns retry budget; each retry spends it.
    pub fn deposit_retry_budget(&self) {
        self.retry_budget.deposit();
    }

    pub fn withdraw_retry_budget(&self) -> bool {
        self.retry_budget.withdraw()
    }

    /// Records a health transition: logged, and continuity re-evaluated.
    pub fn transition(&self, site: usize, backend: &BackendState, t: Transition) {
        let (registry, site_name) = (&self.registry.name, &self.pools[site].spec.name);
        match &t {
            Transition::BecameHealthy => {
                tracing::info!(%registry, site = %site_name, backend = %backend.addr, "backend healthy")
            }
            Transition::BecameUnhealthy { reason } => {
                tracing::warn!(%registry, site = %site_name, backend = %backend.addr, %reason, "backend unhealthy")
            }
            Transition::Ejected { for_, reason } => {
                tracing::warn!(%registry, site = %site_name, backend = %backend.addr, ?for_, %reason, "backend ejected")
            }
        }
        let _ = self.health_events.send(HealthEvent {
            site: site_name.clone(),
            backend: backend.addr.to_string(),
            transition: t.clone(),
        });
        if site == 0 {
            // Evaluate right here so failover is logged without waiting for
            // the supervisor task to be scheduled.
            self.continuity.evaluate(self.home_usable(), &format!("{}: {t:?}", backend.addr));
        }
        self.changed.notify_one();
    }

    /// Keeps the continuity state current: re-evaluates on every health
    /// transition and when a failback hold ends. Runs until dropped.
    pub async fn supervise(self: Arc<Self>) {
        loop {
            let wake = self.continuity.evaluate(self.home_usable(), "health changed");
            // An ejection ends silently (no check runs at that moment), so
            // also look again when the earliest home ejection expires.
            let now = now_ms();
            let ejection_end = self.pools[0]
                .backends
                .iter()
                .filter_map(|b| b.ejected_for(now))
                .min()
                .map(|d| tokio::time::Instant::now() + d + Duration::from_millis(1));
            let next = [wake, ejection_end].into_iter().flatten().min();
            match next {
                Some(at) => {
                    tokio::select! {
                        () = self.changed.notified() => {}
                        () = tokio::time::sleep_until(at) => {}
                    }
                }
                None => self.changed.notified().await,
            }
        }
    }

    pub fn subscribe_health(&self) -> broadcast::Receiver<HealthEvent> {
        self.health_events.subscribe()
    }

    pub fn as_of(&self, site: usize) -> Option<SystemTime> {
        *self.pools[site].as_of.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_as_of(&self, site: usize, t: SystemTime) {
        *self.pools[site].as_of.lock().unwrap_or_else(|p| p.into_inner()) = Some(t);
    }
}

/// Known at startup: a fixed time, or the file's content (so the first
/// response already carries it); an endpoint is asked by the checker.
fn initial_as_of(freshness: &Freshness) -> Option<SystemTime> {
    match freshness {
        Freshness::Snapshot(SnapshotSource::Fixed(t)) => Some(*t),
        Freshness::Snapshot(SnapshotSource::File(path)) => {
            std::fs::read_to_string(path).ok().and_then(|text| checker::parse_as_of(&text).ok())
        }
        _ => None,
    }
}
