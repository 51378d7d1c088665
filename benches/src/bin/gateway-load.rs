//! gateway-load: an HTTP/1.1 and h2c load generator with HdrHistogram latency.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use gateway_bench::duration::parse_duration;
use gateway_bench::load::{self, LoadConfig};
use gateway_bench::report::{Report, RunInfo};
use gateway_bench::target::Target;

use gateway_bench::scenario_cli;

#[derive(Parser, Debug)]
#[command(version, about = "HTTP load generator for the Data Embassy Gateway benchmarks")]
struct Args {
    /// Target URL (http:// only), e.g. http://127.0.0.1:18080/population/people/38001085718
    #[arg(long, required_unless_present = "scenario")]
    url: Option<String>,
    /// Run a scenario file (TOML) instead of a single URL; see benches/scenarios/.
    #[arg(long, conflicts_with_all = ["url", "rate", "json", "max_requests"])]
    scenario: Option<PathBuf>,
    /// Scenario targets, `name=http://...` or a bare URL (repeatable):
    /// replaces the file's `target` / `[targets]`; several run side by side.
    #[arg(long = "target", requires = "scenario")]
    targets: Vec<String>,
    /// Target the others are compared with (default: "direct", else the first).
    #[arg(long, requires = "scenario")]
    baseline: Option<String>,
    /// Scenario output on stdout: table, csv or json.
    #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"], requires = "scenario")]
    format: String,
    /// Write every output (report.txt, classes.csv, timeline.csv, report.json,
    /// report.svg per target; comparison.txt/json) into this directory.
    #[arg(long, requires = "scenario")]
    out: Option<PathBuf>,
    /// Live progress on stderr once a second even when stderr is not a tty.
    #[arg(long)]
    progress: bool,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    connections: u32,
    /// Measured run length: 500ms, 10s, 2m (at most 10m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unrecorded traffic before measuring, to warm caches and connection pools.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    warmup: Duration,
    /// Stop after this many measured requests, even if time remains.
    #[arg(long)]
    max_requests: Option<u64>,
    /// Use HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1.
    #[arg(long)]
    h2: bool,
    /// Open loop at this many requests per second in total; latency is then
    /// measured from each request's scheduled time. Default: closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Request method.
    #[arg(long, default_value = "GET")]
    method: String,
    /// Extra request header, 'name: value' (repeatable).
    #[arg(long = "header", short = 'H')]
    headers: Vec<String>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Runtime threads: 1 is a current-thread runtime, more a multi-thread one.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: u16,
    /// Per-request timeout (connect, send and read the whole body).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(path) = args.scenario.clone() {
        return match scenario_cli::run(
            &path,
            &args.targets,
            args.baseline.as_deref(),
            &args.format,
            args.out.as_deref(),
            args.progress,
            args.threads.into(),
        ) {
            Ok(true) => ExitCode::SUCCESS,
            Ok(false) => {
                eprintln!("gateway-load: no request completed against some target");
                ExitCode::from(2)
            }
            Err(e) => {
                eprintln!("gateway-load: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    match run(args) {
        Ok(report) if report.requests > 0 => ExitCode::SUCCESS,
        Ok(_) => {
            // Non-zero so scripts notice a dead target instead of charting zeros.
            eprintln!("gateway-load: no request completed");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("gateway-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> anyhow::Result<Report> {
    anyhow::ensure!(!args.duration.is_zero(), "--duration must be greater than zero");
    anyhow::ensure!(!args.timeout.is_zero(), "--timeout must be greater than zero");
    if let Some(rate) = args.rate {
        anyhow::ensure!(rate.is_finite() && rate > 0.0, "--rate must be a positive number");
    }
    let url = args.url.clone().context("--url is required without --scenario")?;
    let target = Target::new(&url, &args.method, &args.headers, args.h2)?;
    let config = LoadConfig {
        target,
        connections: args.connections as usize,
        duration: args.duration,
        warmup: args.warmup,
        max_requests: args.max_requests,
        rate: args.rate,
        timeout: args.timeout,
    };
    let runtime = load::runtime(args.threads.into()).context("starting the tokio runtime")?;
    let measurement = runtime.block_on(load::run(&config))?;
    // Connection drivers may still be closing; they must not delay the exit.
    runtime.shutdown_background();

    let report = Report::new(
        &measurement.stats,
        measurement.elapsed,
        RunInfo {
            url,
            method: config.target.method.to_string(),
            connections: config.connections,
            h2: args.h2,
            rate: args.rate,
            threads: args.threads.into(),
        },
    );
    print!("{}", report.render_table());
    if let Some(path) = &args.json {
        std::fs::write(path, report.to_json() + "\n")
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}
