//! `gateway-load --scenario FILE`: run a scenario against each target in
//! turn, print and write the reports, and compare the targets.

use std::io::IsTerminal;
use std::path::Path;

use crate::output::TargetResult;
use crate::{compare, load, runner, scenario, svg};
use anyhow::Context;

/// Ok(false) when some target completed no request at all.
pub fn run(
    path: &Path,
    targets: &[String],
    baseline: Option<&str>,
    format: &str,
    out: Option<&Path>,
    progress: bool,
    threads: usize,
) -> anyhow::Result<bool> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut sc = scenario::parse(&text).map_err(|e| anyhow::anyhow!("{}:\n{e}", path.display()))?;
    scenario::override_targets(&mut sc, targets).map_err(anyhow::Error::msg)?;
    let progress = progress || std::io::stderr().is_terminal();
    let runtime = load::runtime(threads).context("starting the tokio runtime")?;
    let mut results = Vec::new();
    for (name, url) in &sc.targets {
        eprintln!("gateway-load: scenario {} against {name} ({url}), {:?}", sc.name, sc.load.duration());
        let outcome = runtime.block_on(runner::run(&sc, url, progress))?;
        let result = TargetResult::new(&sc, name, url, &outcome)?;
        match format {
            "json" => println!("{}", result.to_json()),
            "csv" => print!("{}", result.classes_csv()),
            _ => println!("{}", result.render_table()),
        }
        if let Some(dir) = out {
            write_target(dir, &result)?;
        }
        results.push(result);
    }
    runtime.shutdown_background();
    if results.len() > 1 {
        let (table, rows) = compare::compare(&results, baseline.or(sc.baseline.as_deref()));
        println!("{table}");
        if let Some(dir) = out {
            std::fs::write(dir.join("comparison.txt"), &table)?;
            std::fs::write(dir.join("comparison.json"), serde_json::to_string_pretty(&rows)? + "\n")?;
        }
    }
    Ok(results.iter().all(|r| r.total.requests > 0))
}

fn write_target(dir: &Path, r: &TargetResult) -> anyhow::Result<()> {
    let dir = dir.join(&r.target);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let files = [
        ("report.txt", r.render_table()),
        ("classes.csv", r.classes_csv()),
        ("timeline.csv", r.timeline_csv()),
        ("report.json", r.to_json() + "\n"),
        ("report.svg", svg::render(r)),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).with_context(|| format!("writing {}/{name}", dir.display()))?;
    }
    eprintln!("gateway-load: wrote {}", dir.display());
    Ok(())
}
