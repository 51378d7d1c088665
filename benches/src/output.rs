//! A scenario run's results for one target: per request class and in total,
//! as a table, CSV and JSON (the SVG plot is in `svg`).

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

use crate::events::EventResult;
use crate::failover::{analyse, FailoverReport};
use crate::runner::Outcome;
use crate::scenario::Scenario;
use crate::stats::{Errors, Stats, StatusClasses};
use crate::timeline::Second;

#[derive(Clone, Debug, Serialize)]
pub struct ClassRow {
    pub class: String,
    pub requests: u64,
    pub rps: f64,
    pub p50_us: u64,
    pub p90_us: u64,
    pub p99_us: u64,
    pub p999_us: u64,
    pub max_us: u64,
    pub status: StatusClasses,
    pub errors: u64,
    pub error_kinds: Errors,
}

impl ClassRow {
    pub fn new(class: &str, stats: &Stats, elapsed: Duration) -> Self {
        let h = &stats.latency_us;
        let seconds = elapsed.as_secs_f64();
        Self {
            class: class.to_string(),
            requests: stats.requests(),
            rps: if seconds > 0.0 { stats.requests() as f64 / seconds } else { 0.0 },
            p50_us: h.value_at_quantile(0.50),
            p90_us: h.value_at_quantile(0.90),
            p99_us: h.value_at_quantile(0.99),
            p999_us: h.value_at_quantile(0.999),
            max_us: h.max(),
            status: stats.status,
            errors: stats.errors.total(),
            error_kinds: stats.errors,
        }
    }
}

/// Field names are the stable JSON interface.
#[derive(Clone, Debug, Serialize)]
pub struct TargetResult {
    pub scenario: String,
    pub target: String,
    pub url: String,
    pub seconds: f64,
    pub classes: Vec<ClassRow>,
    pub total: ClassRow,
    /// Open loop: due before the end but never sent (target too slow).
    pub unsent: u64,
    pub reconnects: u64,
    pub events: Vec<EventResult>,
    pub failover: Option<FailoverReport>,
    pub class_names: Vec<String>,
    pub timeline: Vec<Second>,
    /// Intended rate per second (open loop), for the plot.
    pub planned_rate: Vec<f64>,
}

impl TargetResult {
    pub fn new(scenario: &Scenario, target: &str, url: &str, outcome: &Outcome) -> anyhow::Result<Self> {
        let mut total = Stats::new();
        for s in &outcome.per_class {
            total.merge(s)?;
        }
        let classes = scenario
            .classes
            .iter()
            .zip(&outcome.per_class)
            .map(|(c, s)| ClassRow::new(&c.name, s, outcome.elapsed))
            .collect();
        let planned_secs = scenario.load.duration().as_secs_f64().ceil() as usize;
        let planned_rate = match &scenario.load {
            crate::scenario::Load::Open { schedule, .. } => {
                (0..planned_secs).map(|s| schedule.rate_at(Duration::from_secs_f64(s as f64 + 0.5))).collect()
            }
            crate::scenario::Load::Closed { .. } => Vec::new(),
        };
        Ok(Self {
            scenario: scenario.name.clone(),
            target: target.to_string(),
            url: url.to_string(),
            seconds: outcome.elapsed.as_secs_f64(),
            classes,
            total: ClassRow::new("total", &total, outcome.elapsed),
            unsent: total.unsent,
            reconnects: total.reconnects,
            events: outcome.events.clone(),
            failover: scenario.failover.as_ref().and_then(|f| analyse(f, &outcome.events, &outcome.timeline)),
            class_names: scenario.classes.iter().map(|c| c.name.clone()).collect(),
            timeline: outcome.timeline.seconds(planned_secs),
            planned_rate,
        })
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("only finite numbers and strings")
    }

