//! Metrics of admission, queueing, spill-over and the cache. Registered in
//! the gateway's Prometheus registry (names get its `gateway_` prefix).

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

#[derive(Clone)]
pub struct BurstMetrics {
    /// registry, class, outcome (admitted, rate_limited, shed reasons).
    pub admission: IntCounterVec,
    /// registry, site, class: time waited for a concurrency slot.
    pub queue_wait: HistogramVec,
    /// registry, site: reads sent to an embassy because home was saturated.
    pub spill: IntCounterVec,
    /// registry, outcome (hit, miss, stale, stale_if_error, coalesced, bypass, stored).
    pub cache_lookups: IntCounterVec,
}

impl BurstMetrics {
    pub fn new(r: &Registry) -> BurstMetrics {
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric definition is valid");
            r.register(Box::new(c.clone())).expect("metric names are unique");
            c
        };
        let queue_wait = HistogramVec::new(
            HistogramOpts::new("queue_wait_seconds", "Time requests waited for a concurrency slot")
                .buckets(vec![0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            &["registry", "site", "class"],
        )
        .expect("metric definition is valid");
        r.register(Box::new(queue_wait.clone())).expect("metric names are unique");
        BurstMetrics {
            admission: counter(
                "admission_total",
                "Admission decisions by registry, priority class and outcome",
                &["registry", "class", "outcome"],
            ),
            queue_wait,
            spill: counter(
                "spill_total",
                "Requests sent to an embassy because home was saturated",
                &["registry", "site"],
            ),
            cache_lookups: counter(
                "cache_lookups_total",
                "Response cache lookups by registry and outcome",
                &["registry", "outcome"],
            ),
        }
    }
}
