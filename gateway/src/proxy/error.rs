//! Errors the gateway answers itself. Each records whose fault it is, so one
//! function maps it to a status, a `Proxy-Status` error type (RFC 9209) and a
//! metric label.

use std::time::Duration;

use http::StatusCode;

/// Whose fault an error is: decides log level and the metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The request was bad; nothing is wrong with the gateway or the sites.
    Client,
    /// A site failed or was too slow.
    Upstream,
    /// The gateway itself (its configuration or a bug).
    Internal,
    /// A registry's plugin failed (trap, timeout, memory, bad output) and
    /// its fail policy is `closed`.
    Plugin,
}

impl Fault {
    pub fn label(self) -> &'static str {
        match self {
            Fault::Client => "client",
            Fault::Upstream => "upstream",
            Fault::Internal => "internal",
            Fault::Plugin => "plugin",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no registry serves {path}")]
    NoRoute { path: String },
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("request body is larger than this registry's limit of {limit} bytes")]
    BodyTooLarge { limit: u64 },
    #[error("request head is too large: {0}")]
    HeadersTooLarge(String),
    #[error("this request already passed through this gateway (Via names it): loop refused")]
    Loop,
    #[error("site {site} refused the connection")]
    ConnectRefused { site: String, backend: String },
    #[error("connecting to site {site} timed out after {after:?}")]
    ConnectTimeout { site: String, backend: String, after: Duration },
    #[error("cannot connect to site {site}: {reason}")]
    ConnectFailed { site: String, backend: String, reason: String },
    #[error("site {site} closed the connection before answering")]
    UpstreamClosed { site: String, backend: String },
    #[error("site {site} sent no response head within {after:?}")]
    ResponseTimeout { site: String, backend: String, after: Duration },
    #[error("site {site} broke the HTTP exchange: {reason}")]
    UpstreamProtocol { site: String, backend: String, reason: String },
    #[error("TLS with site {site} failed: {reason}")]
    UpstreamTls {
        site: String,
        backend: String,
        reason: String,
        /// The site's certificate was refused (issuer, name, expiry, pin).
        certificate: bool,
    },
    #[error("no site of registry {registry} can serve now")]
    NoHealthySite { registry: String },
    #[error("registry {registry} takes no writes while its home site is unavailable; try again later")]
    WriteRejected { registry: String, retry_after: u32 },
    #[error("too many requests for registry {registry} ({scope}); try again later")]
    RateLimited { registry: String, scope: &'static str, retry_after: u32 },
    #[error("site {site} of registry {registry} is at capacity ({reason}); try again later")]
    Shed { registry: String, site: String, reason: &'static str, retry_after: u32 },
    #[error("internal error: {0}")]
    Internal(String),
    #[error("plugin {plugin} failed in {hook}: {reason}")]
    PluginFailed { plugin: String, hook: &'static str, reason: String },
    #[error("{what} body is larger than plugin {plugin}'s limit of {limit} bytes")]
    PluginBodyTooLarge { plugin: String, what: &'static str, limit: usize },
}

impl ProxyError {
    pub fn fault(&self) -> Fault {
        use ProxyError::*;
        match self {
            NoRoute { .. } | BadRequest(_) | BodyTooLarge { .. } | HeadersTooLarge(_) | Loop => Fault::Client,
            RateLimited { .. } => Fault::Client,
            Shed { .. } => Fault::Upstream,
            ConnectRefused { .. }
            | ConnectTimeout { .. }
            | ConnectFailed { .. }
            | UpstreamClosed { .. }
            | ResponseTimeout { .. }
            | UpstreamProtocol { .. }
            | UpstreamTls { .. }
            | NoHealthySite { .. }
            | WriteRejected { .. } => Fault::Upstream,
            Internal(_) => Fault::Internal,
            PluginFailed { .. } | PluginBodyTooLarge { what: "response", .. } => Fault::Plugin,
            PluginBodyTooLarge { .. } => Fault::Client,
        }
    }

    pub fn status(&self) -> StatusCode {
        use ProxyError::*;
        match self {
            NoRoute { .. } => StatusCode::NOT_FOUND,
            BadRequest(_) => StatusCode::BAD_REQUEST,
            BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            HeadersTooLarge(_) => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Loop => StatusCode::LOOP_DETECTED,
            ConnectRefused { .. }
            | ConnectFailed { .. }
            | UpstreamClosed { .. }
            | UpstreamProtocol { .. }
            | UpstreamTls { .. } => StatusCode::BAD_GATEWAY,
            ConnectTimeout { .. } | ResponseTimeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            NoHealthySite { .. } | WriteRejected { .. } | Shed { .. } => StatusCode::SERVICE_UNAVAILABLE,
            RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            PluginFailed { .. } => StatusCode::BAD_GATEWAY,
            PluginBodyTooLarge { what: "response", .. } => StatusCode::BAD_GATEWAY,
            PluginBodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    /// The RFC 9209 error type for `Proxy-Status`.
    pub fn proxy_status(&self) -> &'static str {
        use ProxyError::*;
        match self {
            NoRoute { .. } => "destination_not_found",
            BadRequest(_) | BodyTooLarge { .. } | HeadersTooLarge(_) => "http_request_error",
            Loop => "proxy_loop_detected",
            ConnectRefused { .. } => "connection_refused",
            ConnectTimeout { .. } => "connection_timeout",
            ConnectFailed { .. } => "destination_unavailable",
            UpstreamClosed { .. } => "connection_terminated",
            ResponseTimeout { .. } => "http_response_timeout",
            UpstreamProtocol { .. } => "http_protocol_error",
            UpstreamTls { certificate: true, .. } => "tls_certificate_error",
            UpstreamTls { .. } => "tls_protocol_error",
            NoHealthySite { .. } | WriteRejected { .. } => "destination_unavailable",
            RateLimited { .. } => "http_request_denied",
            Shed { .. } => "connection_limit_reached",
            Internal(_) | PluginFailed { .. } => "proxy_internal_error",
            PluginBodyTooLarge { what: "response", .. } => "proxy_internal_error",
            PluginBodyTooLarge { .. } => "http_request_error",
        }
    }
}

impl ProxyError {
    /// Seconds a client should wait before trying again, for answers that
    /// say "not now" rather than "never".
    pub fn retry_after(&self) -> Option<u32> {
        match self {
            ProxyError::WriteRejected { retry_after, .. }
            | ProxyError::RateLimited { retry_after, .. }
            | ProxyError::Shed { retry_after, .. } => Some(*retry_after),
            ProxyError::NoHealthySite { .. } => Some(5),
            _ => None,
        }
    }
}

/// Makes `details` safe inside an RFC 8941 sf-string: printable ASCII, with
/// `"` and `\` escaped. Anything else becomes `?`.
pub fn sf_string(details: &str) -> String {
    let mut out = String::with_capacity(details.len() + 2);
    out.push('"');
    for c in details.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => out.push('?'),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sf_strings_escape_quotes_and_drop_control_characters() {
        assert_eq!(sf_string("a \"b\" \\ c\n"), "\"a \\\"b\\\" \\\\ c?\"");
    }

    #[test]
    fn upstream_timeouts_are_504_and_refusals_502() {
        let t = ProxyError::ResponseTimeout {
            site: "home".into(),
            backend: "x:1".into(),
            after: Duration::from_secs(1),
        };
        assert_eq!(t.status(), StatusCode::GATEWAY_TIMEOUT);
        assert_eq!(t.fault(), Fault::Upstream);
        let r = ProxyError::ConnectRefused { site: "home".into(), backend: "x:1".into() };
        assert_eq!((r.status(), r.proxy_status()), (StatusCode::BAD_GATEWAY, "connection_refused"));
    }
}
