//! Plugin metrics, registered in the gateway's Prometheus registry.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use super::host::MetricOp;

#[derive(Clone)]
pub struct PluginMetrics {
    /// registry, plugin, hook, outcome (ok, skipped, trap, timeout, memory, ...).
    pub calls: IntCounterVec,
    /// registry, plugin, hook: instantiate + call.
    pub duration: HistogramVec,
    /// plugin, name: counters plugins keep through the `metrics` capability.
    custom_counters: IntCounterVec,
    /// plugin, name.
    custom_histograms: HistogramVec,
}

impl PluginMetrics {
    pub fn new(r: &Registry) -> PluginMetrics {
        let calls = IntCounterVec::new(
            Opts::new("plugin_calls_total", "Plugin hook calls by outcome"),
            &["registry", "plugin", "hook", "outcome"],
        )
        .expect("metric definition is valid");
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "plugin_call_duration_seconds",
                "Plugin hook call time, instantiation included",
            )
            .buckets(vec![5e-6, 1e-5, 2e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.025, 0.1]),
            &["registry", "plugin", "hook"],
        )
        .expect("metric definition is valid");
        let custom_counters = IntCounterVec::new(
            Opts::new("plugin_counter_total", "Counters kept by plugins (metrics capability)"),
            &["plugin", "name"],
        )
        .expect("metric definition is valid");
        let custom_histograms = HistogramVec::new(
            HistogramOpts::new("plugin_histogram", "Histograms kept by plugins (metrics capability)"),
            &["plugin", "name"],
        )
        .expect("metric definition is valid");
        for c in [&calls, &custom_counters] {
            r.register(Box::new(c.clone())).expect("metric names are unique");
        }
        for h in [&duration, &custom_histograms] {
            r.register(Box::new(h.clone())).expect("metric names are unique");
        }
        PluginMetrics { calls, duration, custom_counters, custom_histograms }
    }

    pub fn apply(&self, plugin: &str, ops: Vec<MetricOp>) {
        for op in ops {
            match op {
                MetricOp::Count(name, n) => {
                    self.custom_counters.with_label_values(&[plugin, &name]).inc_by(n)
                }
                MetricOp::Observe(name, v) => {
                    self.custom_histograms.with_label_values(&[plugin, &name]).observe(v)
                }
            }
        }
    }
}
