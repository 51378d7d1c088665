//! Listeners: accept TCP, speak HTTP/1.1 or HTTP/2 (h2c with prior
//! knowledge), hand each request to the [`Gateway`], and shut down
//! gracefully.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::config::ServerSettings;
use crate::proxy::{ConnInfo, Gateway};

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
        .max_concurrent_streams(256)
        .max_header_list_size(u32::try_from(settings.max_header_bytes * 2).unwrap_or(u32::MAX));
    builder
}

/// Serves `gateway` on `listener` until `shutdown` resolves, then stops
/// accepting and waits up to the configured grace period for requests in
/// flight. Tests bind `127.0.0.1:0` and pass a oneshot as `shutdown`.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let settings = gateway.config().server.clone();
    let builder = connection_builder(&settings);
    let graceful = GracefulShutdown::new();
    // Health checks and continuity run for as long as the listener does.
    gateway.start_background();
    tokio::pin!(shutdown);

    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let conn_info = Arc::new(ConnInfo::new(peer, "http"));
                    let gw = gateway.clone();
                    let service = service_fn(move |req| {
                        let gw = gw.clone();
                        let conn_info = conn_info.clone();
                        async move { Ok::<_, Infallible>(gw.handle(&conn_info, req).await) }
                    });
                    let conn = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                    let conn = graceful.watch(conn);
                    tokio::spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(%peer, error = %e, "client connection ended with an error");
                        }
                    });
                }
                Err(e) => accept_failed(e).await,
            },
            () = &mut shutdown => break,
        }
    }

    drop(listener);
    gateway.stop_background();
    tracing::info!(grace = ?settings.shutdown_grace, "shutting down: no new connections, finishing requests in flight");
    match tokio::time::timeout(settings.shutdown_grace, graceful.shutdown()).await {
        Ok(()) => tracing::info!("all connections closed"),
        Err(_) => tracing::warn!("grace period over; remaining connections are cut"),
    }
    Ok(())
}

/// Out of file descriptors (or a similar resource error) must not spin the
/// accept loop at 100% CPU: back off briefly and let connections drain.
async fn accept_failed(e: io::Error) {
    tracing::warn!(error = %e, "accept failed");
    tokio::time::sleep(Duration::from_millis(50)).await;
}

/// Extra accept loops, each on its own thread with a single-threaded
/// runtime, all sharing `listener`'s socket. A runtime per core keeps a
/// request, its client connection and its timers on one thread: no work
/// stealing and no cross-thread wake-ups on the hot path.
pub fn spawn_workers(
    listener: &TcpListener,
    gateway: &Arc<Gateway>,
    extra: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> io::Result<Vec<std::thread::JoinHandle<()>>> {
    let mut handles = Vec::with_capacity(extra);
    for n in 1..=extra {
        let socket = socket2::SockRef::from(listener).try_clone()?;
        let std_listener: std::net::TcpListener = socket.into();
        std_listener.set_nonblocking(true)?;
        let (gateway, mut stop) = (gateway.clone(), stop.clone());
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
                if let Err(e) = serve(listener, gateway, stopped).await {
                    tracing::error!(error = %e, "worker stopped with an error");
                }
            });
        })?;
        handles.push(handle);
    }
    Ok(handles)
}
