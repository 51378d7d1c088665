//! Header semantics of a proxy (RFC 9110 section 7): hop-by-hop fields
//! removed, `Via` added, forwarding headers set, request ids kept or made.

use std::net::{IpAddr, SocketAddr};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::Version;
use ipnet::IpNet;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");

/// Removes the fields that describe one connection, not the message:
/// those named by `Connection`, the fixed set of RFC 9110 7.6.1, and every
/// `Proxy-*` field except `Proxy-Status` (which is meant to travel).
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the (few) names present instead of a lookup for each
    // name that might be: most messages carry none or only Connection.
    let mut found: Vec<HeaderName> = Vec::new();
    let mut named_by_connection = false;
    for name in headers.keys() {
        if name == header::CONNECTION {
            named_by_connection = true;
            found.push(name.clone());
        } else if is_hop_by_hop(name) {
            found.push(name.clone());
        }
    }
    if named_by_connection {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
            .collect();
        found.extend(named);
    }
    for name in found {
        headers.remove(name);
    }
}

fn is_hop_by_hop(name: &HeaderName) -> bool {
    name == header::TE
        || name == header::TRAILER
        || name == header::TRANSFER_ENCODING
        || name == header::UPGRADE
        || name == header::PROXY_AUTHORIZATION
        || name == header::PROXY_AUTHENTICATE
        || *name == KEEP_ALIVE
        || (name.as_str().starts_with("proxy-") && name.as_str() != "proxy-status")
}

/// `Via` values for each protocol version, computed once per config.
#[derive(Debug, Clone)]
pub struct ViaValues {
    name: String,
    http10: HeaderValue,
    http11: HeaderValue,
    http2: HeaderValue,
}

impl ViaValues {
    pub fn new(name: &str) -> ViaValues {
        let v = |proto: &str| HeaderValue::from_str(&format!("{proto} {name}")).expect("name is a token");
        ViaValues { name: name.to_string(), http10: v("1.0"), http11: v("1.1"), http2: v("2") }
    }

    pub fn for_version(&self, version: Version) -> HeaderValue {
        match version {
            Version::HTTP_10 | Version::HTTP_09 => self.http10.clone(),
            Version::HTTP_2 | Version::HTTP_3 => self.http2.clone(),
            _ => self.http11.clone(),
        }
    }

    /// True when an incoming `Via` already names this gateway.
    pub fn seen_in(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(header::VIA)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|hop| hop.split_whitespace().nth(1) == Some(self.name.as_str()))
    }
}

/// A client connection's forwarding values, computed once per connection
/// rather than formatted again for every request on it.
#[derive(Debug, Clone)]
pub struct ForwardedFor {
    pub ip: IpAddr,
    pub proto: &'static str,
    ip_value: HeaderValue,
    forwarded_value: HeaderValue,
}

impl ForwardedFor {
    pub fn new(peer: SocketAddr, proto: &'static str) -> ForwardedFor {
        let ip = peer.ip().to_canonical();
        let ip_text = ip.to_string();
        let node = match ip {
            IpAddr::V4(_) => ip_text.clone(),
            IpAddr::V6(_) => format!("\"[{ip_text}]\""),
        };
        let value =
            |s: &str| HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("unknown"));
        ForwardedFor {
            ip,
            proto,
            ip_value: value(&ip_text),
            forwarded_value: value(&format!("for={node};proto={proto}")),
        }
    }
}

/// Sets X-Forwarded-For / -Proto and Forwarded. What the client sent is kept
/// (and extended) only when the peer is a trusted proxy; otherwise it is
/// replaced, so a citizen cannot spoof their address into upstream logs.
pub fn set_forwarded(headers: &mut HeaderMap, from: &ForwardedFor, trusted: &[IpNet]) {
    let trust = !trusted.is_empty() && trusted.iter().any(|net| net.contains(&from.ip));
    if !trust {
        headers.insert(X_FORWARDED_FOR.clone(), from.ip_value.clone());
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(from.proto));
        headers.remove(&X_FORWARDED_HOST);
        headers.insert(header::FORWARDED, from.forwarded_value.clone());
        return;
    }
    let extend = |headers: &mut HeaderMap, name: &HeaderName, own: &HeaderValue| {
        let value = match joined(headers, name) {
            Some(prev) => {
                HeaderValue::from_str(&format!("{prev}, {}", own.to_str().unwrap_or_default())).ok()
            }
            None => None,
        };
        headers.insert(name.clone(), value.unwrap_or_else(|| own.clone()));
    };
    extend(headers, &X_FORWARDED_FOR, &from.ip_value);
    extend(headers, &header::FORWARDED, &from.forwarded_value);
    if !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(from.proto));
    }
}

