//! The one typed context every phase of a request reads and writes.

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderValue;
use tokio::time::Instant;

/// What is known about the client connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// `http` or `https`; feeds X-Forwarded-Proto.
    pub proto: &'static str,
    /// Raised when the connection sent a smuggling-shaped head.
    pub framing: crate::server::framing::Alarm,
}

/// Per-request state, filled in as the phases run.
#[derive(Debug)]
pub struct RequestContext {
    /// Kept from the client when well-formed, else generated; sent both ways.
    pub request_id: HeaderValue,
    pub started: Instant,
    /// Whole-exchange deadline; set when the registry (and its limits) is known.
    pub deadline: Instant,
    pub registry: Option<Arc<str>>,
    pub site: Option<Arc<str>>,
}

impl RequestContext {
    pub fn new(request_id: HeaderValue) -> RequestContext {
        let now = Instant::now();
        RequestContext {
            request_id,
            started: now,
            deadline: now,
            registry: None,
            site: None,
        }
    }
}
