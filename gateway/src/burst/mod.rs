//! Admission under burst load: rate limits, priority classes, a per-site
//! concurrency limit with a bounded priority queue (fixed or adaptive), and
//! spill-over to an embassy when home is saturated.
//!
//! - [`priority`]: which class a request is (route, method, plugin hint).
//! - [`limits`]: token buckets per registry and per client (governor).
//! - [`queue`]: slots per site, reserved shares, queue deadline, shedding.
//! - [`adaptive`]: a Gradient2-style limit found from latency.
//! - [`spill`]: overflow reads to a healthy, fresh-enough embassy.

pub mod adaptive;
pub mod limits;
pub mod metrics;
pub mod priority;
pub mod queue;
pub mod spill;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Method, StatusCode};
use tokio::time::Instant;

use crate::config::burst::BurstSettings;
use crate::config::Registry;
use crate::sites::RegistrySites;
use limits::RateLimits;
use queue::{Permit, ShedReason, SiteLimiter};

/// The admission decision for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Admit { class: usize },
    Shed { class: usize, status: StatusCode, retry_after: u32, reason: &'static str },
}

/// One registry's admission state; built with each configuration
/// generation.
#[derive(Debug)]
pub struct Admission {
    pub settings: Arc<BurstSettings>,
    rates: Option<RateLimits>,
    /// Aligned with the registry's sites; empty without a concurrency limit.
    limiters: Vec<Arc<SiteLimiter>>,
}

/// Where a request will go and the slot it holds there.
pub struct Slot {
    /// Dropped when the response head has arrived.
    pub permit: Option<Permit>,
    pub spilled_to: Option<usize>,
}

impl Admission {
    pub fn new(registry: &Registry) -> Option<Admission> {
        let settings = registry.burst.clone()?;
        let rates = RateLimits::new(settings.rate, settings.client_rate, settings.client_key.clone());
        let shares: Vec<f64> = settings.classes.iter().map(|c| c.share).collect();
        let limiters = match &settings.concurrency {
            Some(c) => registry.sites.iter().map(|_| Arc::new(SiteLimiter::new(c, shares.clone()))).collect(),
            None => Vec::new(),
        };
        Some(Admission { settings, rates, limiters })
    }

    pub fn class_name(&self, class: usize) -> &str {
        self.settings.classes.get(class).map_or("default", |c| c.name.as_str())
    }

    /// The class called `name`, if the policy has one.
    pub fn class_index(&self, name: &str) -> Option<usize> {
        self.settings.classes.iter().position(|c| c.name == name)
    }

    /// Admission phase: the request's class, then the rate limits.
    pub fn admit(
        &self,
        method: &Method,
        path: &str,
        peer: IpAddr,
        headers: &HeaderMap,
        hint: Option<&str>,
    ) -> Decision {
        let class = priority::classify(&self.settings.classes, method, path, hint);
        if let Some(Err(limited)) = self.rates.as_ref().map(|r| r.check(peer, headers)) {
            let secs = limited.wait.as_secs_f64().ceil().max(1.0) as u32;
            let reason = if limited.scope == "client" { "client_rate" } else { "registry_rate" };
            return Decision::Shed {
                class,
                status: StatusCode::TOO_MANY_REQUESTS,
                retry_after: secs,
                reason,
            };
        }
        Decision::Admit { class }
    }

    /// Spill decision and slot: may put an embassy first in `plan`, then
    /// waits for a slot at the first site of the plan.
    pub async fn slot(
        &self,
        sites: &RegistrySites,
        plan: &mut Vec<usize>,
        class: usize,
        deadline: Instant,
    ) -> Result<(Slot, Duration), ShedReason> {
        if self.limiters.is_empty() {
            return Ok((Slot { permit: None, spilled_to: None }, Duration::ZERO));
        }
        let spilled_to =
            self.settings.spill.as_ref().and_then(|s| spill::choose(plan, sites, &self.limiters, s, class));
        let Some(limiter) = plan.first().and_then(|&i| self.limiters.get(i)) else {
            return Ok((Slot { permit: None, spilled_to }, Duration::ZERO));
        };
        let (permit, waited) = limiter.acquire(class, deadline).await?;
        Ok((Slot { permit: Some(permit), spilled_to }, waited))
    }

    pub fn limiter(&self, site: usize) -> Option<&Arc<SiteLimiter>> {
        self.limiters.get(site)
    }
}
