//! tax-day: the first days of e-tax filing, rehearsed. Starts two
//! capacity-limited sites (home and an embassy: `capacity` requests at once,
//! each taking `service` time, the rest queueing inside the site), runs the
//! gateway binary with four generated configs (none / shed / shed+spill /
//! adaptive+spill), drives open-loop arrivals at 1x..5x the home's capacity
//! with a mix of submissions, status polls and browsing, and prints per
//! config, load level and class: success %, p99, shed latency p99, served
//! req/s and the share served by the embassy.
//!
//! Self-contained on purpose: no dependency on the gateway crate, which is
//! started as a process (see benches/scenarios/tax-day.md).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use clap::Parser;
use hdrhistogram::Histogram;
use http::{Method, Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "Tax-day load rehearsal: shedding and spill-over against capacity-limited sites")]
struct Args {
    /// The gateway binary (build it with `cargo build --release -p gateway`).
    #[arg(long, default_value = "target/release/gateway")]
    gateway: PathBuf,
    /// Requests each site serves at once.
    #[arg(long, default_value_t = 8)]
    capacity: usize,
    /// Service time of one request at a site, in milliseconds.
    #[arg(long, default_value_t = 40)]
    service_ms: u64,
    /// Seconds at each load level.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Load levels as multiples of the home's capacity.
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5")]
    levels: Vec<f64>,
    /// Configs to run: none, shed, shed+spill, adaptive+spill.
    #[arg(long, value_delimiter = ',', default_value = "none,shed,shed+spill,adaptive+spill")]
    configs: Vec<String>,
    /// Pin the gateway to these CPUs with taskset, e.g. "1".
    #[arg(long)]
    gateway_cpus: Option<String>,
    /// Client timeout per request, in milliseconds.
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Submit,
    Status,
    Browse,
}

const CLASSES: [Class; 3] = [Class::Submit, Class::Status, Class::Browse];

impl Class {
    fn name(self) -> &'static str {
        match self {
            Class::Submit => "submit",
            Class::Status => "status",
            Class::Browse => "browse",
        }
    }

    /// The tax-day mix: 10% submissions, 30% status polls, 60% browsing.
    fn pick(n: u64) -> Class {
        match n % 10 {
            0 => Class::Submit,
            1..=3 => Class::Status,
            _ => Class::Browse,
        }
    }
}

/// What one (level, class) cell saw.
struct Cell {
    ok: Histogram<u64>,
    shed: Histogram<u64>,
    failed: u64,
    embassy: u64,
}

impl Cell {
    fn new() -> Cell {
        let h = || Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
        Cell { ok: h(), shed: h(), failed: 0, embassy: 0 }
    }
}

type Cells = Arc<Mutex<Vec<[Cell; 3]>>>;

/// A site: `capacity` requests at once, `service` each; the rest queue.
async fn site(capacity: usize, service: Duration) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let slots = Arc::new(Semaphore::new(capacity));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            let slots = slots.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let slots = slots.clone();
                    async move {
                        let _ = req.into_body().collect().await;
                        let _slot = slots.acquire().await.expect("semaphore open");
                        tokio::time::sleep(service).await;
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}"))))
                    }
                });
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}

fn free_port() -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?)
}

/// The gateway config for one variant.
fn config(
    variant: &str,
    listen: SocketAddr,
    home: SocketAddr,
    embassy: SocketAddr,
    capacity: usize,
) -> String {
    let burst = match variant {
        "none" => String::new(),
        "shed" | "shed+spill" | "adaptive+spill" => {
            let spill = if variant.ends_with("spill") { "spill = { queue_depth = 1 }\n" } else { "" };
            let adaptive = if variant.starts_with("adaptive") {
                format!("adaptive = {{ min_limit = 1, max_limit = {} }}\n", capacity * 4)
            } else {
                String::new()
            };
            format!(
                r#"[registries.tax.burst]
max_in_flight = {capacity}
queue = {queue}
queue_timeout = "300ms"
retry_after = 1
{spill}{adaptive}classes = [
  {{ name = "submit", share = 0.25, methods = ["POST"], prefixes = ["/tax/declarations"] }},
  {{ name = "status", share = 0.15, prefixes = ["/tax/status"] }},
  {{ name = "browse" }},
]
"#,
                queue = capacity * 4
            )
        }
        other => panic!("unknown config {other}"),
    };
    format!(
        r#"[server]
listen = "{listen}"
workers = 1
[log]
access = false
level = "error"
[registries.tax]
routes = [{{ prefix = "/tax" }}]
limits = {{ request_timeout = "10s" }}
sites.home.backends = ["{home}"]
sites.embassy-lu.backends = ["{embassy}"]
{burst}"#
    )
}

