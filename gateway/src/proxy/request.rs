//! The request side: checking the head a client sent, and rewriting it into
//! the request that goes upstream.

use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Uri, Version};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::body::ProxyBody;
use super::context::{ConnInfo, RequestContext};
use super::error::ProxyError;
use super::headers::{self, ViaValues};
use super::route::rewrite_path;
use super::Gateway;
use crate::config::{Limits, Route, ServerSettings};
use crate::sites::Target;

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
    let head_bytes: usize = req.uri().to_string().len()
        + headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 4)
            .sum::<usize>();
    if head_bytes > server.max_header_bytes {
        return Err(ProxyError::HeadersTooLarge(format!(
            "{head_bytes} bytes of head, the limit is {}",
            server.max_header_bytes
        )));
    }
    if req.method() == Method::CONNECT {
        return Err(ProxyError::BadRequest(
            "CONNECT tunnels are not offered".into(),
        ));
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
        return Err(ProxyError::BadRequest(format!(
            "path \"{path}\" must start with /"
        )));
    }
    let dot_segment = path.split('/').any(|seg| {
        let s = seg.to_ascii_lowercase().replace("%2e", ".");
        s == "." || s == ".."
    });
    if dot_segment {
        return Err(ProxyError::BadRequest(
            "path must not contain . or .. segments".into(),
        ));
    }
    Ok(())
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
                .ok_or_else(|| {
                    ProxyError::BadRequest("Host header is not a valid host[:port]".into())
                })?;
            Ok(Some(authority.host().to_ascii_lowercase()))
        }
        (None, _) if req.version() == Version::HTTP_11 => Err(ProxyError::BadRequest(
            "HTTP/1.1 request without Host header".into(),
        )),
        (None, _) => Ok(None),
    }
}

/// Forward phase, request half: readdresses the request to `target`,
/// rewrites the path, applies proxy header semantics and caps the body.
/// The client's Host is preserved (sites serve the public name).
pub fn upstream_request(
    req: Request<Incoming>,
    ctx: &RequestContext,
    conn: &ConnInfo,
    route: &Route,
    target: Target<'_>,
    limits: &Limits,
    gateway: &Gateway,
) -> Result<Request<ProxyBody>, ProxyError> {
    let (mut parts, body) = req.into_parts();
    if let Some(len) = content_length(&parts.headers) {
        if len > limits.max_request_body {
            return Err(ProxyError::BodyTooLarge {
                limit: limits.max_request_body,
            });
        }
    }

    let path = rewrite_path(route, parts.uri.path());
    let path_and_query = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let path_and_query = PathAndQuery::try_from(path_and_query)
        .map_err(|e| ProxyError::BadRequest(format!("cannot rewrite path: {e}")))?;
    if !parts.headers.contains_key(header::HOST) {
        if let Some(authority) = parts.uri.authority() {
            let host = HeaderValue::from_str(authority.as_str())
                .map_err(|_| ProxyError::BadRequest("invalid authority".into()))?;
            parts.headers.insert(header::HOST, host);
        }
    }
    let mut uri = http::uri::Parts::default();
    uri.scheme = Some(match target.site.tls {
        Some(_) => Scheme::HTTPS,
        None => Scheme::HTTP,
    });
    uri.authority = Some(target.backend.clone());
    uri.path_and_query = Some(path_and_query);
    parts.uri =
        Uri::from_parts(uri).map_err(|e| ProxyError::Internal(format!("upstream uri: {e}")))?;

    let client_version = parts.version;
    parts.version = Version::HTTP_11;
    let headers = &mut parts.headers;
    headers::strip_hop_by_hop(headers);
    headers::set_forwarded(
        headers,
        conn.peer,
        conn.proto,
        &gateway.config().server.trusted_proxies,
    );
    headers.append(header::VIA, gateway.via.for_version(client_version));
    headers.insert(headers::X_REQUEST_ID.clone(), ctx.request_id.clone());

    let body: ProxyBody = Limited::new(body, limits.max_request_body as usize).boxed();
    Ok(Request::from_parts(parts, body))
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
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
