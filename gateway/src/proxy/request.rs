//! The request side: checking the head a client sent, and rewriting it into
//! the request that goes upstream.

use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Uri, Version};

use super::body::ProxyBody;
use super::context::{ConnInfo, RequestContext};
use super::error::ProxyError;
use super::headers::{self, ViaValues};
use super::route::rewrite_path;
use super::Generation;
use crate::config::{Limits, Route, ServerSettings};

/// Check-head phase: what must hold before a request is routed. Returns the
/// request's host (lower-case, without port) when it has one.
///
/// hyper enforces hard ceilings on the head while parsing; the configured
/// limits are checked here so the answer carries `Proxy-Status`.
pub fn check_head<B>(
    req: &Request<B>,
    server: &ServerSettings,
    via: &ViaValues,
) -> Result<Option<String>, ProxyError> {
    let headers = req.headers();
    if headers.len() > server.max_headers {
        return Err(ProxyError::HeadersTooLarge(format!(
            "{} header fields, the limit is {}",
            headers.len(),
            server.max_headers
        )));
    }
    let uri = req.uri();
    let uri_bytes = uri.scheme_str().map_or(0, |s| s.len() + 3)
        + uri.authority().map_or(0, |a| a.as_str().len())
        + uri.path_and_query().map_or(1, |pq| pq.as_str().len());
    let head_bytes: usize =
        uri_bytes + headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum::<usize>();
    if head_bytes > server.max_header_bytes {
        return Err(ProxyError::HeadersTooLarge(format!(
            "{head_bytes} bytes of head, the limit is {}",
            server.max_header_bytes
        )));
    }
    if req.method() == Method::CONNECT {
        return Err(ProxyError::BadRequest("CONNECT tunnels are not offered".into()));
    }
    check_path(req.uri().path())?;
    if via.seen_in(headers) {
        return Err(ProxyError::Loop);
    }
    request_host(req)
}

/// Paths must be origin-form and free of dot segments: a `..` could climb
/// out of the prefix that chose the registry once the upstream normalises it.
fn check_path(path: &str) -> Result<(), ProxyError> {
    if !path.starts_with('/') {
        return Err(ProxyError::BadRequest(format!("path \"{path}\" must start with /")));
    }
    if path.split('/').any(is_dot_segment) {
        return Err(ProxyError::BadRequest("path must not contain . or .. segments".into()));
    }
    Ok(())
}

/// `.` or `..`, also percent-encoded (`%2e`, `%2E`); without allocating,
/// since every request passes here.
fn is_dot_segment(seg: &str) -> bool {
    let b = seg.as_bytes();
    if b.len() > 6 || !b.iter().any(|&c| c == b'.' || c == b'%') {
        return false;
    }
    let mut dots = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'.' {
            i += 1;
        } else if b[i] == b'%' && b.len() >= i + 3 && b[i + 1] == b'2' && (b[i + 2] | 0x20) == b'e' {
            i += 3;
        } else {
            return false;
        }
        dots += 1;
    }
    dots == 1 || dots == 2
}

/// The authority of an absolute-form or HTTP/2 request wins over `Host`
/// (RFC 9112 3.2.2); HTTP/1.1 without either is a 400 (RFC 9112 3.2).
fn request_host<B>(req: &Request<B>) -> Result<Option<String>, ProxyError> {
    if let Some(host) = req.uri().host() {
        return Ok(Some(host.to_ascii_lowercase()));
    }
    let mut hosts = req.headers().get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(ProxyError::BadRequest("more than one Host header".into())),
        (Some(value), None) => {
            let authority = value
                .to_str()
                .ok()
                .and_then(|s| s.parse::<Authority>().ok())
                .ok_or_else(|| ProxyError::BadRequest("Host header is not a valid host[:port]".into()))?;
            Ok(Some(authority.host().to_ascii_lowercase()))
        }
        (None, _) if req.version() == Version::HTTP_11 => {
            Err(ProxyError::BadRequest("HTTP/1.1 request without Host header".into()))
        }
        (None, _) => Ok(None),
    }
}

/// The rewritten request head, addressed to no backend yet: each attempt
/// (first try or retry on another site) builds its request from it.
#[derive(Debug)]
pub struct UpstreamHead {
    pub method: Method,
    pub path_and_query: PathAndQuery,
    pub headers: http::HeaderMap,
}

impl UpstreamHead {
    /// The request for one attempt at `backend`; `tls`: the site is reached
    /// over TLS (the connector reads the scheme).
    pub fn request(
        &self,
        backend: &Authority,
        tls: bool,
        headers: http::HeaderMap,
        body: ProxyBody,
    ) -> Request<ProxyBody> {
        let mut uri = http::uri::Parts::default();
        uri.scheme = Some(if tls { Scheme::HTTPS } else { Scheme::HTTP });
        uri.authority = Some(backend.clone());
        uri.path_and_query = Some(self.path_and_query.clone());
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        // Scheme, authority and path are all present, so this cannot fail.
        *req.uri_mut() = Uri::from_parts(uri).unwrap_or_default();
        *req.version_mut() = Version::HTTP_11;
        *req.headers_mut() = headers;
        req
    }
}

/// Forward phase, request half: rewrites the path and applies proxy header
/// semantics. The client's Host is preserved (sites serve the public name).
pub fn upstream_head(
    parts: &mut http::request::Parts,
    ctx: &RequestContext,
    conn: &ConnInfo,
    route: &Route,
    limits: &Limits,
    gateway: &Generation,
) -> Result<UpstreamHead, ProxyError> {
    if let Some(len) = content_length(&parts.headers) {
        if len > limits.max_request_body {
            return Err(ProxyError::BodyTooLarge { limit: limits.max_request_body });
        }
    }
    let path_and_query = match (&route.rewrite, parts.uri.path_and_query()) {
        // The common case: the path goes up as it came, no copy.
        (crate::config::Rewrite::Keep, Some(pq)) => pq.clone(),
        _ => {
            let path = rewrite_path(route, parts.uri.path());
            let pq = match parts.uri.query() {
                Some(q) => format!("{path}?{q}"),
                None => path,
            };
            PathAndQuery::try_from(pq)
                .map_err(|e| ProxyError::BadRequest(format!("cannot rewrite path: {e}")))?
        }
    };
    let mut headers = std::mem::take(&mut parts.headers);
    if !headers.contains_key(header::HOST) {
        if let Some(authority) = parts.uri.authority() {
            let host = HeaderValue::from_str(authority.as_str())
                .map_err(|_| ProxyError::BadRequest("invalid authority".into()))?;
            headers.insert(header::HOST, host);
        }
    }
    headers::strip_hop_by_hop(&mut headers);
    headers::set_forwarded(&mut headers, &conn.forwarded, &gateway.config.server.trusted_proxies);
    headers.append(header::VIA, gateway.via.for_version(parts.version));
    headers.insert(headers::X_REQUEST_ID.clone(), ctx.request_id.clone());
    Ok(UpstreamHead { method: parts.method.clone(), path_and_query, headers })
}

pub fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(header::CONTENT_LENGTH)?.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_are_refused_even_when_encoded() {
        assert!(check_path("/population/../tax").is_err());
        assert!(check_path("/population/%2E%2e/tax").is_err());
        assert!(check_path("/population/./x").is_err());
        assert!(check_path("/population/a..b").is_ok());
        assert!(check_path("*").is_err());
    }
}
