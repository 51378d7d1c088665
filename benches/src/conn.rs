//! One keep-alive client connection, HTTP/1.1 or HTTP/2 with prior knowledge.
//!
//! The low-level `hyper::client::conn` API is used instead of a pooled client
//! so that "N connections" means exactly N TCP connections, each owned by one
//! task, and a broken connection is visible (and counted) rather than being
//! silently replaced by a pool.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpStream;

use crate::stats::ErrorKind;
use crate::target::Target;

pub enum Conn {
    H1(http1::SendRequest<Full<Bytes>>),
    H2(http2::SendRequest<Full<Bytes>>),
}

/// A response that was read to the end of its body.
pub struct Completed {
    pub status: StatusCode,
    pub body_bytes: u64,
    pub finished: Instant,
    /// The value of the header asked for in [`Conn::exchange_site`], if sent.
    pub site: Option<HeaderValue>,
}

impl Conn {
    pub async fn open(target: &Target, timeout: Duration) -> Result<Self, ErrorKind> {
        match tokio::time::timeout(timeout, Self::handshake(target)).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(_)) | Err(_) => Err(ErrorKind::Connect),
        }
    }

    async fn handshake(target: &Target) -> anyhow::Result<Self> {
        let stream = TcpStream::connect(target.addr).await?;
        // Requests are small single writes; Nagle would only add delay.
        stream.set_nodelay(true)?;
        let io = TokioIo::new(stream);
        // The connection futures are spawned so they keep driving I/O while
        // the task waits; they end when the `SendRequest` half is dropped.
        if target.h2 {
            let (sender, conn) = http2::handshake(TokioExecutor::new(), io).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Conn::H2(sender))
        } else {
            let (sender, conn) = http1::handshake(io).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            Ok(Conn::H1(sender))
        }
    }

    /// Waits until the connection can take a request. False means the peer
    /// closed it while idle (e.g. a keep-alive limit): nothing was sent, so
    /// that is a reason to reconnect, not a failed request.
    async fn ready(&mut self) -> bool {
        match self {
            Conn::H1(s) => s.ready().await.is_ok(),
            Conn::H2(s) => s.ready().await.is_ok(),
        }
    }

    /// Sends one request and reads the whole body, as a real client must
    /// before the connection can carry the next request. Call only on a
    /// connection that [`Link::ready`] returned.
    pub async fn exchange(&mut self, req: Request<Full<Bytes>>) -> Result<Completed, ErrorKind> {
        self.exchange_site(req, None).await
    }

    /// As [`Conn::exchange`], also keeping the `site_header` response field
    /// (which site served: the gateway's served-by or a backend's stamp).
    pub async fn exchange_site(
        &mut self,
        req: Request<Full<Bytes>>,
        site_header: Option<&HeaderName>,
    ) -> Result<Completed, ErrorKind> {
        let response = match self {
            Conn::H1(s) => s.send_request(req).await,
            Conn::H2(s) => s.send_request(req).await,
        }
        .map_err(|_| ErrorKind::Io)?;
        let status = response.status();
        let site = site_header.and_then(|h| response.headers().get(h).cloned());
        let mut body = response.into_body();
        let mut body_bytes = 0u64;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| ErrorKind::Io)?;
            if let Some(data) = frame.data_ref() {
                body_bytes += data.len() as u64;
            }
        }
        Ok(Completed { status, body_bytes, finished: Instant::now(), site })
    }
}

/// The connection slot of one load task: keeps using its connection while
/// the peer keeps it alive, and opens a new one when it is gone.
#[derive(Default)]
pub struct Link {
    conn: Option<Conn>,
    opened: u64,
}

impl Link {
    /// A connection ready to send on, and whether it replaces an earlier one.
    pub async fn ready(
        &mut self,
        target: &Target,
        timeout: Duration,
    ) -> Result<(&mut Conn, bool), ErrorKind> {
        let reusable = match self.conn.as_mut() {
            Some(conn) => matches!(tokio::time::timeout(timeout, conn.ready()).await, Ok(true)),
            None => false,
        };
        if !reusable {
            self.conn = None;
            self.conn = Some(Conn::open(target, timeout).await?);
            self.opened += 1;
        }
        let replaced = !reusable && self.opened > 1;
        Ok((self.conn.as_mut().expect("filled above"), replaced))
    }

    /// Drops the connection after a failure: its state is unknown, so the
    /// next request must not reuse it.
    pub fn discard(&mut self) {
        self.conn = None;
    }
}