struct Gateway(Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn start_gateway(args: &Args, config_path: &PathBuf, listen: SocketAddr) -> anyhow::Result<Gateway> {
    let mut cmd = match &args.gateway_cpus {
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.arg("-c").arg(cpus).arg(&args.gateway);
            c
        }
        None => Command::new(&args.gateway),
    };
    cmd.arg("run").arg("--config").arg(config_path).stdout(Stdio::null()).stderr(Stdio::inherit());
    let child = Gateway(cmd.spawn().with_context(|| format!("starting {}", args.gateway.display()))?);
    let until = Instant::now() + Duration::from_secs(10);
    while tokio::net::TcpStream::connect(listen).await.is_err() {
        if Instant::now() > until {
            bail!("the gateway did not listen on {listen} within 10s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(child)
}

type HttpClient = Client<HttpConnector, Full<Bytes>>;

async fn one(client: HttpClient, base: String, class: Class, n: u64, timeout: Duration) -> (u16, bool) {
    let (method, path, body) = match class {
        Class::Submit => {
            (Method::POST, format!("/tax/declarations/{n}"), Bytes::from_static(b"{\"income\":1}"))
        }
        Class::Status => (Method::GET, format!("/tax/status/{n}"), Bytes::new()),
        Class::Browse => (Method::GET, format!("/tax/rates/{}", n % 50), Bytes::new()),
    };
    let req = Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .body(Full::new(body))
        .expect("request");
    match tokio::time::timeout(timeout, client.request(req)).await {
        Ok(Ok(resp)) => {
            let embassy = resp.headers().get("x-served-by").is_some_and(|v| v.as_bytes() == b"embassy-lu");
            let status = resp.status().as_u16();
            let _ = resp.into_body().collect().await;
            (status, embassy)
        }
        _ => (0, false),
    }
}

/// Open-loop arrivals at each level; latency counts from the scheduled time.
async fn drive(args: &Args, base: &str, home_rate: f64) -> Vec<[Cell; 3]> {
    let cells: Cells =
        Arc::new(Mutex::new(args.levels.iter().map(|_| [Cell::new(), Cell::new(), Cell::new()]).collect()));
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(4096).build(http);
    let timeout = Duration::from_millis(args.timeout_ms);
    let mut tasks = tokio::task::JoinSet::new();
    let mut n: u64 = 0;
    for (li, level) in args.levels.iter().enumerate() {
        let rate = level * home_rate;
        let interval = Duration::from_secs_f64(1.0 / rate);
        let start = Instant::now();
        let end = start + Duration::from_secs(args.seconds);
        let mut next = start;
        while next < end {
            tokio::time::sleep_until(next).await;
            let class = Class::pick(n);
            let (client, base, cells, scheduled) = (client.clone(), base.to_string(), cells.clone(), next);
            let id = n;
            tasks.spawn(async move {
                let (status, embassy) = one(client, base, class, id, timeout).await;
                let micros = scheduled.elapsed().as_micros().max(1) as u64;
                let ci = CLASSES.iter().position(|c| *c == class).unwrap_or(2);
                let mut cells = cells.lock().unwrap_or_else(|p| p.into_inner());
                let cell = &mut cells[li][ci];
                match status {
                    200..=299 => {
                        let _ = cell.ok.record(micros);
                        cell.embassy += u64::from(embassy);
                    }
                    429 | 503 => {
                        let _ = cell.shed.record(micros);
                    }
                    _ => cell.failed += 1,
                }
            });
            n += 1;
            next += interval;
            while tasks.try_join_next().is_some() {}
        }
    }
    while tasks.join_next().await.is_some() {}
    let mut cells = cells.lock().unwrap_or_else(|p| p.into_inner());
    std::mem::take(&mut *cells)
}

fn ms(h: &Histogram<u64>, q: f64) -> String {
    if h.is_empty() {
        "-".into()
    } else {
        format!("{:.0}", h.value_at_quantile(q) as f64 / 1000.0)
    }
}

fn print_table(variant: &str, args: &Args, cells: &[[Cell; 3]]) {
    println!("\n### {variant}\n");
    println!("| load | class | sent | success % | p99 ms | shed | shed p99 ms | failed | served req/s | via embassy % |");
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (li, level) in args.levels.iter().enumerate() {
        let mut total_ok = 0;
        for (ci, class) in CLASSES.iter().enumerate() {
            let c = &cells[li][ci];
            let (ok, shed) = (c.ok.len(), c.shed.len());
            let sent = ok + shed + c.failed;
            total_ok += ok;
            let pct = if sent == 0 { 0.0 } else { 100.0 * ok as f64 / sent as f64 };
            let via = if ok == 0 { 0.0 } else { 100.0 * c.embassy as f64 / ok as f64 };
            println!(
                "| {level}x | {} | {sent} | {pct:.1} | {} | {shed} | {} | {} | {:.0} | {via:.0} |",
                class.name(),
                ms(&c.ok, 0.99),
                ms(&c.shed, 0.99),
                c.failed,
                ok as f64 / args.seconds as f64,
            );
        }
        println!("| {level}x | **all** | | | | | | | **{:.0}** | |", total_ok as f64 / args.seconds as f64);
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let service = Duration::from_millis(args.service_ms);
    let home_rate = args.capacity as f64 / service.as_secs_f64();
    println!(
        "tax-day: each site serves {} at once x {} ms = {home_rate:.0} req/s; levels {:?} of home; {} s each",
        args.capacity, args.service_ms, args.levels, args.seconds
    );
    let dir = std::env::temp_dir().join(format!("tax-day-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    for variant in &args.configs {
        // Fresh sites per config: nothing queued inside them carries over.
        let (home, embassy) = (site(args.capacity, service).await?, site(args.capacity, service).await?);
        let listen = free_port()?;
        let path = dir.join(format!("{}.toml", variant.replace('+', "-")));
        std::fs::write(&path, config(variant, listen, home, embassy, args.capacity))?;
        let _gateway = start_gateway(&args, &path, listen).await?;
        let cells = drive(&args, &format!("http://{listen}"), home_rate).await;
        print_table(variant, &args, &cells);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
