//! The one typed context every phase of a request reads and writes.

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderValue;
use tokio::time::Instant;

use super::headers::ForwardedFor;

/// What is known about the client connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    /// `http` or `https`; feeds X-Forwarded-Proto.
    pub proto: &'static str,
    pub forwarded: ForwardedFor,
    /// Raised when the connection sent a smuggling-shaped head.
    pub framing: crate::server::framing::Alarm,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, proto: &'static str, framing: crate::server::framing::Alarm) -> ConnInfo {
        ConnInfo { peer, proto, forwarded: ForwardedFor::new(peer, proto), framing }
    }
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
    /// The site of the latest attempt (the one that answered, in the end).
    pub site: Option<Arc<str>>,
    /// Indices of the registry (in the generation) and the site (in it).
    pub registry_index: Option<usize>,
    pub site_index: Option<usize>,
    /// Upstream attempts made: 1 plus retries.
    pub attempts: u32,
    pub retry_budget_exhausted: bool,
    /// A class name an on-request plugin chose (burst::priority).
    pub priority_hint: Option<Arc<str>>,
}

impl RequestContext {
    /// The request's deadline once routed; before that (errors answered
    /// from the head alone) a minute, which a small body never needs.
    pub fn deadline_or_far(&self) -> Instant {
        if self.deadline > self.started {
            self.deadline
        } else {
            self.started + std::time::Duration::from_secs(60)
        }
    }

    pub fn new(request_id: HeaderValue) -> RequestContext {
        let now = Instant::now();
        RequestContext {
            request_id,
            started: now,
            deadline: now,
            registry: None,
            site: None,
            registry_index: None,
            site_index: None,
            attempts: 0,
            retry_budget_exhausted: false,
            priority_hint: None,
        }
    }
}
