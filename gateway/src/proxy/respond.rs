//! Respond phase: the response the client sees, from upstream or from the
//! gateway itself.

use http::header::{self, HeaderValue};
use http::{Response, Version};
use http_body_util::BodyExt;

use super::attempt::Answer;
use super::body::{self, ProxyBody};
use super::context::RequestContext;
use super::error::{sf_string, Fault, ProxyError};
use super::headers::{self, ViaValues};
use crate::config::log::Redactor;
use crate::config::{Freshness, ServerSettings, SiteSpec};
use crate::sites::RegistrySites;

/// Upstream response to client response: hop-by-hop fields go, `Via` is
/// added, the serving site and its freshness are named, and the body
/// streams under the request's total deadline.
pub fn from_upstream(
    answer: Answer<'_>,
    sites: &RegistrySites,
    via: &ViaValues,
    server: &ServerSettings,
) -> Response<ProxyBody> {
    let (mut parts, body) = answer.response.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers);
    parts.headers.append(header::VIA, via.for_version(parts.version));
    let site = answer.target.site;
    if let Some(name) = &server.served_by_header {
        parts.headers.insert(name.clone(), sites.pools[answer.target.index].name_value.clone());
    }
    if let (Some(name), Some(value)) = (&server.freshness_header, freshness(site, sites, answer.target.index))
    {
        parts.headers.insert(name.clone(), value);
    }
    // hyper writes the version of the client's connection; a stale one here
    // would only confuse it.
    parts.version = Version::default();
    Response::from_parts(parts, body.map_err(Into::into).boxed())
}

/// What a non-live copy promises, as a structured field:
/// `replica; max-lag=30` (seconds) or `snapshot; as-of="2026-11-20T03:00:00Z"`.
fn freshness(site: &SiteSpec, sites: &RegistrySites, index: usize) -> Option<HeaderValue> {
    let text = match &site.freshness {
        Freshness::Live => return None,
        Freshness::Replica { max_lag } => format!("replica; max-lag={}", max_lag.as_secs()),
        Freshness::Snapshot(_) => match sites.as_of(index) {
            Some(t) => format!("snapshot; as-of=\"{}\"", humantime::format_rfc3339_seconds(t)),
            None => "snapshot; as-of=unknown".to_string(),
        },
    };
    HeaderValue::from_str(&text).ok()
}

/// A response the gateway makes itself: the status of the error, a
/// `Proxy-Status` naming its RFC 9209 type, and a small JSON body.
pub fn error(
    server: &ServerSettings,
    redactor: &Redactor,
    ctx: &RequestContext,
    err: ProxyError,
) -> Response<ProxyBody> {
    let proxy_name = server.name.as_str();
    let status = err.status();
    let kind = err.proxy_status();
    let message = err.to_string();
    // Paths can carry personal data: only the redacted text reaches a log.
    let logged = redactor.apply(&message);
    let id = ctx.request_id.to_str().unwrap_or_default();
    match err.fault() {
        Fault::Client => {
            tracing::debug!(request_id = id, registry = ?ctx.registry, error = %logged, "refused request")
        }
        Fault::Upstream => {
            tracing::warn!(request_id = id, registry = ?ctx.registry, site = ?ctx.site, error = %logged, "upstream failed")
        }
        Fault::Internal => tracing::error!(request_id = id, error = %logged, "internal error"),
        Fault::Plugin => {
            tracing::error!(request_id = id, registry = ?ctx.registry, error = %logged, "plugin failed")
        }
    }
    let body = serde_json::json!({
        "error": kind,
        "status": status.as_u16(),
        "message": message,
        "request_id": ctx.request_id.to_str().unwrap_or_default(),
    });
    let proxy_status = format!("{proxy_name}; error={kind}; details={}", sf_string(&message));
    let mut resp = Response::new(body::full(body.to_string()));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Ok(v) = HeaderValue::from_str(&proxy_status) {
        h.insert(PROXY_STATUS.clone(), v);
    }
    if let Some(secs) = err.retry_after() {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

pub static PROXY_STATUS: header::HeaderName = header::HeaderName::from_static("proxy-status");
