//! Per-site concurrency limit with a bounded priority queue.
//!
//! A request takes a slot before it is forwarded to a site and gives it back
//! when the response head arrives. Without a free slot it waits in its
//! class's queue, but never silently: a full queue sheds the lowest class
//! first (an arriving higher class evicts the newest waiter of a lower
//! one), a wait that would pass the queue deadline is refused at once, and
//! every wait ends at the deadline with a 503 the caller can answer.
//!
//! Reserved shares: class `c` keeps `ceil(share_c * limit)` slots. A lower
//! class may take a slot only while enough free slots remain to cover the
//! unused reservations of every higher class, so submissions still find
//! room when browsing saturates the site. A reservation holds only for a
//! class seen at this site within the last second: an embassy that never
//! gets submissions (writes stay home) does not keep slots idle for them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::adaptive::Gradient2;
use crate::config::burst::Concurrency;
use crate::sites::backend::now_ms;

/// Why a request got no slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShedReason {
    /// The queue was full of requests of the same or higher priority.
    QueueFull,
    /// A higher class took this request's place in the queue.
    Evicted,
    /// The expected wait is longer than the time left before the deadline.
    ExpectedWait,
    /// Waited until the queue deadline.
    Deadline,
}

impl ShedReason {
    pub fn label(self) -> &'static str {
        match self {
            ShedReason::QueueFull => "queue_full",
            ShedReason::Evicted => "evicted",
            ShedReason::ExpectedWait => "expected_wait",
            ShedReason::Deadline => "queue_timeout",
        }
    }
}

enum Grant {
    Slot,
    Evicted,
}

struct Waiter {
    id: u64,
    tx: oneshot::Sender<Grant>,
}

struct State {
    in_flight: usize,
    by_class: Vec<usize>,
    waiting: Vec<VecDeque<Waiter>>,
}

impl State {
    fn queued(&self) -> usize {
        self.waiting.iter().map(VecDeque::len).sum()
    }
}

pub struct SiteLimiter {
    shares: Vec<f64>,
    queue_cap: usize,
    queue_timeout: Duration,
    limit: AtomicUsize,
    adaptive: Option<Mutex<Gradient2>>,
    state: Mutex<State>,
    next_id: AtomicU64,
    /// Smoothed time a slot is held, in microseconds (0: not known yet).
    service_us: AtomicU64,
    /// Per class: when a request of it last arrived (ms since the epoch).
    seen_ms: Vec<AtomicU64>,
    /// Per class: smoothed share of waits that ended at the deadline, in
    /// permille. Arrivals that would queue are shed at once with that
    /// probability (at most 95%), so a class that cannot be served in time
    /// is told so in microseconds, not after the whole queue timeout. The
    /// estimate of `acquire` cannot see this: higher classes arriving later
    /// overtake a waiter.
    timeouts: Vec<AtomicU64>,
    /// When the queue was last seen empty (ms since the epoch).
    last_empty_ms: AtomicU64,
    /// Woken when a request starts or joins the queue, for observers that
    /// wait on [`SiteLimiter::position`] (tests) instead of polling it.
    changed: tokio::sync::Notify,
}

const EARLY_SHED_MAX_PERMILLE: u64 = 950;

/// CoDel's idea, as in Facebook's adaptive queueing: a queue that has not
/// been empty for this long is a standing queue, not a burst. Then every
/// class but the highest waits at most a tenth of the queue timeout, so
/// what cannot be served is shed in milliseconds instead of after the
/// whole timeout, and the queue stops adding latency to what is served.
const STANDING_QUEUE_MS: u64 = 100;

const RESERVATION_HOLDS_MS: u64 = 1_000;

impl std::fmt::Debug for SiteLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SiteLimiter").field("limit", &self.limit()).finish_non_exhaustive()
    }
}

/// A held slot; dropping it gives the slot back (and feeds the adaptive
/// limit with how long it was held).
pub struct Permit {
    limiter: Arc<SiteLimiter>,
    class: usize,
    started: Instant,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.release(self.class, self.started.elapsed());
    }
}

