//! Prometheus metrics. One registry per gateway (so tests running side by
//! side in one process count apart), served by the admin listener at
//! `/metrics`. Names follow Prometheus conventions: `_total` counters,
//! `_seconds` histograms, base units.
//!
//! Gauges that describe state (backend health, continuity state) are read
//! from the live state at scrape time rather than kept in step by hand, so
//! they cannot drift.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

use crate::sites::backend::now_ms;
use crate::sites::RegistrySites;

/// Clone: the series are shared handles; a background cache refresh
/// carries a copy.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// registry, site, method, class (2xx..5xx).
    pub requests: IntCounterVec,
    /// registry, site: whole exchange until the response head is sent.
    pub duration: HistogramVec,
    /// registry, site, kind (the RFC 9209 error type).
    pub upstream_errors: IntCounterVec,
    /// registry, kind: errors the gateway answered itself, by fault.
    pub gateway_errors: IntCounterVec,
    /// registry
    pub retries: IntCounterVec,
    pub retry_budget_exhausted: IntCounterVec,
    pub continuity_changes: IntCounterVec,
    backend_healthy: IntGaugeVec,
    backend_usable: IntGaugeVec,
    continuity_state: IntGaugeVec,
    pub config_reloads: IntCounterVec,
    pub config_generation: IntGauge,
    /// Admission, queue, spill-over and cache (issue 5).
    pub burst: crate::burst::metrics::BurstMetrics,
    /// Plugin calls, failures, durations, and plugins' own metrics.
    pub plugins: crate::plugin::metrics::PluginMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels).expect("metric definition is valid");
    r.register(Box::new(c.clone())).expect("metric names are unique");
    c
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("metric definition is valid");
    r.register(Box::new(g.clone())).expect("metric names are unique");
    g
}

impl Metrics {
    pub fn new() -> Metrics {
        let r = Registry::new_custom(Some("gateway".into()), None).expect("prefix is valid");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "request_duration_seconds",
                "Time from request to response head, by registry and site",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["registry", "site"],
        )
        .expect("metric definition is valid");
        r.register(Box::new(duration.clone())).expect("metric names are unique");
        let build = gauge(&r, "build_info", "Build of the running gateway", &["version"]);
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let generation =
            IntGauge::new("config_generation", "Configuration generation serving now (1 = as started)")
                .expect("metric definition is valid");
        r.register(Box::new(generation.clone())).expect("metric names are unique");
        Metrics {
            requests: counter(
                &r,
                "requests_total",
                "Requests answered",
                &["registry", "site", "method", "class"],
            ),
            duration,
            upstream_errors: counter(
                &r,
                "upstream_errors_total",
                "Failed attempts at a site: connect errors, resets, timeouts",
                &["registry", "site", "kind"],
            ),
            gateway_errors: counter(
                &r,
                "gateway_errors_total",
                "Errors the gateway answered itself, by whose fault",
                &["registry", "fault", "kind"],
            ),
            retries: counter(&r, "retries_total", "Requests sent again to another site", &["registry"]),
            retry_budget_exhausted: counter(
                &r,
                "retry_budget_exhausted_total",
                "Retries skipped because the budget was spent",
                &["registry"],
            ),
            continuity_changes: counter(
                &r,
                "continuity_changes_total",
                "Continuity state changes",
                &["registry"],
            ),
            backend_healthy: gauge(
                &r,
                "backend_healthy",
                "1 when active checks pass",
                &["registry", "site", "backend"],
            ),
            backend_usable: gauge(
                &r,
                "backend_usable",
                "1 when healthy and not ejected",
                &["registry", "site", "backend"],
            ),
            continuity_state: gauge(
                &r,
                "continuity_state",
                "1 for the state a registry is in",
                &["registry", "state"],
            ),
            config_reloads: counter(&r, "config_reloads_total", "Configuration reloads", &["result"]),
            config_generation: generation,
            burst: crate::burst::metrics::BurstMetrics::new(&r),
            plugins: crate::plugin::metrics::PluginMetrics::new(&r),
            registry: r,
        }
    }

    /// The exposition text, with state gauges read from `sites` now.
    pub fn render<'a>(&self, sites: impl Iterator<Item = &'a RegistrySites>) -> String {
        self.backend_healthy.reset();
        self.backend_usable.reset();
        self.continuity_state.reset();
        let now = now_ms();
        for s in sites {
            let registry = &*s.registry.name;
            let state = s.state_label();
            self.continuity_state.with_label_values(&[registry, &state]).set(1);
            for pool in &s.pools {
                for b in &pool.backends {
                    let labels = [registry, &*pool.spec.name, b.addr.as_str()];
                    self.backend_healthy.with_label_values(&labels).set(i64::from(b.healthy()));
                    self.backend_usable.with_label_values(&labels).set(i64::from(b.usable(now)));
                }
            }
        }
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

const METHODS: [&str; 8] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"];
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn method_index(m: &http::Method) -> usize {
    match *m {
        http::Method::GET => 0,
        http::Method::HEAD => 1,
        http::Method::POST => 2,
        http::Method::PUT => 3,
        http::Method::PATCH => 4,
        http::Method::DELETE => 5,
        http::Method::OPTIONS => 6,
        _ => 7,
    }
}

fn class_index(status: http::StatusCode) -> usize {
    (status.as_u16() / 100).clamp(1, 5) as usize - 1
}

/// A bounded label for a method, so clients cannot mint label values.
pub fn method_label(m: &http::Method) -> &'static str {
    METHODS[method_index(m)]
}

pub fn status_class(status: http::StatusCode) -> &'static str {
    CLASSES[class_index(status)]
}

/// One registry's request series, looked up once and then reused: label
/// hashing on every request costs more than the rest of the bookkeeping.
#[derive(Debug)]
pub struct RegistryMetrics {
    registry: std::sync::Arc<str>,
    sites: Vec<std::sync::Arc<str>>,
    requests: Vec<std::sync::OnceLock<prometheus::IntCounter>>,
    duration: Vec<std::sync::OnceLock<prometheus::Histogram>>,
}

impl RegistryMetrics {
    pub fn new(registry: std::sync::Arc<str>, sites: Vec<std::sync::Arc<str>>) -> RegistryMetrics {
        let slots = sites.len() + 1;
        RegistryMetrics {
            registry,
            sites,
            requests: (0..slots * METHODS.len() * CLASSES.len())
                .map(|_| std::sync::OnceLock::new())
                .collect(),
            duration: (0..slots).map(|_| std::sync::OnceLock::new()).collect(),
        }
    }

    /// Counts one answered request; `site` is an index, `None` when no
    /// site was reached.
    pub fn record(
        &self,
        m: &Metrics,
        site: Option<usize>,
        method: &http::Method,
        status: http::StatusCode,
        secs: f64,
    ) {
        let slot = site.filter(|&s| s < self.sites.len()).unwrap_or(self.sites.len());
        let site_label = self.sites.get(slot).map_or("none", |s| &**s);
        let (mi, ci) = (method_index(method), class_index(status));
        let i = (slot * METHODS.len() + mi) * CLASSES.len() + ci;
        self.requests[i]
            .get_or_init(|| {
                m.requests.with_label_values(&[&*self.registry, site_label, METHODS[mi], CLASSES[ci]])
            })
            .inc();
        self.duration[slot]
            .get_or_init(|| m.duration.with_label_values(&[&*self.registry, site_label]))
            .observe(secs);
    }
}
