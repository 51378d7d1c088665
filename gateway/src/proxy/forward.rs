//! Forward phase: the pooled upstream client, its timeouts, and the mapping
//! of transport failures to typed errors.

use std::error::Error as StdError;
use std::io;
use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

use super::body::ProxyBody;
use super::error::ProxyError;
use crate::config::{Limits, Registry, SiteSpec};
use crate::sites::Target;
use crate::tls::upstream::{ConnectError, Connector};

type SiteClient = Client<Connector, ProxyBody>;

/// Keep-alive pools per registry: each registry has its own connect
/// timeout, and pools of one registry never starve another's. Within a
/// registry, one pool per site, because each site has its own TLS trust and
/// client certificate (a pooled connection is bound to them).
#[derive(Clone, Debug)]
pub struct Upstream {
    /// Aligned with `Registry::sites`.
    clients: Vec<(Arc<str>, SiteClient)>,
    limits: Limits,
}

impl Upstream {
    pub fn new(registry: &Registry) -> Upstream {
        let limits = &registry.limits;
        let clients =
            registry.sites.iter().map(|site| (site.name.clone(), site_client(limits, site))).collect();
        Upstream { clients, limits: limits.clone() }
    }

    fn client(&self, target: Target<'_>) -> Result<&SiteClient, ProxyError> {
        self.clients
            .iter()
            .find(|(name, _)| *name == target.site.name)
            .map(|(_, client)| client)
            .ok_or_else(|| ProxyError::Internal(format!("no client for site {}", target.site.name)))
    }

    /// Sends `req` (already addressed to `target`) and waits for the response
    /// head until the earlier of the response-header timeout and `deadline`.
    pub async fn send(
        &self,
        req: Request<ProxyBody>,
        target: Target<'_>,
        deadline: Instant,
    ) -> Result<Response<Incoming>, ProxyError> {
        let head_deadline = deadline.min(Instant::now() + self.limits.response_header_timeout);
        let client = self.client(target)?;
        match tokio::time::timeout_at(head_deadline, client.request(req)).await {
            Ok(Ok(resp)) => Ok(resp),
            Ok(Err(err)) => Err(self.classify(&err, target)),
            Err(_) => Err(ProxyError::ResponseTimeout {
                site: target.site.name.to_string(),
                backend: target.backend.addr.to_string(),
                after: self.limits.response_header_timeout,
            }),
        }
    }

    fn classify(&self, err: &hyper_util::client::legacy::Error, target: Target<'_>) -> ProxyError {
        let site = target.site.name.to_string();
        let backend = target.backend.addr.to_string();
        if find::<http_body_util::LengthLimitError>(err).is_some() {
            return ProxyError::BodyTooLarge { limit: self.limits.max_request_body };
        }
        if let Some(tls) = find::<ConnectError>(err).filter(|e| !matches!(e, ConnectError::Tcp(_))) {
            return ProxyError::UpstreamTls {
                certificate: tls.is_certificate(),
                site,
                backend,
                reason: chain(tls),
            };
        }
        let io_kind = find::<io::Error>(err).map(io::Error::kind);
        if err.is_connect() {
            return match io_kind {
                Some(io::ErrorKind::ConnectionRefused) => ProxyError::ConnectRefused { site, backend },
                Some(io::ErrorKind::TimedOut) => {
                    ProxyError::ConnectTimeout { site, backend, after: self.limits.connect_timeout }
                }
                _ => ProxyError::ConnectFailed { site, backend, reason: chain(err) },
            };
        }
        let closed = find::<hyper::Error>(err).is_some_and(|e| e.is_incomplete_message() || e.is_canceled())
            || matches!(
                io_kind,
                Some(
                    io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof
                )
            );
        if closed {
            ProxyError::UpstreamClosed { site, backend }
        } else {
            ProxyError::UpstreamProtocol { site, backend, reason: chain(err) }
        }
    }
}

/// The first error of type `E` in the source chain.
pub fn find<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut cur: Option<&'a (dyn StdError + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        cur = e.source();
    }
    None
}

/// The error and its causes on one line, for the `details` of Proxy-Status.
fn chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

/// A pooled client for one site: plain TCP or TLS (HTTP/2 when ALPN agrees).
fn site_client(limits: &Limits, site: &SiteSpec) -> SiteClient {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(limits.connect_timeout));
    http.set_nodelay(true);
    http.set_keepalive(Some(std::time::Duration::from_secs(60)));
    // The URI says https for TLS sites; the TLS itself is the Connector's.
    http.enforce_http(false);
    let connector = Connector::new(http, site.tls.as_deref(), limits.connect_timeout);
    Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .pool_idle_timeout(std::time::Duration::from_secs(60))
        .build(connector)
}