impl SiteLimiter {
    pub fn new(c: &Concurrency, shares: Vec<f64>) -> SiteLimiter {
        let classes = shares.len();
        SiteLimiter {
            shares,
            queue_cap: c.queue as usize,
            queue_timeout: c.queue_timeout,
            limit: AtomicUsize::new(c.max_in_flight as usize),
            adaptive: c.adaptive.as_ref().map(|a| Mutex::new(Gradient2::new(a, c.max_in_flight))),
            state: Mutex::new(State {
                in_flight: 0,
                by_class: vec![0; classes],
                waiting: (0..classes).map(|_| VecDeque::new()).collect(),
            }),
            next_id: AtomicU64::new(0),
            service_us: AtomicU64::new(0),
            seen_ms: (0..classes).map(|_| AtomicU64::new(0)).collect(),
            timeouts: (0..classes).map(|_| AtomicU64::new(0)).collect(),
            last_empty_ms: AtomicU64::new(now_ms()),
            changed: tokio::sync::Notify::new(),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until [`SiteLimiter::position`] is at least `n`.
    pub async fn until_position(&self, n: usize) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so a change in between is not lost.
            changed.as_mut().enable();
            if self.position() >= n {
                return;
            }
            changed.await;
        }
    }

    /// Where a new request would stand: 0 when it would start at once.
    pub fn position(&self) -> usize {
        let st = self.lock();
        st.queued() + usize::from(st.in_flight >= self.limit())
    }

    /// Whether a request of `class` arriving now would have to wait, how
    /// many of its class or higher wait before it, and how many wait in all.
    pub fn would_wait(&self, class: usize) -> (bool, usize, usize) {
        let st = self.lock();
        let ahead: usize = st.waiting[..=class.min(st.waiting.len() - 1)].iter().map(VecDeque::len).sum();
        (ahead > 0 || !self.can_start(&st, class), ahead, st.queued())
    }

    /// Smoothed slot holding time (the site's recent latency).
    pub fn latency(&self) -> Option<Duration> {
        match self.service_us.load(Ordering::Relaxed) {
            0 => None,
            us => Some(Duration::from_micros(us)),
        }
    }

    fn can_start(&self, st: &State, class: usize) -> bool {
        let limit = self.limit();
        let free = limit.saturating_sub(st.in_flight);
        free > self.held_back(st, class, limit)
    }

    /// Free slots kept for the higher classes' unused reservations.
    fn held_back(&self, st: &State, class: usize, limit: usize) -> usize {
        let now = now_ms();
        (0..class)
            .filter(|&i| now.saturating_sub(self.seen_ms[i].load(Ordering::Relaxed)) < RESERVATION_HOLDS_MS)
            .map(|i| ((self.shares[i] * limit as f64).ceil() as usize).saturating_sub(st.by_class[i]))
            .sum()
    }

    fn take(self: &Arc<Self>, st: &mut State, class: usize) -> Permit {
        st.in_flight += 1;
        st.by_class[class] += 1;
        self.changed.notify_waiters();
        Permit { limiter: self.clone(), class, started: Instant::now() }
    }

