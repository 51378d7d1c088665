//! Request bodies across attempts. A body that may have to be sent again
//! (to the next site) is kept, but only up to the registry's replay cap;
//! larger bodies stream once and their request is never retried.

use bytes::Bytes;
use http::HeaderMap;
use http_body::Body as _;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::body::{self, ProxyBody};
use super::error::ProxyError;
use crate::config::Limits;

#[derive(Debug)]
pub enum RequestBody {
    /// No body at all (most reads).
    Empty,
    /// Small enough to keep: can be sent to several sites in turn.
    Buffered(Bytes),
    /// Streams through once, capped at the registry's body limit, its
    /// first frame read ahead (see `hardening::prime`).
    Streaming(Option<ProxyBody>),
}

impl RequestBody {
    /// Keeps `incoming` when it is known to fit under `replay_cap`.
    pub async fn prepare(
        incoming: Incoming,
        headers: &HeaderMap,
        replay_cap: u64,
        limits: &Limits,
        deadline: Instant,
    ) -> Result<RequestBody, ProxyError> {
        if incoming.is_end_stream() {
            return Ok(RequestBody::Empty);
        }
        let declared = headers
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        match declared {
            Some(len) if len <= replay_cap.min(limits.max_request_body) => {
                let cap = len as usize;
                let read = tokio::time::timeout_at(deadline, Limited::new(incoming, cap).collect()).await;
                match read {
                    Ok(Ok(collected)) => Ok(RequestBody::Buffered(collected.to_bytes())),
                    Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
                        Err(ProxyError::BodyTooLarge { limit: limits.max_request_body })
                    }
                    Ok(Err(e)) => Err(ProxyError::BadRequest(format!("malformed request body: {e}"))),
                    Err(_) => {
                        Err(ProxyError::BadRequest("request body did not arrive before the deadline".into()))
                    }
                }
            }
            _ => {
                let capped = Limited::new(incoming, limits.max_request_body as usize).boxed();
                let primed = super::hardening::prime(capped, deadline, limits.max_request_body).await?;
                Ok(RequestBody::Streaming(Some(primed)))
            }
        }
    }

    pub fn replayable(&self) -> bool {
        !matches!(self, RequestBody::Streaming(_))
    }

    /// The body for the next attempt; a streaming body only once.
    pub fn for_attempt(&mut self) -> Option<ProxyBody> {
        match self {
            RequestBody::Empty => Some(body::empty()),
            RequestBody::Buffered(b) => Some(body::full(b.clone())),
            RequestBody::Streaming(body) => body.take(),
        }
    }
}
