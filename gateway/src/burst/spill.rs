//! Spill-over: when home is saturated (requests would queue, or its recent
//! latency is over the threshold) and an embassy in the plan is healthy,
//! fresh enough and has room, the request goes to that embassy first.
//! Reads only, unless the write policy already lets the embassy take
//! writes (the plan holds only sites that may take the request).

use std::sync::atomic::{AtomicU64, Ordering};

use super::queue::SiteLimiter;
use crate::config::burst::Spill;
use crate::config::{Freshness, SiteKind};
use crate::sites::backend::now_ms;
use crate::sites::RegistrySites;

/// How long after the last spilled request the registry still shows the
/// `spill` continuity state: long enough for an operator to see it.
const SHOWN_FOR_MS: u64 = 2_000;

/// When a registry last spilled, for the admin status.
#[derive(Debug, Default)]
pub struct SpillMark(AtomicU64);

impl SpillMark {
    pub fn mark(&self) {
        self.0.store(now_ms(), Ordering::Relaxed);
    }

    pub fn active(&self) -> bool {
        let last = self.0.load(Ordering::Relaxed);
        last != 0 && now_ms().saturating_sub(last) < SHOWN_FOR_MS
    }
}

/// Home is saturated for `class` when a request of it would wait behind
/// at least `queue_depth - 1` others, or home's recent latency is over the
/// threshold.
fn saturated(home: &SiteLimiter, class: usize, spill: &Spill) -> bool {
    let (wait, _, queued) = home.would_wait(class);
    (wait && queued + 1 >= spill.queue_depth as usize)
        || spill.latency.zip(home.latency()).is_some_and(|(limit, seen)| seen > limit)
}

/// The embassy is the better place: it has room, or fewer requests of this
/// class or higher wait there than at home (its queue may be full of
/// lower classes, which this request goes ahead of).
fn better_than_home(embassy: &SiteLimiter, home: &SiteLimiter, class: usize) -> bool {
    let (wait, ahead, _) = embassy.would_wait(class);
    !wait || ahead < home.would_wait(class).1
}

fn fresh_enough(freshness: &Freshness, spill: &Spill) -> bool {
    match freshness {
        Freshness::Live => true,
        Freshness::Replica { max_lag } => spill.max_lag.is_some_and(|ok| *max_lag <= ok),
        Freshness::Snapshot(_) => false,
    }
}

/// Reorders `plan` to put an embassy first when home is saturated; returns
/// the embassy's index when it did.
pub fn choose(
    plan: &mut Vec<usize>,
    sites: &RegistrySites,
    limiters: &[std::sync::Arc<SiteLimiter>],
    spill: &Spill,
    class: usize,
) -> Option<usize> {
    let home = limiters.first()?;
    if plan.first() != Some(&0) || !saturated(home, class, spill) {
        return None;
    }
    let pos = plan.iter().position(|&i| {
        let spec = &sites.pools[i].spec;
        spec.kind == SiteKind::Embassy
            && fresh_enough(&spec.freshness, spill)
            && limiters.get(i).is_some_and(|l| better_than_home(l, home, class))
    })?;
    let site = plan.remove(pos);
    plan.insert(0, site);
    sites.spill.mark();
    Some(site)
}
