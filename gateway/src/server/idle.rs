//! Client idle timeout for every protocol. hyper's HTTP/1 `header_read_timeout`
//! covers idle keep-alive there, but its HTTP/2 server has no idle cut at all
//! (keep-alive pings only find dead peers, and they are traffic themselves),
//! so an h2 client could hold a connection and its memory forever.
//!
//! Idleness is counted in requests, not bytes: a connection is idle when no
//! request is in flight (from its head until its response body ends) and none
//! ended for `client_idle_timeout`. [`IdleGuard`] wraps the connection's I/O
//! and, once idle, reads end of stream, so hyper closes the connection as if
//! the client had gone.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Requests in flight on one connection and when the last one ended.
#[derive(Debug)]
pub struct Activity {
    in_flight: AtomicUsize,
    /// Milliseconds since `epoch` when a request last ended.
    last_ms: AtomicU64,
    epoch: Instant,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// Marks a request as started; it ends when the guard drops.
    pub fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// When the connection became idle, or `None` while a request is in flight.
    fn idle_since(&self) -> Option<Instant> {
        (self.in_flight.load(Ordering::Relaxed) == 0)
            .then(|| self.epoch + Duration::from_millis(self.last_ms.load(Ordering::Relaxed)))
    }
}

/// One request in flight; dropping it (with the response body) ends it.
#[derive(Debug)]
pub struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        let a = &self.0;
        a.last_ms.store(a.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
        a.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request in flight until it ends.
    pub struct Tracked<B> {
        #[pin]
        inner: B,
        in_flight: InFlight,
    }
}

impl<B> Tracked<B> {
    pub fn new(inner: B, in_flight: InFlight) -> Tracked<B> {
        Tracked { inner, in_flight }
    }
}

impl<B: Body<Data = Bytes>> Body for Tracked<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// The connection's I/O, reading end of stream once the connection has
    /// been idle for `timeout`.
    pub struct IdleGuard<S> {
        #[pin]
        io: S,
        activity: Arc<Activity>,
        timeout: Duration,
        // Boxed so the connection's I/O stays `Unpin`, as hyper needs.
        timer: Pin<Box<Sleep>>,
    }
}

impl<S> IdleGuard<S> {
    pub fn new(io: S, activity: Arc<Activity>, timeout: Duration) -> IdleGuard<S> {
        IdleGuard { io, activity, timeout, timer: Box::pin(tokio::time::sleep(timeout)) }
    }
}

impl<S: AsyncRead> AsyncRead for IdleGuard<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.project();
        if let Poll::Ready(r) = this.io.poll_read(cx, buf) {
            return Poll::Ready(r);
        }
        // Nothing to read: the timer decides whether the quiet is idleness.
        while this.timer.as_mut().poll(cx).is_ready() {
            match this.activity.idle_since() {
                Some(since) if since.elapsed() >= *this.timeout => return Poll::Ready(Ok(())),
                Some(since) => this.timer.as_mut().reset(since + *this.timeout),
                None => this.timer.as_mut().reset(Instant::now() + *this.timeout),
            }
        }
        Poll::Pending
    }
}

impl<S: AsyncWrite> AsyncWrite for IdleGuard<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}