    pub fn render_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "scenario {}  target {} ({})  {:.3} s",
            self.scenario, self.target, self.url, self.seconds
        );
        let _ = writeln!(
            out,
            "{:<12} {:>8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6} {:>6}",
            "class",
            "requests",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9",
            "max ms",
            "2xx",
            "3xx",
            "4xx",
            "5xx",
            "errors"
        );
        for row in self.classes.iter().chain(std::iter::once(&self.total)) {
            let s = &row.status;
            let _ =
                writeln!(
                out,
                "{:<12} {:>8} {:>9.1} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>6} {:>6} {:>6} {:>6} {:>6}",
                row.class, row.requests, row.rps, ms(row.p50_us), ms(row.p90_us), ms(row.p99_us),
                ms(row.p999_us), ms(row.max_us), s.s2xx, s.s3xx, s.s4xx, s.s5xx + s.other, row.errors
            );
        }
        let e = &self.total.error_kinds;
        let _ = writeln!(
            out,
            "errors: connect {} io {} timeout {}; reconnects {}; unsent {}",
            e.connect, e.io, e.timeout, self.reconnects, self.unsent
        );
        for ev in &self.events {
            let sent = ev.sent_ms.map_or("-".into(), |s| format!("{:.3} s", s as f64 / 1000.0));
            let _ = writeln!(
                out,
                "event {} at {:.3} s: sent {sent}, {}",
                ev.name,
                ev.at_ms as f64 / 1000.0,
                ev.outcome
            );
        }
        if let Some(f) = &self.failover {
            render_failover(&mut out, f);
            self.render_seconds(&mut out);
        }
        out
    }

    /// The per-second timeline, for runs where what happened when matters.
    fn render_seconds(&self, out: &mut String) {
        let _ =
            writeln!(out, "{:>6} {:>9} {:>7} {:>9}  served by", "second", "completed", "failed", "p99 ms");
        for r in &self.timeline {
            let sites: Vec<String> =
                r.by_site.iter().filter(|(_, n)| *n > 0).map(|(s, n)| format!("{s}={n}")).collect();
            let _ = writeln!(
                out,
                "{:>6} {:>9} {:>7} {:>9.3}  {}",
                r.second,
                r.completed,
                r.failed,
                ms(r.p99_us),
                sites.join(" ")
            );
        }
    }

    /// Per-class summary rows.
    pub fn classes_csv(&self) -> String {
        let mut out = String::from(
            "target,class,requests,rps,p50_us,p90_us,p99_us,p999_us,max_us,2xx,3xx,4xx,5xx,other,errors\n",
        );
        for r in self.classes.iter().chain(std::iter::once(&self.total)) {
            let s = &r.status;
            let _ = writeln!(
                out,
                "{},{},{},{:.3},{},{},{},{},{},{},{},{},{},{},{}",
                csv_field(&self.target),
                csv_field(&r.class),
                r.requests,
                r.rps,
                r.p50_us,
                r.p90_us,
                r.p99_us,
                r.p999_us,
                r.max_us,
                s.s2xx,
                s.s3xx,
                s.s4xx,
                s.s5xx,
                s.other,
                r.errors
            );
        }
        out
    }

    /// One row per second: completions, failures, latency, per class and site.
    pub fn timeline_csv(&self) -> String {
        let sites: Vec<&String> =
            self.timeline.first().map(|r| r.by_site.iter().map(|(n, _)| n).collect()).unwrap_or_default();
        let mut out = String::from("second,completed,failed,p50_us,p99_us,max_us");
        for c in &self.class_names {
            let _ = write!(out, ",class:{}", csv_field(c));
        }
        for s in &sites {
            let _ = write!(out, ",site:{}", csv_field(s));
        }
        out.push('\n');
        for r in &self.timeline {
            let _ = write!(
                out,
                "{},{},{},{},{},{}",
                r.second, r.completed, r.failed, r.p50_us, r.p99_us, r.max_us
            );
            for n in &r.by_class {
                let _ = write!(out, ",{n}");
            }
            for (_, n) in &r.by_site {
                let _ = write!(out, ",{n}");
            }
            out.push('\n');
        }
        out
    }
}

fn render_failover(out: &mut String, f: &FailoverReport) {
    let opt = |v: Option<u64>| v.map_or("never".to_string(), |ms| format!("{ms} ms"));
    let _ = writeln!(out, "failover: home down at {:.3} s", f.down_at_ms as f64 / 1000.0);
    let _ = writeln!(out, "  time to first response from another site  {}", opt(f.first_other_site_ms));
    let _ = writeln!(out, "  failed requests until then                {}", f.failed_until_other_site);
    let _ = writeln!(out, "  failed requests while home was down       {}", f.failed_while_down);
    let _ = writeln!(out, "  time to recover (other site, no failures) {}", opt(f.recovered_ms));
    let _ = writeln!(out, "  failed requests before home went down     {}", f.failed_before_down);
    if f.up_at_ms.is_some() {
        let _ = writeln!(out, "  home up -> first home-served response     {}", opt(f.back_home_ms));
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Quotes a CSV field when it holds a separator, quote or newline (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::StatusCode;

    #[test]
    fn class_row_percentiles_of_a_uniform_distribution() {
        let mut stats = Stats::new();
        for us in 1..=1000 {
            stats.record_response(StatusCode::OK, Duration::from_micros(us), 0);
        }
        stats.record_error(crate::stats::ErrorKind::Timeout);
        let row = ClassRow::new("read", &stats, Duration::from_secs(4));
        assert_eq!((row.p50_us, row.p90_us, row.p99_us, row.p999_us, row.max_us), (500, 900, 990, 999, 1000));
        assert_eq!((row.requests, row.errors), (1000, 1));
        assert!((row.rps - 250.0).abs() < 1e-9);
    }

    #[test]
    fn csv_fields_are_quoted_only_when_needed() {
        assert_eq!(csv_field("read"), "read");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
