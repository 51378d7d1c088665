//! The `gateway` command: run, check, demo.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gateway::config::{self, Config};
use gateway::{demo, Gateway};

#[derive(Parser)]
#[command(
    name = "gateway",
    version,
    about = "Data Embassy Gateway: one address for a state's registries"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve with a configuration file until SIGINT / SIGTERM.
    Run {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file: exit 0 when valid, else 1 with every error.
    Check {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Start simulated registries (home and embassy sites) and the gateway in front.
    Demo {
        /// Where the gateway listens (default from the embedded config: 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
}

fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => return check(&config),
        Command::Run { config } => load(&config)
            .map_err(|e| anyhow::anyhow!("invalid configuration {}:\n{e}", config.display()))
            .and_then(|c| run(c, false)),
        Command::Demo { listen } => demo::config(listen)
            .map_err(|e| anyhow::anyhow!("embedded demo configuration is invalid:\n{e}"))
            .and_then(|c| run(c, true)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Compiles the file and loads every PEM file it names, so unusable
/// certificates are reported (by key path) before anything listens.
fn load(path: &std::path::Path) -> Result<Config, config::ConfigErrors> {
    let config = config::load(path)?;
    gateway::tls::preflight(&config)?;
    Ok(config)
}

fn check(path: &std::path::Path) -> ExitCode {
    match load(path) {
        Ok(c) => {
            println!(
                "{}: OK ({} registries, {} routes, listen {})",
                path.display(),
                c.registries.len(),
                c.routes.len(),
                c.server.listen
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{}: {} error(s)", path.display(), errors.0.len());
            for e in &errors.0 {
                eprintln!("  {e}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(config: Config, with_demo_sites: bool) -> anyhow::Result<()> {
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = config.server.workers {
        runtime.worker_threads(workers);
    }
    let runtime = runtime
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        if with_demo_sites {
            demo::start_sites(&config).await?;
        }
        let listen = config.server.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let local = listener.local_addr()?;
        let scheme = if config.server.tls.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!(address = %local, "listening on {local} ({scheme})");
        if with_demo_sites {
            println!("\nData Embassy Gateway demo: the gateway listens on http://{local}");
            println!(
                "Simulated home and embassy-lu sites serve population, tax, business and gazette."
            );
            println!("Try:");
            for url in demo::urls_to_try(local) {
                println!("  curl -i {url}");
            }
            println!("Stop with Ctrl-C.\n");
        }
        gateway::serve(listener, Gateway::new(config), shutdown_signal()).await?;
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the gateway");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}

/// Text logs to stderr; level from RUST_LOG (default `info`).
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
