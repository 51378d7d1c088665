//! Runs a scenario against one target: a request mix over keep-alive
//! connections, open loop (the schedule says when each request is due) or
//! closed loop, with timed events fired beside the load.
//!
//! Open loop hands out arrivals through one shared counter: a connection
//! takes the next request number, sleeps until it is due and sends it. When
//! every connection is busy the next free one takes a request that is
//! already overdue and sends it at once; its latency still counts from when
//! it was due, so a stalled target shows up as latency (no coordinated
//! omission). Requests still due after the run ended are reported `unsent`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::conn::{Conn, Link};
use crate::events::{fire_events, EventResult};
use crate::scenario::{Load, Scenario};
use crate::stats::{ErrorKind, Stats};
use crate::target::Target;
use crate::timeline::{Sample, Timeline};

const CONNECT_BACKOFF: Duration = Duration::from_millis(50);

/// The requests of a scenario, resolved against one base URL.
pub struct Plan {
    /// Per class, one target per path.
    classes: Vec<Vec<Target>>,
    /// Cumulative weights, for picking a class.
    cumulative: Vec<u64>,
}

/// A fixed mixing function (splitmix64): request `n`'s class is random-looking
/// but reproducible, and needs no shared RNG state between connections.
fn mix(n: u64) -> u64 {
    let mut z = n.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Plan {
    pub fn new(scenario: &Scenario, base: &str) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/');
        let mut classes = Vec::new();
        let mut cumulative = Vec::new();
        let mut total = 0u64;
        for class in &scenario.classes {
            let targets = class
                .paths
                .iter()
                .map(|p| {
                    let target = Target::new(
                        &format!("{base}{p}"),
                        class.method.as_str(),
                        &class.headers,
                        scenario.h2,
                    )?;
                    Ok(target.with_body(class.body.clone()))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            classes.push(targets);
            total += u64::from(class.weight);
            cumulative.push(total);
        }
        Ok(Self { classes, cumulative })
    }

    /// The class and target of request `n`. Paths within a class rotate.
    pub fn pick(&self, n: u64) -> (usize, &Target) {
        let total = *self.cumulative.last().expect("a scenario has classes");
        let r = mix(n) % total;
        let class = self.cumulative.partition_point(|&c| c <= r);
        let paths = &self.classes[class];
        (class, &paths[(mix(n ^ 0x5555) % paths.len() as u64) as usize])
    }
}

/// Everything one run of a scenario against one target measured.
pub struct Outcome {
    pub per_class: Vec<Stats>,
    pub timeline: Timeline,
    /// From the start to the last completion (or the planned end if none).
    pub elapsed: Duration,
    pub events: Vec<EventResult>,
}

pub struct Shared {
    pub plan: Plan,
    pub load: Load,
    pub timeout: Duration,
    pub site_header: Option<http::HeaderName>,
    pub start: Instant,
    pub end: Instant,
    next: AtomicU64,
    pub timeline: Mutex<Timeline>,
}

/// Runs `scenario` against `base`; `progress` prints a line per second.
pub async fn run(scenario: &Scenario, base: &str, progress: bool) -> anyhow::Result<Outcome> {
    let plan = Plan::new(scenario, base)?;
    let start = Instant::now();
    let shared = Arc::new(Shared {
        plan,
        load: scenario.load.clone(),
        timeout: scenario.timeout,
        site_header: scenario.site_header.clone(),
        start,
        end: start + scenario.load.duration(),
        next: AtomicU64::new(0),
        timeline: Mutex::new(Timeline::new(scenario.classes.len())),
    });
    let connections = match &scenario.load {
        Load::Open { connections, .. } | Load::Closed { connections, .. } => *connections,
    };
    let events = tokio::spawn(fire_events(scenario.events.clone(), start, shared.end, scenario.timeout));
    let ticker = progress.then(|| tokio::spawn(crate::progress::run(Arc::clone(&shared), scenario.clone())));
    let tasks: Vec<_> = (0..connections).map(|_| tokio::spawn(worker(Arc::clone(&shared)))).collect();
    let mut per_class = vec![Stats::new(); scenario.classes.len()];
    let mut last_done: Option<Instant> = None;
    for task in tasks {
        let (stats, last) = task.await?;
        for (total, s) in per_class.iter_mut().zip(&stats) {
            total.merge(s)?;
        }
        last_done = last_done.max(last);
    }
    if let Some(t) = ticker {
        t.abort();
    }
    let events = events.await?;
    if let Load::Open { schedule, .. } = &scenario.load {
        // Due before the end but never attempted: the target could not keep up.
        let attempted: u64 = per_class.iter().map(|s| s.requests() + s.errors.total()).sum();
        let unsent = schedule.due_before(schedule.duration()).saturating_sub(attempted);
        per_class[0].unsent += unsent;
    }
    let closed_at = last_done.unwrap_or(shared.end);
    // Taken out rather than unwrapping the Arc: the aborted progress task
    // may still hold its reference until the runtime drops it.
    let timeline = std::mem::replace(&mut *lock(&shared), Timeline::new(0));
    Ok(Outcome { per_class, timeline, elapsed: closed_at.saturating_duration_since(start), events })
}

/// The next request number and when it is due; `None` once the run is over.
async fn next_due(shared: &Shared) -> Option<(u64, Instant)> {
    let n = shared.next.fetch_add(1, Ordering::Relaxed);
    match &shared.load {
        Load::Closed { .. } => {
            let now = Instant::now();
            (now < shared.end).then_some((n, now))
        }
        Load::Open { schedule, .. } => {
            let due = shared.start + schedule.due(n)?;
            if due >= shared.end {
                return None;
            }
            tokio::time::sleep_until(due.into()).await;
            // An overdue request is still sent, but not after the end.
            (Instant::now() < shared.end).then_some((n, due))
        }
    }
}

async fn worker(shared: Arc<Shared>) -> (Vec<Stats>, Option<Instant>) {
    let mut stats = vec![Stats::new(); shared.plan.classes.len()];
    let mut last_done = None;
    let mut link = Link::default();
    let open = matches!(shared.load, Load::Open { .. });
    while let Some((n, due)) = next_due(&shared).await {
        let (class, target) = shared.plan.pick(n);
        let conn = match link.ready(target, shared.timeout).await {
            Ok((conn, replaced)) => {
                stats[class].reconnects += u64::from(replaced);
                conn
            }
            Err(kind) => {
                failed(&shared, &mut stats[class], class, kind);
                if !open {
                    let pause = shared.end.saturating_duration_since(Instant::now());
                    tokio::time::sleep(pause.min(CONNECT_BACKOFF)).await;
                }
                continue;
            }
        };
        let started = if open { due } else { Instant::now() };
        match exchange(conn, target, &shared).await {
            Ok(done) => {
                let latency = done.finished - started;
                stats[class].record_response(done.status, latency, done.body_bytes);
                let site = done.site.as_ref().and_then(|v| v.to_str().ok());
                let sample = Sample {
                    at: done.finished - shared.start,
                    class,
                    failed: done.status.is_server_error(),
                    latency: Some(latency),
                    site,
                };
                lock(&shared).record(&sample);
                last_done = Some(done.finished);
            }
            Err(kind) => {
                link.discard();
                failed(&shared, &mut stats[class], class, kind);
            }
        }
    }
    (stats, last_done)
}

async fn exchange(
    conn: &mut Conn,
    target: &Target,
    shared: &Shared,
) -> Result<crate::conn::Completed, ErrorKind> {
    let exchange = conn.exchange_site(target.request(), shared.site_header.as_ref());
    tokio::time::timeout(shared.timeout, exchange).await.unwrap_or(Err(ErrorKind::Timeout))
}

fn failed(shared: &Shared, stats: &mut Stats, class: usize, kind: ErrorKind) {
    stats.record_error(kind);
    let at = shared.start.elapsed();
    lock(shared).record(&Sample { at, class, failed: true, latency: None, site: None });
}

pub fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, Timeline> {
    // A panic elsewhere must not hide the measurements taken so far.
    shared.timeline.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_follows_the_weights() {
        let text = r#"
            target = "http://127.0.0.1:9"
            load = { mode = "closed", duration = "1s" }
            [[classes]]
            name = "a"
            weight = 3
            paths = ["/a1", "/a2"]
            [[classes]]
            name = "b"
            paths = ["/b"]
        "#;
        let scenario = crate::scenario::parse(text).unwrap();
        let plan = Plan::new(&scenario, "http://127.0.0.1:9").unwrap();
        let mut counts = [0u32; 2];
        let mut paths = std::collections::HashSet::new();
        for n in 0..10_000 {
            let (class, target) = plan.pick(n);
            counts[class] += 1;
            paths.insert(target.origin_form.to_string());
        }
        // 3:1 within a couple of percent; the mixing function is fixed, so
        // this is deterministic, not a statistical test that can flake.
        assert!((7300..=7700).contains(&counts[0]), "{counts:?}");
        assert_eq!(paths.len(), 3);
        assert_eq!(plan.pick(42).1.origin_form, plan.pick(42).1.origin_form);
    }
}
