//! The summary of a run: the numbers the benchmark script compares, as a
//! human table and as JSON.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::stats::{Errors, Stats, StatusClasses};

/// Describes how the load was generated, carried into the JSON so a result
/// file can be interpreted without the command line that produced it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RunInfo {
    pub url: String,
    pub method: String,
    pub connections: usize,
    pub h2: bool,
    /// Requests per second in open-loop mode; `None` is closed-loop.
    pub rate: Option<f64>,
    pub threads: usize,
}

/// Field names are the stable interface read by `proxy-bench.sh`.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub requests: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub mean_us: f64,
    pub status: StatusClasses,
    /// Total of `error_kinds`; kept scalar so consumers need not sum it.
    pub errors: u64,
    pub error_kinds: Errors,
    pub reconnects: u64,
    /// Open loop: requests that fell due but were never sent (see `Stats`).
    pub unsent: u64,
    pub body_bytes: u64,
    pub run: RunInfo,
}

impl Report {
    /// `elapsed` is the measured window only (warmup excluded), so `rps` is
    /// the rate of the recorded requests over the time they were recorded in.
    pub fn new(stats: &Stats, elapsed: Duration, run: RunInfo) -> Self {
        let h = &stats.latency_us;
        let requests = stats.requests();
        let seconds = elapsed.as_secs_f64();
        let rps = if seconds > 0.0 { requests as f64 / seconds } else { 0.0 };
        // An empty histogram reports 0 for every quantile, which is the honest
        // answer and keeps the JSON free of NaN (which serde_json rejects).
        let mean_us = if requests == 0 { 0.0 } else { h.mean() };
        Self {
            requests,
            seconds,
            rps,
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            mean_us,
            status: stats.status,
            errors: stats.errors.total(),
            error_kinds: stats.errors,
            reconnects: stats.reconnects,
            unsent: stats.unsent,
            body_bytes: stats.body_bytes,
            run,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("report holds only finite numbers and strings")
    }

    pub fn render_table(&self) -> String {
        let mut out = String::new();
        let mode = match self.run.rate {
            Some(rate) => format!("open loop at {rate} req/s"),
            None => "closed loop".to_string(),
        };
        let proto = if self.run.h2 { "h2c" } else { "http/1.1" };
        let _ = writeln!(out, "target      {} {}", self.run.method, self.run.url);
        let _ = writeln!(
            out,
            "load        {} connections, {proto}, {mode}, {} thread(s)",
            self.run.connections, self.run.threads
        );
        let _ = writeln!(out, "requests    {}", self.requests);
        let _ = writeln!(out, "duration    {:.3} s", self.seconds);
        let _ = writeln!(out, "throughput  {:.1} req/s", self.rps);
        let _ =
            writeln!(out, "latency     {:>9} {:>9} {:>9} {:>9} {:>9}", "p50", "p90", "p99", "p99.9", "max");
        let _ = writeln!(
            out,
            "  (ms)      {:>9} {:>9} {:>9} {:>9} {:>9}",
            ms(self.p50_us),
            ms(self.p90_us),
            ms(self.p99_us),
            ms(self.p999_us),
            ms(self.max_us)
        );
        let s = &self.status;
        let _ = writeln!(
            out,
            "status      2xx {}  3xx {}  4xx {}  5xx {}  other {}",
            s.s2xx, s.s3xx, s.s4xx, s.s5xx, s.other
        );
        let e = &self.error_kinds;
        let _ = writeln!(
            out,
            "errors      {} (connect {}, io {}, timeout {}), reconnects {}",
            self.errors, e.connect, e.io, e.timeout, self.reconnects
        );
        if self.run.rate.is_some() {
            let _ = writeln!(out, "unsent      {} (fell due but the target was too slow)", self.unsent);
        }
        out
    }
}

fn ms(micros: u64) -> String {
    format!("{:.3}", micros as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    fn stats_1_to_1000_us() -> Stats {
        let mut stats = Stats::new();
        for us in 1..=1000 {
            stats.record_response(StatusCode::OK, Duration::from_micros(us), 0);
        }
        stats
    }

    #[test]
    fn percentiles_of_a_uniform_distribution() {
        let report = Report::new(&stats_1_to_1000_us(), Duration::from_secs(2), RunInfo::default());
        assert_eq!(report.requests, 1000);
        assert_eq!(report.p50_us, 500);
        assert_eq!(report.p90_us, 900);
        assert_eq!(report.p99_us, 990);
        assert_eq!(report.p999_us, 999);
        assert_eq!(report.max_us, 1000);
        assert!((report.mean_us - 500.5).abs() < 0.5, "mean {}", report.mean_us);
        assert!((report.rps - 500.0).abs() < 1e-9);
        assert_eq!(report.status.s2xx, 1000);
    }

    #[test]
    fn percentiles_see_the_tail() {
        // 99 fast requests and one slow one: p99 must still be fast, max slow.
        let mut stats = Stats::new();
        for _ in 0..99 {
            stats.record_response(StatusCode::OK, Duration::from_micros(100), 0);
        }
        stats.record_response(StatusCode::OK, Duration::from_millis(50), 0);
        let report = Report::new(&stats, Duration::from_secs(1), RunInfo::default());
        assert_eq!(report.p50_us, 100);
        assert_eq!(report.p99_us, 100);
        assert!(report.p999_us >= 49_950, "p99.9 {}", report.p999_us);
        assert!(report.max_us.abs_diff(50_000) <= 50, "max {}", report.max_us);
    }

    #[test]
    fn empty_run_is_all_zero_and_serialises() {
        let report = Report::new(&Stats::new(), Duration::ZERO, RunInfo::default());
        assert_eq!((report.requests, report.p99_us, report.max_us), (0, 0, 0));
        assert_eq!(report.rps, 0.0);
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(json["requests"], 0);
        assert_eq!(json["status"]["2xx"], 0);
        assert_eq!(json["errors"], 0);
    }

    #[test]
    fn json_has_the_documented_keys() {
        let mut stats = stats_1_to_1000_us();
        stats.record_error(crate::stats::ErrorKind::Io);
        let report = Report::new(&stats, Duration::from_secs(1), RunInfo::default());
        let json: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        for key in ["requests", "seconds", "rps", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "errors"]
        {
            assert!(json.get(key).is_some_and(|v| v.is_number()), "missing {key}");
        }
        for class in ["2xx", "3xx", "4xx", "5xx"] {
            assert!(json["status"][class].is_number(), "missing status {class}");
        }
        assert_eq!(json["errors"], 1);
        assert_eq!(json["p99_us"], 990);
        let table = report.render_table();
        assert!(table.contains("1000.0 req/s"), "{table}");
        assert!(table.contains("0.990"), "{table}");
    }
}
