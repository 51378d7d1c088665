//! What to send and where: the parsed URL, method and headers, resolved once
//! before the run so name resolution never lands inside a measured request.

use std::net::{SocketAddr, ToSocketAddrs};

use anyhow::{bail, Context};
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, HOST};
use http::{HeaderMap, Method, Request, Uri, Version};
use http_body_util::Full;

#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    pub method: Method,
    /// Absolute URI: HTTP/2 takes :scheme and :authority from it.
    pub absolute: Uri,
    /// Origin-form URI: HTTP/1.1 to an origin or reverse proxy must not send
    /// the absolute form, which asks the peer to act as a forward proxy.
    pub origin_form: Uri,
    pub headers: HeaderMap,
    pub h2: bool,
    /// Request body; empty for GET. A cheap reference-counted clone per request.
    pub body: Bytes,
}

impl Target {
    pub fn new(url: &str, method: &str, headers: &[String], h2: bool) -> anyhow::Result<Self> {
        let absolute: Uri = url.parse().with_context(|| format!("invalid URL {url:?}"))?;
        if absolute.scheme_str() != Some("http") {
            bail!("only http:// URLs are supported (got {url:?})");
        }
        let authority = absolute.authority().with_context(|| format!("URL {url:?} has no host"))?.clone();
        if authority.as_str().contains('@') {
            bail!("credentials in the URL are not supported; use --header 'authorization: ...'");
        }
        let port = authority.port_u16().unwrap_or(80);
        let addr = (authority.host().trim_matches(['[', ']']), port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {authority}"))?
            .next()
            .with_context(|| format!("{authority} resolved to no address"))?;
        let path = absolute.path_and_query().map_or("/", |p| p.as_str());
        let origin_form: Uri = path.parse().context("invalid path")?;
        let method =
            Method::from_bytes(method.as_bytes()).with_context(|| format!("invalid method {method:?}"))?;

        let mut header_map = HeaderMap::new();
        if !h2 {
            // hyper's low-level client does not add Host; HTTP/1.1 requires it.
            header_map.insert(HOST, HeaderValue::from_str(authority.as_str())?);
        }
        for line in headers {
            let (name, value) = parse_header(line)?;
            if name == HOST {
                header_map.insert(name, value);
            } else {
                header_map.append(name, value);
            }
        }
        Ok(Self { addr, method, absolute, origin_form, headers: header_map, h2, body: Bytes::new() })
    }

    /// The same target sending `body` with every request.
    pub fn with_body(mut self, body: Bytes) -> Self {
        self.body = body;
        self
    }

    pub fn request(&self) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(self.body.clone()));
        *req.method_mut() = self.method.clone();
        *req.headers_mut() = self.headers.clone();
        if self.h2 {
            *req.uri_mut() = self.absolute.clone();
            *req.version_mut() = Version::HTTP_2;
        } else {
            *req.uri_mut() = self.origin_form.clone();
        }
        req
    }
}

/// Parses a curl-style `name: value` header.
pub fn parse_header(line: &str) -> anyhow::Result<(HeaderName, HeaderValue)> {
    let (name, value) =
        line.split_once(':').with_context(|| format!("header {line:?} is not of the form 'name: value'"))?;
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .with_context(|| format!("invalid header name in {line:?}"))?;
    let value =
        HeaderValue::from_str(value.trim()).with_context(|| format!("invalid header value in {line:?}"))?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http1_request_is_origin_form_with_host() {
        let headers = vec!["x-road-client: EE/GOV/1/test".to_string(), "accept: application/json".into()];
        let t =
            Target::new("http://127.0.0.1:18080/population/people/1?x=1", "GET", &headers, false).unwrap();
        assert_eq!(t.addr, "127.0.0.1:18080".parse().unwrap());
        let req = t.request();
        assert_eq!(req.uri(), "/population/people/1?x=1");
        assert_eq!(req.headers()[HOST], "127.0.0.1:18080");
        assert_eq!(req.headers()["x-road-client"], "EE/GOV/1/test");
        assert_eq!(req.method(), Method::GET);
    }

    #[test]
    fn h2_request_is_absolute_without_host() {
        let t = Target::new("http://127.0.0.1:9/", "HEAD", &[], true).unwrap();
        let req = t.request();
        assert_eq!(req.uri(), "http://127.0.0.1:9/");
        assert!(req.headers().get(HOST).is_none());
        assert_eq!(req.method(), Method::HEAD);
    }

    #[test]
    fn default_port_and_path() {
        let t = Target::new("http://127.0.0.1", "GET", &[], false).unwrap();
        assert_eq!(t.addr.port(), 80);
        assert_eq!(t.request().uri(), "/");
    }

    #[test]
    fn rejects_unsupported_urls_and_headers() {
        assert!(Target::new("https://127.0.0.1/", "GET", &[], false).is_err());
        assert!(Target::new("127.0.0.1:80/", "GET", &[], false).is_err());
        assert!(Target::new("http://u:p@127.0.0.1/", "GET", &[], false).is_err());
        assert!(Target::new("http://127.0.0.1/", "G T", &[], false).is_err());
        assert!(parse_header("no-colon").is_err());
        assert!(parse_header("bad name: v").is_err());
        let (n, v) = parse_header("Host:  example.test ").unwrap();
        assert_eq!((n.as_str(), v.to_str().unwrap()), ("host", "example.test"));
    }
}
