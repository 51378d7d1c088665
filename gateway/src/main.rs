//! The `gateway` command: run, check, demo.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use gateway::config::log::{LogFormat, LogSettings};
use gateway::config::{self, Config};
use gateway::{demo, Gateway};

#[derive(Parser)]
#[command(name = "gateway", version, about = "Data Embassy Gateway: one address for a state's registries")]
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
    /// Steer a running gateway through its admin API.
    Ctl {
        /// The admin listener.
        #[arg(long, default_value = "127.0.0.1:19901")]
        admin: SocketAddr,
        /// Environment variable holding the bearer token.
        #[arg(long, default_value = "GATEWAY_ADMIN_TOKEN")]
        token_env: String,
        #[command(subcommand)]
        action: CtlAction,
    },
}

#[derive(Subcommand)]
enum CtlAction {
    /// Continuity state, sites and backend health of every registry.
    Status,
    /// Route a registry to one site only, whatever health says.
    Force { registry: String, site: String },
    /// Stop sending new requests to a site; requests in flight finish.
    Drain { registry: String, site: String },
    /// Clear force and drains: health decides again.
    Auto { registry: String },
    /// Re-read the configuration file (as SIGHUP); a bad file changes nothing.
    Reload,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Check { config } => {
            init_logging(&LogSettings::default());
            return check(&config);
        }
        Command::Run { config: path } => match load(&path) {
            Ok(c) => {
                init_logging(&c.log);
                run(c, Some(path))
            }
            Err(e) => Err(anyhow::anyhow!("invalid configuration {}:\n{e}", path.display())),
        },
        Command::Demo { listen } => match demo::config(listen) {
            Ok(c) => {
                init_logging(&c.log);
                run(c, None)
            }
            Err(e) => Err(anyhow::anyhow!("embedded demo configuration is invalid:\n{e}")),
        },
        Command::Ctl { admin, token_env, action } => ctl(admin, &token_env, action),
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

/// Serves `config`; `source` is its file (reloaded on SIGHUP), `None` for
/// the demo, which also starts its simulated sites.
fn run(config: Config, source: Option<PathBuf>) -> anyhow::Result<()> {
    let with_demo_sites = source.is_none();
    let workers = config
        .server
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get));
    // This thread is worker 0; `serve_workers` adds the others.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let switches = if with_demo_sites { Some(demo::start_sites(&config).await?) } else { None };
        let listen = config.server.listen;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let local = listener.local_addr()?;
        let scheme = if config.server.tls.is_some() { "https" } else { "http" };
        tracing::info!(address = %local, "listening on {local} ({scheme})");
        if with_demo_sites {
            println!("\nData Embassy Gateway demo: the gateway listens on http://{local}");
            println!("Simulated home and embassy-lu sites serve population, tax, business and gazette.");
            println!("Try:");
            for url in demo::urls_to_try(local) {
                println!("  curl -i {url}");
            }
            println!("Watch failover: take population's home down, ask again (x-served-by: embassy-lu),");
            println!("bring it back and see traffic return after the 5s failback hold:");
            println!("  curl -X POST http://{}/sites/population/home/down", demo::CONTROL);
            println!("  curl -i http://{local}/population/people");
            println!("  curl -X POST http://{}/sites/population/home/up", demo::CONTROL);
            println!("While the embassy serves, its legacy answers reach you in the home schema");
            println!("(x-schema-translated: the population-translate plugin). Tax status polls are");
            println!("guarded by tax-peak-guard: fresh answers from its store, 429 per citizen under load.");
            println!("Steer it: GATEWAY_ADMIN_TOKEN={} target/release/gateway ctl status", demo::ADMIN_TOKEN);
            println!("Stop with Ctrl-C.\n");
        }
        let gateway = Gateway::new(config);
        if let Some(path) = source {
            gateway.set_source(path);
            tokio::spawn(reload_on_sighup(gateway.clone()));
            tokio::spawn(gateway::plugin::watch::watch(gateway.clone(), std::time::Duration::from_secs(1)));
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        if let Some(admin) = gateway.config().admin.clone() {
            let token = admin.token.resolve().map_err(|e| anyhow::anyhow!(e))?;
            let listener = tokio::net::TcpListener::bind(admin.listen)
                .await
                .with_context(|| format!("cannot listen for the admin API on {}", admin.listen))?;
            tracing::info!(address = %admin.listen, "admin API listening on {}", admin.listen);
            let mut stop = stop_rx.clone();
            tokio::spawn(gateway::admin::serve(listener, gateway.clone(), token, async move {
                let _ = stop.wait_for(|s| *s).await;
            }));
        }
        if let Some(switches) = switches {
            demo::start_control(switches).await?;
        }
        tracing::info!(workers, "serving");
        let tls = gateway::server::load_tls(&gateway)?;
        let served = gateway::server::serve_workers(listener, gateway, tls, workers, shutdown_signal()).await;
        let _ = stop_tx.send(true);
        drop(stop_rx);
        Ok(served?)
    })
}

fn ctl(admin: SocketAddr, token_env: &str, action: CtlAction) -> anyhow::Result<()> {
    let token = std::env::var(token_env).with_context(|| format!("set the admin token in ${token_env}"))?;
    let (method, path) = match &action {
        CtlAction::Status => (http::Method::GET, "/v1/status".to_string()),
        CtlAction::Force { registry, site } => {
            (http::Method::POST, format!("/v1/registries/{registry}/force/{site}"))
        }
        CtlAction::Drain { registry, site } => {
            (http::Method::POST, format!("/v1/registries/{registry}/drain/{site}"))
        }
        CtlAction::Auto { registry } => (http::Method::POST, format!("/v1/registries/{registry}/automatic")),
        CtlAction::Reload => (http::Method::POST, "/v1/reload".to_string()),
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (status, body) = runtime.block_on(gateway::admin::ctl::call(admin, &token, method, &path))?;
    println!("{body}");
    anyhow::ensure!((200..300).contains(&status), "the admin API answered {status}");
    Ok(())
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

/// SIGHUP re-reads the configuration file; a bad file is reported and the
/// running configuration keeps serving.
async fn reload_on_sighup(gateway: std::sync::Arc<Gateway>) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::error!("cannot watch SIGHUP; reload through the admin API");
        return;
    };
    while hup.recv().await.is_some() {
        tracing::info!("SIGHUP received: reloading the configuration");
        // Errors are logged by reload itself.
        let _ = gateway.reload_source();
    }
}

/// Logs to stderr, text or JSON; the level from RUST_LOG, else the config.
fn init_logging(settings: &LogSettings) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(&settings.level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
    }
}