    /// Waits for a slot for `class` until the queue deadline (or
    /// `deadline`, if earlier). Returns how long it waited with the permit.
    pub async fn acquire(
        self: &Arc<Self>,
        class: usize,
        deadline: Instant,
    ) -> Result<(Permit, Duration), ShedReason> {
        let arrived = Instant::now();
        let now = now_ms();
        self.seen_ms[class].store(now, Ordering::Relaxed);
        let (id, rx, until) = {
            let mut st = self.lock();
            if st.queued() == 0 {
                self.last_empty_ms.store(now, Ordering::Relaxed);
            }
            let timeout =
                if self.standing(now) && class > 0 { self.queue_timeout / 10 } else { self.queue_timeout };
            let until = deadline.min(arrived + timeout);
            // No jumping the queue: waiters of this class or a higher one go first.
            let ahead: usize = st.waiting[..=class].iter().map(VecDeque::len).sum();
            if ahead == 0 && self.can_start(&st, class) {
                return Ok((self.take(&mut st, class), Duration::ZERO));
            }
            let service = self.service_us.load(Ordering::Relaxed);
            // Slots this class can use: the limit less what higher classes keep.
            let limit = self.limit();
            let usable = limit.saturating_sub(self.held_back(&st, class, limit)).max(1) as u64;
            let expected = Duration::from_micros(service * (ahead as u64 + 1) / usable);
            let doomed = self.timeouts[class].load(Ordering::Relaxed).min(EARLY_SHED_MAX_PERMILLE);
            if arrived + expected > until || fastrand::u64(0..1000) < doomed {
                return Err(ShedReason::ExpectedWait);
            }
            if st.queued() >= self.queue_cap && !evict_lower(&mut st, class) {
                return Err(ShedReason::QueueFull);
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = oneshot::channel();
            st.waiting[class].push_back(Waiter { id, tx });
            self.changed.notify_waiters();
            (id, rx, until)
        };
        let mut wait = Wait { limiter: self, class, id, rx: Some(rx) };
        // CoDel decides on the time spent waiting, not only on arrival: a
        // lower-class waiter still queued at any tenth of the timeout gives
        // up then if the queue has become a standing one meanwhile.
        let step = (self.queue_timeout / 10).max(Duration::from_millis(1));
        let grant = loop {
            let checkpoint = if class > 0 { until.min(Instant::now() + step) } else { until };
            match wait.until(checkpoint).await {
                Some(grant) => break Some(grant),
                None if checkpoint >= until || wait.rx.is_none() || self.standing(now_ms()) => break None,
                None => continue,
            }
        };
        match grant {
            Some(Grant::Slot) => {
                self.record_wait(class, false);
                Ok((Permit { limiter: self.clone(), class, started: Instant::now() }, arrived.elapsed()))
            }
            Some(Grant::Evicted) => Err(ShedReason::Evicted),
            None => {
                self.record_wait(class, true);
                Err(ShedReason::Deadline)
            }
        }
    }

    /// The queue has not been empty for a while: overload, not a burst.
    fn standing(&self, now: u64) -> bool {
        now.saturating_sub(self.last_empty_ms.load(Ordering::Relaxed)) > STANDING_QUEUE_MS
    }

    /// Feeds the early-shed probability of `class` (weight 1/8 per wait).
    fn record_wait(&self, class: usize, timed_out: bool) {
        let target = if timed_out { 1000 } else { 0 };
        let _ = self.timeouts[class]
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| Some((old * 7 + target) / 8));
    }

    /// Gives back a slot that was granted to a waiter that is gone.
    fn undo_grant(&self, st: &mut State, class: usize) {
        st.in_flight -= 1;
        st.by_class[class] -= 1;
        self.wake(st);
    }

    fn release(&self, class: usize, held: Duration) {
        let us = held.as_micros().min(u64::MAX as u128) as u64;
        let old = self.service_us.load(Ordering::Relaxed);
        let smoothed = if old == 0 { us.max(1) } else { (old * 7 + us) / 8 };
        self.service_us.store(smoothed.max(1), Ordering::Relaxed);
        let mut st = self.lock();
        st.in_flight -= 1;
        st.by_class[class] -= 1;
        if let Some(adaptive) = &self.adaptive {
            let limit = adaptive.lock().unwrap_or_else(|p| p.into_inner()).sample(held, st.in_flight + 1);
            self.limit.store(limit, Ordering::Relaxed);
        }
        self.wake(&mut st);
    }

    /// Hands free slots to waiters, highest class first.
    fn wake(&self, st: &mut State) {
        if st.queued() == 0 {
            self.last_empty_ms.store(now_ms(), Ordering::Relaxed);
            return;
        }
        for class in 0..st.waiting.len() {
            while !st.waiting[class].is_empty() {
                if !self.can_start(st, class) {
                    return;
                }
                let Some(waiter) = st.waiting[class].pop_front() else { break };
                st.in_flight += 1;
                st.by_class[class] += 1;
                if waiter.tx.send(Grant::Slot).is_err() {
                    // The waiter gave up (its request was cancelled).
                    st.in_flight -= 1;
                    st.by_class[class] -= 1;
                }
            }
        }
    }
}

