//! A small hand-written SVG writer: throughput (completed, failed, planned
//! rate) and latency (p50, p99) per second, one panel each.
//!
//! Hand-written rather than `plotters`: two line charts need ~150 lines,
//! while plotters (even with only the SVG backend) adds several crates to a
//! tool that must build fast on a shared 2-core machine.

use std::fmt::Write as _;

use crate::output::TargetResult;

const WIDTH: f64 = 900.0;
const PANEL: f64 = 260.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const GAP: f64 = 60.0;

struct Series<'a> {
    label: &'a str,
    colour: &'a str,
    /// Dashed: the plan drawn under the measurement, which stays visible.
    dashed: bool,
    points: Vec<f64>,
}

/// Escapes text for SVG (XML) content and attributes.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A round axis maximum at or above `max` (1, 2 or 5 times a power of ten).
pub fn nice_max(max: f64) -> f64 {
    if max <= 0.0 || !max.is_finite() {
        return 1.0;
    }
    let pow = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * pow).find(|v| *v >= max).unwrap_or(10.0 * pow)
}

pub fn render(r: &TargetResult) -> String {
    let height = TOP + 2.0 * PANEL + GAP + 50.0;
    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(out, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let title = format!("{} against {} ({})", r.scenario, r.target, r.url);
    let _ = writeln!(out, r#"<text x="{LEFT}" y="20" font-size="14">{}</text>"#, escape(&title));
    let throughput = vec![
        Series { label: "planned/s", colour: "#999999", dashed: true, points: r.planned_rate.clone() },
        Series {
            label: "completed/s",
            colour: "#1f77b4",
            dashed: false,
            points: r.timeline.iter().map(|s| f64::from(s.completed)).collect(),
        },
        Series {
            label: "failed/s",
            colour: "#d62728",
            dashed: false,
            points: r.timeline.iter().map(|s| f64::from(s.failed)).collect(),
        },
    ];
    panel(&mut out, TOP, "requests per second", &throughput, r.timeline.len());
    let latency = vec![
        Series {
            label: "p50 ms",
            colour: "#2ca02c",
            dashed: false,
            points: r.timeline.iter().map(|s| s.p50_us as f64 / 1000.0).collect(),
        },
        Series {
            label: "p99 ms",
            colour: "#ff7f0e",
            dashed: false,
            points: r.timeline.iter().map(|s| s.p99_us as f64 / 1000.0).collect(),
        },
    ];
    panel(&mut out, TOP + PANEL + GAP, "latency (ms)", &latency, r.timeline.len());
    for ev in r.events.iter().filter(|e| e.sent_ms.is_some()) {
        let x = x_of(ev.sent_ms.unwrap_or(0) as f64 / 1000.0, r.timeline.len());
        let _ = writeln!(
            out,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#9467bd" stroke-dasharray="4 3"/><text x="{:.1}" y="{:.1}" fill="#9467bd">{}</text>"##,
            TOP + 2.0 * PANEL + GAP,
            x + 3.0,
            TOP + 12.0,
            escape(&ev.name)
        );
    }
    out.push_str("</svg>\n");
    out
}

fn x_of(second: f64, seconds: usize) -> f64 {
    LEFT + (WIDTH - LEFT - RIGHT) * second / (seconds.max(1) as f64)
}

fn panel(out: &mut String, top: f64, title: &str, series: &[Series<'_>], seconds: usize) {
    let max = nice_max(series.iter().flat_map(|s| s.points.iter().copied()).fold(0.0, f64::max));
    let y_of = |v: f64| top + PANEL - PANEL * v / max;
    let right = WIDTH - RIGHT;
    let _ = writeln!(
        out,
        r##"<rect x="{LEFT}" y="{top}" width="{}" height="{PANEL}" fill="none" stroke="#333"/>"##,
        right - LEFT
    );
    let _ = writeln!(out, r#"<text x="{LEFT}" y="{:.1}">{}</text>"#, top - 6.0, escape(title));
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let y = y_of(v);
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{right}" y2="{y:.1}" stroke="#eee"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 4.0,
            y + 4.0,
            trim(v)
        );
    }
    let step = (seconds / 10).max(1);
    for s in (0..=seconds).step_by(step) {
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{s}s</text>"#,
            x_of(s as f64, seconds),
            top + PANEL + 16.0
        );
    }
    for (i, s) in series.iter().enumerate() {
        // Each value is plotted at the middle of its second.
        let points: Vec<String> = s
            .points
            .iter()
            .enumerate()
            .map(|(x, v)| format!("{:.1},{:.1}", x_of(x as f64 + 0.5, seconds), y_of(*v)))
            .collect();
        if !points.is_empty() {
            let dash = if s.dashed { r#" stroke-dasharray="6 4""# } else { "" };
            let _ = writeln!(
                out,
                r#"<polyline fill="none" stroke="{}" stroke-width="2"{dash} points="{}"/>"#,
                s.colour,
                points.join(" ")
            );
        }
        let lx = LEFT + 10.0 + 130.0 * i as f64;
        let _ = writeln!(
            out,
            r#"<rect x="{lx:.1}" y="{:.1}" width="12" height="4" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            top + 10.0,
            s.colour,
            lx + 16.0,
            top + 15.0,
            escape(s.label)
        );
    }
}

fn trim(v: f64) -> String {
    if v >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_maxima_are_round() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(0.7), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(600.0), 1000.0);
        assert_eq!(nice_max(2000.0), 2000.0);
        assert_eq!(nice_max(f64::NAN), 1.0);
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(escape(r#"<a & "b">"#), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
