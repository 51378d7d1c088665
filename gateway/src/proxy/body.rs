//! Body types on the request path. Bodies stream: nothing here buffers a
//! whole body.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderValue;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use tokio::time::{Instant, Sleep};

use super::context::{ConnInfo, RequestContext};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the gateway sends to clients and upstreams alike.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

pub fn empty() -> ProxyBody {
    http_body_util::Empty::new().map_err(|never| match never {}).boxed()
}

pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// The request's total deadline passed while its response body was still
/// streaming; the client sees the response cut short.
#[derive(Debug, thiserror::Error)]
#[error("request deadline passed while streaming the response")]
pub struct DeadlineExceeded;

/// What the access log says of one request, written when its response
/// body ends (so bytes and the full duration are known). Paths arrive here
/// already redacted.
#[derive(Debug)]
pub struct AccessRecord {
    request_id: HeaderValue,
    client: std::net::IpAddr,
    method: http::Method,
    path: String,
    registry: Option<Arc<str>>,
    site: Option<Arc<str>>,
    status: u16,
    attempts: u32,
    started: Instant,
    head_ms: f64,
}

impl AccessRecord {
    pub fn new(
        ctx: &RequestContext,
        conn: &ConnInfo,
        method: http::Method,
        path: String,
        status: http::StatusCode,
    ) -> Box<Self> {
        Box::new(AccessRecord {
            request_id: ctx.request_id.clone(),
            client: conn.peer.ip(),
            method,
            path,
            registry: ctx.registry.clone(),
            site: ctx.site.clone(),
            status: status.as_u16(),
            attempts: ctx.attempts,
            started: ctx.started,
            head_ms: ctx.started.elapsed().as_secs_f64() * 1000.0,
        })
    }

    fn write(&self, bytes: u64, outcome: &str) {
        tracing::info!(
            target: "access",
            request_id = self.request_id.to_str().unwrap_or_default(),
            client = %self.client,
            method = %self.method,
            path = %self.path,
            registry = self.registry.as_deref().unwrap_or("-"),
            site = self.site.as_deref().unwrap_or("-"),
            status = self.status,
            bytes,
            head_ms = self.head_ms,
            total_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            retries = self.attempts.saturating_sub(1),
            outcome,
        );
    }
}

pin_project_lite::pin_project! {
    /// Every response body the client gets: ends with [`DeadlineExceeded`]
    /// at the request's deadline, so a trickling upstream cannot hold a
    /// client forever, and writes the access log line when it is done.
    pub struct ResponseBody {
        #[pin]
        inner: ProxyBody,
        #[pin]
        sleep: Sleep,
        bytes: u64,
        record: Option<Box<AccessRecord>>,
        outcome: &'static str,
    }

    impl PinnedDrop for ResponseBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(record) = this.record.take() {
                // hyper stops polling once a sized body is all sent, so the
                // end is often seen here rather than as a final `None`.
                let outcome = if *this.outcome == "aborted" && this.inner.is_end_stream() { "complete" } else { this.outcome };
                record.write(*this.bytes, outcome);
            }
        }
    }
}

impl ResponseBody {
    pub fn new(inner: ProxyBody, deadline: Instant, record: Option<Box<AccessRecord>>) -> Self {
        // The timer is armed only if the body ever has to wait.
        ResponseBody {
            inner,
            sleep: tokio::time::sleep_until(deadline),
            bytes: 0,
            record,
            outcome: "aborted",
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.bytes += data.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                *this.outcome = "upstream_body_error";
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                *this.outcome = "complete";
                Poll::Ready(None)
            }
            Poll::Pending => match this.sleep.poll(cx) {
                Poll::Ready(()) => {
                    *this.outcome = "deadline";
                    Poll::Ready(Some(Err(DeadlineExceeded.into())))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
