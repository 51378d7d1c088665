//! The continuity state machine of one registry.
//!
//! ```text
//!            home has no usable backend
//!   normal ─────────────────────────────► failover
//!     ▲                                      │
//!     └──────────────────────────────────────┘
//!        home usable without a break for `failback_hold`
//!
//!   override(site): operators forced a site; `auto` returns to the above.
//! ```
//!
//! The request path never waits on this: it reads the last published
//! [`Decision`] and each backend's live health, so a failure is routed
//! around at once even before the state machine has caught up. The state
//! machine adds what a per-request view cannot: hysteresis, so a flapping
//! home does not flap routing, and a log line for every change.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::broadcast;
use tokio::time::Instant;

/// What the request path follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Home serves.
    Normal,
    /// Home is down, or back for less than the hold time: embassies serve.
    Failover,
    /// Operators forced this site (index into the registry's sites).
    Override { site: usize },
}

/// Published for the request path, swapped whole on every change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub mode: Mode,
    /// Per site: drained sites get no new requests.
    pub draining: Vec<bool>,
}

/// A logged change of a registry's continuity state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContinuityEvent {
    pub registry: Arc<str>,
    pub from: String,
    pub to: String,
    pub reason: String,
}

#[derive(Debug)]
struct Inner {
    automatic: Mode,
    home_usable_since: Option<Instant>,
    forced: Option<usize>,
    draining: Vec<bool>,
}

#[derive(Debug)]
pub struct Continuity {
    registry: Arc<str>,
    site_names: Vec<Arc<str>>,
    hold: Duration,
    decision: ArcSwap<Decision>,
    inner: Mutex<Inner>,
    events: broadcast::Sender<ContinuityEvent>,
    changes: std::sync::atomic::AtomicU64,
}

impl Continuity {
    pub fn new(registry: Arc<str>, site_names: Vec<Arc<str>>, hold: Duration) -> Continuity {
        let draining = vec![false; site_names.len()];
        let decision = Decision { mode: Mode::Normal, draining: draining.clone() };
        Continuity {
            registry,
            site_names,
            hold,
            decision: ArcSwap::from_pointee(decision),
            inner: Mutex::new(Inner {
                automatic: Mode::Normal,
                home_usable_since: Some(Instant::now()),
                forced: None,
                draining,
            }),
            events: broadcast::channel(64).0,
            changes: std::sync::atomic::AtomicU64::new(0),
        }
    }

    pub fn decision(&self) -> arc_swap::Guard<Arc<Decision>> {
        self.decision.load()
    }

    pub fn subscribe(&self) -> broadcast::Receiver<ContinuityEvent> {
        self.events.subscribe()
    }

    /// State changes since start, for the metrics.
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn label(&self, mode: Mode) -> String {
        match mode {
            Mode::Normal => "normal".into(),
            Mode::Failover => "failover".into(),
            Mode::Override { site } => format!("override:{}", self.site_names[site]),
        }
    }

    /// Re-evaluates the automatic state from whether home is usable now.
    /// Returns when to evaluate again even if nothing else happens (the end
    /// of a failback hold).
    pub fn evaluate(&self, home_usable: bool, why: &str) -> Option<Instant> {
        let now = Instant::now();
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if home_usable {
            inner.home_usable_since.get_or_insert(now);
        } else {
            inner.home_usable_since = None;
        }
        let (next, wake) = match (inner.automatic, inner.home_usable_since) {
            (Mode::Normal, None) => (Mode::Failover, None),
            (Mode::Failover, Some(since)) if now >= since + self.hold => (Mode::Normal, None),
            (Mode::Failover, Some(since)) => (Mode::Failover, Some(since + self.hold)),
            (mode, _) => (mode, None),
        };
        if next != inner.automatic {
            let reason = match next {
                Mode::Failover => format!("home has no usable backend ({why})"),
                _ => format!("home stayed healthy for the failback hold of {:?}", self.hold),
            };
            let before = self.effective(&inner);
            inner.automatic = next;
            self.publish(&inner, before, reason);
        }
        wake
    }

    /// Operators force `site` (an index), whatever health says.
    pub fn force(&self, site: usize, who: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let before = self.effective(&inner);
        inner.forced = Some(site);
        self.publish(&inner, before, format!("forced by {who}"));
    }

    /// No new requests for `site`; requests in flight finish.
    pub fn drain(&self, site: usize, who: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let before = self.effective(&inner);
        inner.draining[site] = true;
        self.publish(&inner, before, format!("site {} drained by {who}", self.site_names[site]));
    }

    /// Clears any force and every drain.
    pub fn automatic(&self, who: &str) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let before = self.effective(&inner);
        inner.forced = None;
        inner.draining.iter_mut().for_each(|d| *d = false);
        self.publish(&inner, before, format!("returned to automatic by {who}"));
    }

    fn effective(&self, inner: &Inner) -> Mode {
        inner.forced.map_or(inner.automatic, |site| Mode::Override { site })
    }

    fn publish(&self, inner: &Inner, before: Mode, reason: String) {
        let decision = Decision { mode: self.effective(inner), draining: inner.draining.clone() };
        let (from, to) = (self.label(before), self.label(decision.mode));
        tracing::warn!(registry = %self.registry, %from, %to, %reason, "continuity state changed");
        self.decision.store(Arc::new(decision));
        self.changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _ = self.events.send(ContinuityEvent { registry: self.registry.clone(), from, to, reason });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine(hold: Duration) -> Continuity {
        Continuity::new("population".into(), vec!["home".into(), "embassy-lu".into()], hold)
    }

    #[tokio::test(start_paused = true)]
    async fn fails_over_at_once_and_back_only_after_the_hold() {
        let c = machine(Duration::from_secs(30));
        c.evaluate(false, "refused");
        assert_eq!(c.decision().mode, Mode::Failover);
        let wake = c.evaluate(true, "check passed").expect("a hold is running");
        assert_eq!(c.decision().mode, Mode::Failover);
        tokio::time::advance(Duration::from_secs(29)).await;
        c.evaluate(true, "timer");
        assert_eq!(c.decision().mode, Mode::Failover);
        tokio::time::sleep_until(wake).await;
        c.evaluate(true, "timer");
        assert_eq!(c.decision().mode, Mode::Normal);
    }

    #[tokio::test(start_paused = true)]
    async fn a_flapping_home_restarts_the_hold() {
        let c = machine(Duration::from_secs(10));
        let mut events = c.subscribe();
        c.evaluate(false, "down");
        for _ in 0..5 {
            c.evaluate(true, "up");
            tokio::time::advance(Duration::from_secs(6)).await;
            c.evaluate(false, "down");
        }
        assert_eq!(c.decision().mode, Mode::Failover);
        assert_eq!(events.try_recv().unwrap().to, "failover");
        assert!(events.try_recv().is_err(), "exactly one change while flapping");
    }

    #[test]
    fn force_and_automatic_are_logged_changes() {
        let c = machine(Duration::from_secs(10));
        c.force(1, "test");
        assert_eq!(c.decision().mode, Mode::Override { site: 1 });
        c.drain(0, "test");
        assert!(c.decision().draining[0]);
        c.automatic("test");
        assert_eq!(**c.decision(), Decision { mode: Mode::Normal, draining: vec![false, false] });
    }
}
