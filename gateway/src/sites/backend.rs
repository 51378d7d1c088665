//! One backend's live state: health from active checks, ejection from
//! passive outlier detection, and load. Lock-free: the request path reads it
//! on every request.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::OnceLock;
use std::time::Duration;

use http::uri::Authority;
use tokio::time::Instant;

use crate::config::Outlier;

/// Milliseconds on a process-wide clock, so deadlines fit in an atomic.
pub fn now_ms() -> u64 {
    static BASE: OnceLock<Instant> = OnceLock::new();
    let base = *BASE.get_or_init(|| Instant::now() - Duration::from_secs(1));
    Instant::now().saturating_duration_since(base).as_millis() as u64
}

#[derive(Debug)]
pub struct BackendState {
    pub addr: Authority,
    /// Cleared by failed active checks (and by ejection when checks run).
    healthy: AtomicBool,
    ejected_until_ms: AtomicU64,
    last_ejected_ms: AtomicU64,
    ejections: AtomicU32,
    streak_5xx: AtomicU32,
    streak_failures: AtomicU32,
    // Written only by this backend's checker task.
    check_ok: AtomicU32,
    check_fail: AtomicU32,
    pub in_flight: AtomicU32,
    /// Exponentially weighted moving average of response-head latency.
    latency_us: AtomicU64,
}

/// A change worth logging and re-evaluating continuity for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    BecameHealthy,
    BecameUnhealthy { reason: String },
    Ejected { for_: Duration, reason: String },
}

impl BackendState {
    pub fn new(addr: Authority) -> BackendState {
        BackendState {
            addr,
            // Optimistic start: traffic flows at once, and any failure is
            // retried on the next site, so a wrong guess costs no request.
            healthy: AtomicBool::new(true),
            ejected_until_ms: AtomicU64::new(0),
            last_ejected_ms: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            streak_5xx: AtomicU32::new(0),
            streak_failures: AtomicU32::new(0),
            check_ok: AtomicU32::new(0),
            check_fail: AtomicU32::new(0),
            in_flight: AtomicU32::new(0),
            latency_us: AtomicU64::new(0),
        }
    }

    pub fn usable(&self, now_ms: u64) -> bool {
        self.healthy.load(Relaxed) && now_ms >= self.ejected_until_ms.load(Relaxed)
    }

    pub fn healthy(&self) -> bool {
        self.healthy.load(Relaxed)
    }

    /// Remaining ejection, if ejected.
    pub fn ejected_for(&self, now_ms: u64) -> Option<Duration> {
        let until = self.ejected_until_ms.load(Relaxed);
        (until > now_ms).then(|| Duration::from_millis(until - now_ms))
    }

