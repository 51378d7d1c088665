//! Listeners: accept TCP (and TLS), speak HTTP/1.1 or HTTP/2 (by ALPN, or
//! h2c with prior knowledge), hand each request to the [`Gateway`], and shut
//! down gracefully. Per-connection layers are charted in [`conn`].

mod conn;
pub mod framing;
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
    let tls = match &gateway.config().server.tls {
        Some(settings) => Some(
            Terminator::load(settings)
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
        ),
        None => None,
    };
    serve_with_tls(listener, gateway, tls, shutdown).await
}

/// [`serve`] with TLS set up by the caller, who keeps a handle on it to
/// reload or watch reloads (`None`: plain HTTP).
pub async fn serve_with_tls(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    tls: Option<Arc<Terminator>>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let settings = gateway.config().server.clone();
    let reloads = tls.as_ref().map(|t| t.watch());
    let shared = Arc::new(conn::Listener {
        gateway,
        builder: connection_builder(&settings),
        tls,
        limiter: limits::ConnLimiter::new(&settings.edge),
    });
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

    if let Some(task) = reloads {
        task.abort();
    }
    drop(listener);
    tracing::info!(grace = ?settings.shutdown_grace, "shutting down: no new connections, finishing requests in flight");
    match tokio::time::timeout(settings.shutdown_grace, graceful.shutdown()).await {
        Ok(()) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!("grace period over; remaining connections are cut"),
    }
    Ok(())
}
