//! bench-backend: the upstream for proxy benchmarks (HTTP/1.1 and h2c).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use gateway_bench::{backend, load};
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser, Debug)]
#[command(version, about = "Fast JSON upstream for the gateway benchmarks")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:18081")]
    listen: SocketAddr,
    /// Runtime threads: 1 is a current-thread runtime, more a multi-thread one.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: u16,
    /// Stamp every response with `x-backend-name: NAME` (home, embassy, ...),
    /// so load results show which backend served behind any proxy.
    #[arg(long)]
    name: Option<String>,
    /// A request for this path (e.g. /__crash) kills the process at once,
    /// with no response: for failover measurements. Off unless given.
    #[arg(long)]
    crash_path: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = load::runtime(args.threads.into()).context("starting the tokio runtime")?;
    runtime.block_on(async {
        // Signal handlers go in before binding, so a script that sends
        // SIGTERM as soon as the port accepts never kills us uncleanly.
        let mut term = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
        let mut int = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
        let listener =
            TcpListener::bind(args.listen).await.with_context(|| format!("binding {}", args.listen))?;
        eprintln!(
            "bench-backend: listening on http://{} ({} thread(s))",
            listener.local_addr()?,
            args.threads
        );
        let served = Arc::new(AtomicU64::new(0));
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        };
        let name = args.name.as_deref().map(http::HeaderValue::from_str).transpose().context("--name")?;
        let options = backend::Options { name, crash_path: args.crash_path.clone() };
        backend::serve_with(listener, Arc::clone(&served), options, shutdown).await;
        eprintln!("bench-backend: shutting down after {} requests", served.load(Ordering::Relaxed));
        Ok(())
    })
}