    pub fn latency(&self) -> Option<Duration> {
        match self.latency_us.load(Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    /// A response head arrived with a non-5xx status.
    pub fn record_success(&self, latency: Duration, outlier: &Outlier) {
        self.streak_5xx.store(0, Relaxed);
        self.streak_failures.store(0, Relaxed);
        let sample = latency.as_micros().max(1) as u64;
        let old = self.latency_us.load(Relaxed);
        let new = if old == 0 { sample } else { (old * 7 + sample) / 8 };
        self.latency_us.store(new, Relaxed);
        // A backend that stayed well since its last ejection starts afresh.
        let last = self.last_ejected_ms.load(Relaxed);
        if last != 0 && now_ms().saturating_sub(last) > outlier.max_ejection.as_millis() as u64 * 2 {
            self.ejections.store(0, Relaxed);
        }
    }

    pub fn record_5xx(&self, outlier: &Outlier, has_checks: bool) -> Option<Transition> {
        let streak = self.streak_5xx.fetch_add(1, Relaxed) + 1;
        (streak >= outlier.consecutive_5xx)
            .then(|| self.eject(outlier, has_checks, format!("{streak} 5xx answers in a row")))
    }

    /// Connection refused, reset, or no response head in time.
    pub fn record_failure(&self, outlier: &Outlier, has_checks: bool, what: &str) -> Option<Transition> {
        let streak = self.streak_failures.fetch_add(1, Relaxed) + 1;
        (streak >= outlier.consecutive_failures).then(|| self.eject(outlier, has_checks, what.to_string()))
    }

    /// Ejects for a time that doubles with each repeated ejection. With
    /// active checks the backend also needs them to pass before it returns.
    fn eject(&self, outlier: &Outlier, has_checks: bool, reason: String) -> Transition {
        let n = self.ejections.fetch_add(1, Relaxed).min(16);
        let for_ = outlier.base_ejection.saturating_mul(1 << n).min(outlier.max_ejection);
        let now = now_ms();
        self.ejected_until_ms.store(now + for_.as_millis() as u64, Relaxed);
        self.last_ejected_ms.store(now, Relaxed);
        self.streak_5xx.store(0, Relaxed);
        self.streak_failures.store(0, Relaxed);
        if has_checks {
            self.healthy.store(false, Relaxed);
            self.check_ok.store(0, Relaxed);
        }
        Transition::Ejected { for_, reason }
    }

    /// `rise` passing checks in a row make the backend healthy and lift an
    /// outlier ejection early (as Envoy's default does): the checks are the
    /// better evidence once they run, and a doubled ejection would otherwise
    /// keep a recovered home out long after it came back. The growing
    /// ejection time is what protects sites without active checks.
    pub fn check_passed(&self, rise: u32) -> Option<Transition> {
        self.check_fail.store(0, Relaxed);
        let ok = self.check_ok.fetch_add(1, Relaxed) + 1;
        (!self.healthy() && ok >= rise).then(|| {
            self.healthy.store(true, Relaxed);
            self.ejected_until_ms.store(0, Relaxed);
            Transition::BecameHealthy
        })
    }

    pub fn check_failed(&self, fall: u32, reason: String) -> Option<Transition> {
        self.check_ok.store(0, Relaxed);
        let fails = self.check_fail.fetch_add(1, Relaxed) + 1;
        (self.healthy() && fails >= fall).then(|| {
            self.healthy.store(false, Relaxed);
            Transition::BecameUnhealthy { reason }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outlier() -> Outlier {
        Outlier {
            consecutive_5xx: 3,
            consecutive_failures: 1,
            base_ejection: Duration::from_secs(1),
            max_ejection: Duration::from_secs(5),
        }
    }

    #[test]
    fn repeated_ejections_double_up_to_the_maximum() {
        let b = BackendState::new("127.0.0.1:1".parse().unwrap());
        let fors: Vec<_> = (0..5)
            .map(|_| match b.record_failure(&outlier(), false, "refused") {
                Some(Transition::Ejected { for_, .. }) => for_.as_secs(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(fors, [1, 2, 4, 5, 5]);
        assert!(!b.usable(now_ms()));
    }

    #[test]
    fn a_5xx_streak_ejects_and_a_success_breaks_the_streak() {
        let b = BackendState::new("127.0.0.1:1".parse().unwrap());
        assert!(b.record_5xx(&outlier(), true).is_none());
        assert!(b.record_5xx(&outlier(), true).is_none());
        b.record_success(Duration::from_millis(1), &outlier());
        assert!(b.record_5xx(&outlier(), true).is_none());
        assert!(b.record_5xx(&outlier(), true).is_none());
        assert!(matches!(b.record_5xx(&outlier(), true), Some(Transition::Ejected { .. })));
        assert!(!b.healthy(), "with active checks an ejected backend waits for them");
    }

    #[test]
    fn passing_active_checks_lift_an_ejection_before_its_time() {
        let b = BackendState::new("127.0.0.1:1".parse().unwrap());
        let long = Outlier {
            base_ejection: Duration::from_secs(600),
            max_ejection: Duration::from_secs(600),
            ..outlier()
        };
        for _ in 0..long.consecutive_failures {
            b.record_failure(&long, true, "refused");
        }
        assert!(!b.usable(now_ms()), "ejected and unhealthy");
        assert_eq!(b.check_passed(2), None, "one check is not yet a rise of 2");
        assert_eq!(b.check_passed(2), Some(Transition::BecameHealthy));
        assert!(b.usable(now_ms()), "the checks brought it back; the 600 s ejection no longer holds");
    }

    #[test]
    fn rise_and_fall_need_streaks() {
        let b = BackendState::new("127.0.0.1:1".parse().unwrap());
        assert_eq!(b.check_failed(2, "x".into()), None);
        assert!(matches!(b.check_failed(2, "x".into()), Some(Transition::BecameUnhealthy { .. })));
        assert_eq!(b.check_passed(2), None);
        assert_eq!(b.check_passed(2), Some(Transition::BecameHealthy));
        assert!(b.usable(now_ms()));
    }
}
