//! What happened when: completions in 1 ms slots (ok, failed, by serving
//! site) and per-second latency, for the plot, the per-second table and the
//! failover analysis.
//!
//! Shared behind one mutex: the default runtime is single-threaded, so the
//! lock is never contended there, and at tens of thousands of requests per
//! second one uncontended lock per response is noise next to the syscalls.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Resolution of the failover timings.
pub const SLOT: Duration = Duration::from_millis(1);
const SLOTS_PER_SECOND: usize = 1000;

/// One response or failure, as the timeline sees it.
pub struct Sample<'a> {
    /// Completion time, from the start of the run.
    pub at: Duration,
    pub class: usize,
    pub failed: bool,
    /// `None` for a failure without a response.
    pub latency: Option<Duration>,
    pub site: Option<&'a str>,
}

#[derive(Debug)]
pub struct Timeline {
    classes: usize,
    ok: Vec<u32>,
    failed: Vec<u32>,
    /// Site name and its completions per slot.
    sites: Vec<(String, Vec<u32>)>,
    /// Per second: latency of completed responses (2 significant digits is
    /// plenty for a plot and keeps 600 of them small).
    latency: Vec<Histogram<u64>>,
    /// Per second and class: completions (ok or failed).
    by_class: Vec<Vec<u32>>,
}

/// One row of the per-second timeline.
#[derive(Clone, Debug, Serialize)]
pub struct Second {
    pub second: usize,
    pub completed: u32,
    pub failed: u32,
    pub p50_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// Completions per class, in scenario order.
    pub by_class: Vec<u32>,
    /// Completions per serving site (sites seen in the whole run).
    pub by_site: Vec<(String, u32)>,
}

fn bump(v: &mut Vec<u32>, i: usize) {
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    v[i] += 1;
}

impl Timeline {
    pub fn new(classes: usize) -> Self {
        Self {
            classes,
            ok: Vec::new(),
            failed: Vec::new(),
            sites: Vec::new(),
            latency: Vec::new(),
            by_class: Vec::new(),
        }
    }

    pub fn record(&mut self, s: &Sample<'_>) {
        let slot = (s.at.as_millis() / SLOT.as_millis()) as usize;
        bump(if s.failed { &mut self.failed } else { &mut self.ok }, slot);
        if let Some(site) = s.site {
            let i = match self.sites.iter().position(|(n, _)| n == site) {
                Some(i) => i,
                None => {
                    self.sites.push((site.to_string(), Vec::new()));
                    self.sites.len() - 1
                }
            };
            bump(&mut self.sites[i].1, slot);
        }
        let second = slot / SLOTS_PER_SECOND;
        while self.by_class.len() <= second {
            self.by_class.push(vec![0; self.classes]);
            self.latency.push(Histogram::new(2).expect("2 significant digits is valid"));
        }
        self.by_class[second][s.class] += 1;
        if let Some(latency) = s.latency {
            let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
            // `record` grows the auto-resizing histogram; `saturating_record`
            // alone would clamp to its initial (tiny) range.
            let h = &mut self.latency[second];
            if h.record(us.max(1)).is_err() {
                h.saturating_record(us.max(1));
            }
        }
    }

    /// Number of 1 ms slots up to the last that saw anything.
    pub fn slots(&self) -> usize {
        let site_len = self.sites.iter().map(|(_, v)| v.len()).max().unwrap_or(0);
        self.ok.len().max(self.failed.len()).max(site_len)
    }

    pub fn failed_at(&self, slot: usize) -> u32 {
        self.failed.get(slot).copied().unwrap_or(0)
    }

    /// Completions served by `site` in `slot`.
    pub fn site_at(&self, site: &str, slot: usize) -> u32 {
        self.sites.iter().find(|(n, _)| n == site).and_then(|(_, v)| v.get(slot).copied()).unwrap_or(0)
    }

    /// Completions in `slot` served by a site other than `site`.
    pub fn other_sites_at(&self, site: &str, slot: usize) -> u32 {
        self.sites.iter().filter(|(n, _)| n != site).map(|(_, v)| v.get(slot).copied().unwrap_or(0)).sum()
    }

    pub fn site_names(&self) -> Vec<String> {
        self.sites.iter().map(|(n, _)| n.clone()).collect()
    }

    fn sum(v: &[u32], second: usize) -> u32 {
        let from = (second * SLOTS_PER_SECOND).min(v.len());
        let to = ((second + 1) * SLOTS_PER_SECOND).min(v.len());
        v[from..to].iter().sum()
    }

    /// One row per second from 0 to the last second that saw a completion
    /// (or `at_least` seconds, so a dead target still shows its empty rows).
    pub fn seconds(&self, at_least: usize) -> Vec<Second> {
        let n = self.slots().div_ceil(SLOTS_PER_SECOND).max(at_least);
        (0..n)
            .map(|second| {
                let h = self.latency.get(second).filter(|h| !h.is_empty());
                let q = |q: f64| h.map_or(0, |h| h.value_at_quantile(q));
                let failed = Self::sum(&self.failed, second);
                Second {
                    second,
                    completed: Self::sum(&self.ok, second) + failed,
                    failed,
                    p50_us: q(0.50),
                    p99_us: q(0.99),
                    max_us: h.map_or(0, |h| h.max()),
                    by_class: self.by_class.get(second).cloned().unwrap_or_else(|| vec![0; self.classes]),
                    by_site: self
                        .sites
                        .iter()
                        .map(|(name, v)| (name.clone(), Self::sum(v, second)))
                        .collect(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(ms: u64, failed: bool, site: Option<&str>) -> Sample<'_> {
        Sample {
            at: Duration::from_millis(ms),
            class: 0,
            failed,
            latency: Some(Duration::from_millis(2)),
            site,
        }
    }

    #[test]
    fn seconds_add_up_slots_and_sites() {
        let mut t = Timeline::new(1);
        t.record(&sample(5, false, Some("home")));
        t.record(&sample(995, false, Some("home")));
        t.record(&sample(1_001, true, None));
        t.record(&sample(1_500, false, Some("embassy-lu")));
        let rows = t.seconds(3);
        assert_eq!(rows.len(), 3);
        assert_eq!((rows[0].completed, rows[0].failed), (2, 0));
        assert_eq!((rows[1].completed, rows[1].failed), (2, 1));
        assert_eq!(rows[1].by_site, vec![("home".to_string(), 0), ("embassy-lu".to_string(), 1)]);
        assert_eq!(rows[2].completed, 0);
        assert_eq!(t.failed_at(1_001), 1);
        assert_eq!(t.other_sites_at("home", 1_500), 1);
        assert!(rows[0].p99_us.abs_diff(2_000) <= 20, "{}", rows[0].p99_us);
    }
}