/// One waiter's side of the queue. Dropped early (the client went away, or
/// the deadline passed), it leaves the queue, or gives back a slot that was
/// granted meanwhile, so no slot leaks.
struct Wait<'a> {
    limiter: &'a SiteLimiter,
    class: usize,
    id: u64,
    rx: Option<oneshot::Receiver<Grant>>,
}

impl Wait<'_> {
    async fn until(&mut self, until: Instant) -> Option<Grant> {
        let rx = self.rx.as_mut()?;
        match tokio::time::timeout_at(until, rx).await {
            Ok(Ok(grant)) => {
                self.rx = None;
                Some(grant)
            }
            // The sender is gone without a word: treat it as the deadline.
            Ok(Err(_)) => {
                self.rx = None;
                None
            }
            Err(_) => None,
        }
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else { return };
        let mut st = self.limiter.lock();
        let queue = &mut st.waiting[self.class];
        if let Some(pos) = queue.iter().position(|w| w.id == self.id) {
            queue.remove(pos);
        } else if let Ok(Grant::Slot) = rx.try_recv() {
            // Sent under the lock, so it is in the channel by now.
            self.limiter.undo_grant(&mut st, self.class);
        }
    }
}

/// Makes room for `class` by evicting the newest waiter of the lowest class
/// below it; false when no lower class waits.
fn evict_lower(st: &mut State, class: usize) -> bool {
    for lower in (class + 1..st.waiting.len()).rev() {
        if let Some(w) = st.waiting[lower].pop_back() {
            let _ = w.tx.send(Grant::Evicted);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max: u32, queue: u32, shares: Vec<f64>) -> Arc<SiteLimiter> {
        let c = Concurrency {
            max_in_flight: max,
            queue,
            queue_timeout: Duration::from_millis(200),
            adaptive: None,
        };
        Arc::new(SiteLimiter::new(&c, shares))
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    #[tokio::test]
    async fn a_reserved_share_keeps_room_for_the_higher_class() {
        let l = limiter(4, 4, vec![0.5, 0.0]);
        // Submissions are flowing (the reservation holds while they do).
        drop(l.acquire(0, far()).await.unwrap());
        let _a = l.acquire(1, far()).await.unwrap();
        let _b = l.acquire(1, far()).await.unwrap();
        // Two slots left, both reserved for class 0.
        assert!(tokio::time::timeout(Duration::from_millis(20), l.acquire(1, far())).await.is_err());
        let _c = l.acquire(0, far()).await.unwrap();
        let _d = l.acquire(0, far()).await.unwrap();
    }

    #[tokio::test]
    async fn a_full_queue_evicts_the_lower_class_for_a_higher_one() {
        let l = limiter(1, 1, vec![0.0, 0.0]);
        let held = l.acquire(1, far()).await.unwrap();
        let low = tokio::spawn({
            let l = l.clone();
            async move { l.acquire(1, far()).await.map(|_| ()) }
        });
        while l.position() < 2 {
            tokio::task::yield_now().await;
        }
        let high = tokio::spawn({
            let l = l.clone();
            async move { l.acquire(0, far()).await.map(|_| ()) }
        });
        assert_eq!(low.await.unwrap(), Err(ShedReason::Evicted));
        drop(held);
        assert_eq!(high.await.unwrap(), Ok(()));
        // A same-class arrival to a full queue is refused at once.
        let _h = l.acquire(1, far()).await.unwrap();
        let _w = tokio::spawn({
            let l = l.clone();
            async move { l.acquire(1, far()).await.map(|_| ()) }
        });
        while l.position() < 2 {
            tokio::task::yield_now().await;
        }
        assert_eq!(l.acquire(1, far()).await.err(), Some(ShedReason::QueueFull));
    }

    #[tokio::test]
    async fn waiting_ends_at_the_queue_deadline() {
        let l = limiter(1, 4, vec![0.0]);
        let _held = l.acquire(0, far()).await.unwrap();
        let started = Instant::now();
        assert_eq!(l.acquire(0, far()).await.err(), Some(ShedReason::Deadline));
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(l.position(), 1, "the timed-out waiter left the queue");
    }
}
