//! Listeners: accept TCP (and TLS), speak HTTP/1.1 or HTTP/2 (by ALPN, or
//! h2c with prior knowledge), hand each request to the [`Gateway`], and shut
//! down gracefully. Per-connection layers are charted in [`conn`].

mod conn;
pub mod framing;
mod idle;
pub mod limits;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::config::ServerSettings;
use crate::proxy::Gateway;
use crate::tls::Terminator;

/// hyper's own ceilings sit above the configured limits, so that requests
/// just over a limit reach `check_head` and get an answer with
/// `Proxy-Status`; only grossly oversized heads are cut off by hyper (with a
/// plain 431).
fn connection_builder(settings: &ServerSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // hyper starts this timer whenever it waits for a request head, so it
        // bounds both idle keep-alive connections and slow heads.
        .header_read_timeout(settings.client_idle_timeout)
        .max_headers((settings.max_headers * 2).max(100))
        .max_buf_size((settings.max_header_bytes * 2).max(8192) + 8192);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(Duration::from_secs(20)))
        .keep_alive_timeout(Duration::from_secs(20))
        .max_concurrent_streams(settings.edge.http2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(settings.max_header_bytes * 2).unwrap_or(u32::MAX))
        // Rapid reset (CVE-2023-44487): streams a client opens and cancels
        // before they are served, and streams it makes the server reset,
        // end the connection with GOAWAY past these counts.
        .max_pending_accept_reset_streams(Some(20))
        .max_local_error_reset_streams(Some(256));
    builder
}

/// Serves `gateway` on `listener` until `shutdown` resolves, then stops
/// accepting and waits up to the configured grace period for requests in
/// flight. Tests bind `127.0.0.1:0` and pass a oneshot as `shutdown`.
/// With `[server.tls]`, loads its certificates first (an unusable file is an
/// `InvalidInput` error naming the key) and reloads them on change.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let tls = load_tls(&gateway)?;
    serve_workers(listener, gateway, tls, 1, shutdown).await
}

/// The TLS terminator of the gateway's config, if it has `[server.tls]`.
pub fn load_tls(gateway: &Gateway) -> io::Result<Option<Arc<Terminator>>> {
    match &gateway.config().server.tls {
        Some(settings) => {
            Terminator::load(settings).map(Some).map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))
        }
        None => Ok(None),
    }
}

/// [`serve`] with TLS set up by the caller, who keeps a handle on it to
/// reload or watch reloads (`None`: plain HTTP).
pub async fn serve_with_tls(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    tls: Option<Arc<Terminator>>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    serve_workers(listener, gateway, tls, 1, shutdown).await
}

/// Serves with `workers` accept loops, this task's and one per extra
/// thread, each thread with its own single-threaded runtime, all sharing
/// the listening socket and the connection limits. A runtime per core keeps
/// a request, its connection and its timers on one thread: no work stealing
/// and no cross-thread wake-ups on the hot path.
pub async fn serve_workers(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    tls: Option<Arc<Terminator>>,
    workers: usize,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let settings = gateway.config().server.clone();
    let reloads = tls.as_ref().map(|t| t.watch());
    let shared = Arc::new(conn::Listener {
        gateway: gateway.clone(),
        builder: connection_builder(&settings),
        tls,
        limiter: limits::ConnLimiter::new(&settings.edge),
        idle_timeout: settings.client_idle_timeout,
    });
    // Health checks and continuity run for as long as the listener does.
    gateway.start_background();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let others = spawn_workers(&listener, &shared, workers.saturating_sub(1), stop_rx)?;

    accept_loop(listener, shared, settings.shutdown_grace, shutdown).await;

    let _ = stop_tx.send(true);
    for worker in others {
        let _ = tokio::task::spawn_blocking(move || worker.join()).await;
    }
    if let Some(task) = reloads {
        task.abort();
    }
    gateway.stop_background();
    Ok(())
}

/// Accepts until `shutdown`, then lets this loop's connections finish.
async fn accept_loop(
    listener: TcpListener,
    shared: Arc<conn::Listener>,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let mut backoff = limits::AcceptBackoff::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff.succeeded();
                    shared.start(stream, peer, graceful.watcher());
                }
                Err(e) => backoff.failed(e).await,
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!(?grace, "shutting down: no new connections, finishing requests in flight");
    match tokio::time::timeout(grace, graceful.shutdown()).await {
        Ok(()) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!("grace period over; remaining connections are cut"),
    }
}

fn spawn_workers(
    listener: &TcpListener,
    shared: &Arc<conn::Listener>,
    extra: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> io::Result<Vec<std::thread::JoinHandle<()>>> {
    let mut handles = Vec::with_capacity(extra);
    for n in 1..=extra {
        let socket = socket2::SockRef::from(listener).try_clone()?;
        let std_listener: std::net::TcpListener = socket.into();
        std_listener.set_nonblocking(true)?;
        let (shared, mut stop) = (shared.clone(), stop.clone());
        let grace = shared.gateway.config().server.shutdown_grace;
        let handle = std::thread::Builder::new().name(format!("gateway-worker-{n}")).spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(r) => r,
                Err(e) => return tracing::error!(error = %e, "cannot start a worker runtime"),
            };
            runtime.block_on(async move {
                let listener = match TcpListener::from_std(std_listener) {
                    Ok(l) => l,
                    Err(e) => return tracing::error!(error = %e, "worker cannot use the listener"),
                };
                let stopped = async move {
                    let _ = stop.wait_for(|s| *s).await;
                };
                accept_loop(listener, shared, grace, stopped).await;
            });
        })?;
        handles.push(handle);
    }
    Ok(handles)
}