/// All field lines of `name` joined with ", ", if any are valid text.
fn joined(headers: &HeaderMap, name: &HeaderName) -> Option<String> {
    let mut out: Option<String> = None;
    for v in headers.get_all(name) {
        let Ok(text) = v.to_str() else { continue };
        match &mut out {
            Some(s) => {
                s.push_str(", ");
                s.push_str(text);
            }
            None => out = Some(text.to_string()),
        }
    }
    out
}

/// A client's `x-request-id` is kept when it is one short, printable token
/// (so it can go into logs verbatim); otherwise the gateway makes a UUIDv4.
pub fn request_id(headers: &HeaderMap) -> HeaderValue {
    let mut values = headers.get_all(&X_REQUEST_ID).iter();
    if let (Some(v), None) = (values.next(), values.next()) {
        if well_formed_request_id(v.as_bytes()) {
            return v.clone();
        }
    }
    new_request_id()
}

fn well_formed_request_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len()) && id.iter().all(|b| b.is_ascii_alphanumeric() || b"-_.:+/=".contains(b))
}

pub fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bits = fastrand::u128(..);
    // RFC 9562 version 4, variant 10xx.
    bits = (bits & !(0xf << 76)) | (0x4 << 76);
    bits = (bits & !(0x3 << 62)) | (0x2 << 62);
    let mut out = [0u8; 36];
    let mut nibble = 0;
    for (i, slot) in out.iter_mut().enumerate() {
        if matches!(i, 8 | 13 | 18 | 23) {
            *slot = b'-';
        } else {
            *slot = HEX[((bits >> (124 - 4 * nibble)) & 0xf) as usize];
            nibble += 1;
        }
    }
    HeaderValue::from_bytes(&out).expect("hex and dashes are valid header bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn connection_named_headers_and_proxy_headers_go_but_proxy_status_stays() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic x"),
            ("proxy-foo", "1"),
            ("proxy-status", "up; error=x"),
            ("te", "trailers"),
            ("accept", "application/json"),
        ]);
        strip_hop_by_hop(&mut h);
        let mut left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        left.sort_unstable();
        assert_eq!(left, vec!["accept", "proxy-status"]);
    }

    #[test]
    fn untrusted_peers_cannot_spoof_forwarding_headers() {
        let mut h = map(&[("x-forwarded-for", "6.6.6.6"), ("forwarded", "for=6.6.6.6")]);
        set_forwarded(&mut h, &ForwardedFor::new("10.1.2.3:5000".parse().unwrap(), "http"), &[]);
        assert_eq!(h["x-forwarded-for"], "10.1.2.3");
        assert_eq!(h["forwarded"], "for=10.1.2.3;proto=http");
        assert_eq!(h["x-forwarded-proto"], "http");
    }

    #[test]
    fn trusted_peers_extend_the_chain() {
        let mut h = map(&[("x-forwarded-for", "198.51.100.7"), ("x-forwarded-proto", "https")]);
        let trusted = vec!["10.0.0.0/8".parse().unwrap()];
        set_forwarded(&mut h, &ForwardedFor::new("10.1.2.3:5000".parse().unwrap(), "http"), &trusted);
        assert_eq!(h["x-forwarded-for"], "198.51.100.7, 10.1.2.3");
        assert_eq!(h["x-forwarded-proto"], "https");
    }

    #[test]
    fn request_ids_are_kept_when_well_formed_and_made_otherwise() {
        assert_eq!(request_id(&map(&[("x-request-id", "abc-123")])), "abc-123");
        let made = request_id(&map(&[("x-request-id", "has space")]));
        assert_eq!(made.len(), 36);
        assert_eq!(made.as_bytes()[14], b'4');
        assert_ne!(new_request_id(), new_request_id());
    }

    #[test]
    fn via_detects_our_own_name() {
        let via = ViaValues::new("deg");
        assert!(via.seen_in(&map(&[("via", "1.1 other, 1.1 deg")])));
        assert!(!via.seen_in(&map(&[("via", "1.1 degx")])));
    }
}
