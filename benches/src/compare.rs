//! Side by side: one scenario against several targets, each total compared
//! with the baseline (the backend reached directly) from the same run.

use std::fmt::Write as _;

use serde::Serialize;

use crate::output::TargetResult;

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub target: String,
    pub requests: u64,
    pub rps: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub failed: u64,
    /// This target's req/s over the baseline's.
    pub rps_ratio: Option<f64>,
    /// This target's p99 over the baseline's.
    pub p99_ratio: Option<f64>,
}

/// Rows in run order; `baseline` defaults to a target named "direct", else the first.
pub fn compare(results: &[TargetResult], baseline: Option<&str>) -> (String, Vec<Row>) {
    let base = baseline
        .and_then(|b| results.iter().find(|r| r.target == b))
        .or_else(|| results.iter().find(|r| r.target == "direct"))
        .or(results.first());
    let ratio = |a: f64, b: f64| (b > 0.0).then(|| a / b);
    let rows: Vec<Row> = results
        .iter()
        .map(|r| Row {
            target: r.target.clone(),
            requests: r.total.requests,
            rps: r.total.rps,
            p50_us: r.total.p50_us,
            p99_us: r.total.p99_us,
            failed: r.total.errors + r.total.status.s5xx + r.total.status.other,
            rps_ratio: base.and_then(|b| ratio(r.total.rps, b.total.rps)),
            p99_ratio: base.and_then(|b| ratio(r.total.p99_us as f64, b.total.p99_us as f64)),
        })
        .collect();
    (render(&rows, base.map(|b| b.target.as_str())), rows)
}

fn render(rows: &[Row], base: Option<&str>) -> String {
    let mut out = format!("side by side, ratios to {:?}\n", base.unwrap_or("-"));
    let _ = writeln!(
        out,
        "{:<12} {:>9} {:>10} {:>8} {:>8} {:>9} {:>9} {:>7}",
        "target", "requests", "req/s", "p50 ms", "p99 ms", "req/s x", "p99 x", "failed"
    );
    let fmt = |r: Option<f64>| r.map_or("-".into(), |r| format!("{r:.2}x"));
    for r in rows {
        let _ = writeln!(
            out,
            "{:<12} {:>9} {:>10.1} {:>8.3} {:>8.3} {:>9} {:>9} {:>7}",
            r.target,
            r.requests,
            r.rps,
            r.p50_us as f64 / 1000.0,
            r.p99_us as f64 / 1000.0,
            fmt(r.rps_ratio),
            fmt(r.p99_ratio),
            r.failed
        );
    }
    out
}
