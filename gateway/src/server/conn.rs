//! One client connection, from accept to close. The layers, outermost
//! first, and why each sits where it does:
//!
//! ```text
//!  admit      connection limits: before any work, so a flood costs little
//!  tls        handshake under its own timeout (slowloris before HTTP)
//!  framing    byte scan for Content-Length + Transfer-Encoding, on the
//!             plaintext, before hyper parses it
//!  idle       reads end of stream once no request was in flight for the
//!             client idle timeout (hyper's HTTP/2 has no idle cut)
//!  hyper      HTTP/1.1 or HTTP/2, head limits and the header read timeout
//!  graceful   so shutdown lets requests in flight finish
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::framing::{Alarm, FramingGuard};
use super::idle::{Activity, IdleGuard, Tracked};
use super::limits::{ConnLimiter, Refusal};
use crate::proxy::{ConnInfo, Gateway};
use crate::tls::Terminator;

/// What every connection of one listener shares.
pub(super) struct Listener {
    pub gateway: Arc<Gateway>,
    pub builder: auto::Builder<TokioExecutor>,
    pub tls: Option<Arc<Terminator>>,
    pub limiter: Arc<ConnLimiter>,
    pub idle_timeout: std::time::Duration,
}

impl Listener {
    /// Admits the connection (or closes it at once) and serves it on its
    /// own task.
    pub fn start(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr, watcher: Watcher) {
        let permit = match self.limiter.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(refusal) => {
                let why = match refusal {
                    Refusal::Full => "server.max_connections reached",
                    Refusal::ClientFull => "server.max_connections_per_client reached",
                };
                tracing::debug!(%peer, "connection refused: {why}");
                return;
            }
        };
        let _ = stream.set_nodelay(true);
        let this = self.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match &this.tls {
                None => this.serve(stream, peer, "http", watcher).await,
                Some(tls) => match tls.accept(stream).await {
                    Ok(stream) => this.serve(stream, peer, "https", watcher).await,
                    Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                },
            }
        });
    }

    async fn serve<S>(&self, io: S, peer: SocketAddr, proto: &'static str, watcher: Watcher)
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let framing = Alarm::default();
        let activity = Activity::new();
        let io = IdleGuard::new(FramingGuard::new(io, framing.clone()), activity.clone(), self.idle_timeout);
        let conn_info = Arc::new(ConnInfo::new(peer, proto, framing));
        let gw = self.gateway.clone();
        let service = service_fn(move |req| {
            let gw = gw.clone();
            let conn_info = conn_info.clone();
            let in_flight = activity.start();
            async move {
                let resp = gw.handle(&conn_info, req).await;
                Ok::<_, Infallible>(resp.map(|body| Tracked::new(body, in_flight)))
            }
        });
        let conn = self.builder.serve_connection(TokioIo::new(io), service).into_owned();
        if let Err(e) = watcher.watch(conn).await {
            tracing::debug!(%peer, error = %e, "client connection ended with an error");
        }
    }
}
