//! Request-smuggling defences on the request path.
//!
//! What hyper already refuses at parse time (400, connection closed):
//! differing duplicate `Content-Length`, a `Transfer-Encoding` whose last
//! coding is not `chunked` (or any on HTTP/1.0), obs-fold, invalid header
//! names and values. What it accepts and the gateway refuses here:
//!
//! - `Content-Length` together with `Transfer-Encoding` (seen by
//!   [`crate::server::framing`], checked by [`check_connection`]);
//! - a chunked body whose first chunk is malformed: [`prime`] reads the
//!   first frame before anything goes upstream, so a bad chunk size right
//!   after the head is a 400 that never reaches a site. A bad chunk later
//!   in a stream aborts the upstream request mid-body: the site sees a
//!   truncated message, never a complete one of the client's making.
//!
//! Every 400 closes an HTTP/1 connection ([`close_after_refusal`]): after a
//! malformed request the gateway does not trust the client's framing of
//! the next one.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, LengthLimitError};
use tokio::time::Instant;

use super::body::{BoxError, ProxyBody};
use super::context::ConnInfo;
use super::error::ProxyError;

/// Refuses every request on a connection that sent both framings.
pub fn check_connection(conn: &ConnInfo) -> Result<(), ProxyError> {
    if conn.framing.raised() {
        return Err(ProxyError::BadRequest(
            "Content-Length together with Transfer-Encoding: refused as request smuggling".into(),
        ));
    }
    Ok(())
}

/// Waits (until `deadline`) for the first frame of a request body, so a
/// body that is malformed from its first byte is refused before the
/// request is sent upstream.
pub async fn prime(mut body: ProxyBody, deadline: Instant, limit: u64) -> Result<ProxyBody, ProxyError> {
    if body.is_end_stream() {
        return Ok(body);
    }
    let first = match tokio::time::timeout_at(deadline, body.frame()).await {
        Ok(first) => first,
        Err(_) => {
            return Err(ProxyError::BadRequest(
                "request body did not start before the request deadline".into(),
            ))
        }
    };
    let first = match first {
        None => None,
        Some(Ok(frame)) => Some(frame),
        Some(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(ProxyError::BodyTooLarge { limit })
        }
        Some(Err(e)) => return Err(ProxyError::BadRequest(format!("malformed request body: {e}"))),
    };
    Ok(Primed { first, rest: body }.boxed())
}

/// A body whose first frame was read ahead.
struct Primed {
    first: Option<Frame<Bytes>>,
    rest: ProxyBody,
}

impl Body for Primed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(frame) = self.first.take() {
            return Poll::Ready(Some(Ok(frame)));
        }
        Pin::new(&mut self.rest).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rest.is_end_stream()
    }

    /// Keeps an exact size exact, so the site gets `Content-Length`
    /// framing when the client used it.
    fn size_hint(&self) -> SizeHint {
        let ahead = self.first.as_ref().and_then(Frame::data_ref).map_or(0, |d| d.len() as u64);
        let rest = self.rest.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(rest.lower().saturating_add(ahead));
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(ahead));
        }
        hint
    }
}

/// A 400 on HTTP/1 closes the connection (HTTP/2 has no `Connection`; a
/// bad stream there does not taint the others).
pub fn close_after_refusal(resp: &mut Response<ProxyBody>, version: Version) {
    if resp.status() == StatusCode::BAD_REQUEST && version < Version::HTTP_2 {
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}
