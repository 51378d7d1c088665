//! The plugin phases of the request path: on-request (after route),
//! choose-site (ordering the planned sites) and on-response (after forward).
//! A registry without plugins pays nothing here: every phase returns at once.
//!
//! Each call runs under the plugin's limits; a failure is logged and counted,
//! then follows the plugin's fail policy: `open` skips the plugin, `closed`
//! answers the request with a 502 naming it.

use std::time::Instant as StdInstant;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::request::Parts;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::body::{self, ProxyBody};
use super::context::{ConnInfo, RequestContext};
use super::error::ProxyError;
use super::plugin_body::{read_capped, Capped};
use crate::admin::metrics::Metrics;
use crate::config::{Freshness, Limits, SiteKind};
use crate::plugin::{wit, Chain, FailPolicy, HookFailure, LoadedPlugin, MetricOp, OverCap};
use crate::sites::backend::now_ms;
use crate::sites::RegistrySites;

/// The request body after on-request.
pub enum Inbound {
    /// No plugin needed it: streams as it came.
    Streaming(Incoming),
    /// Read whole for plugins (maybe replaced by one).
    Buffered(Bytes),
    /// Longer than the plugins' cap: streams on, the part read first.
    Over(ProxyBody),
}

impl Inbound {
    /// No body at all: the only requests the cache may answer.
    pub fn is_empty(&self) -> bool {
        match self {
            Inbound::Streaming(incoming) => http_body::Body::is_end_stream(incoming),
            Inbound::Buffered(b) => b.is_empty(),
            Inbound::Over(_) => false,
        }
    }
}

/// What on-request decided for the rest of the path.
pub enum OnRequest {
    Go {
        body: Inbound,
        /// A site a plugin asked to try first.
        hint: Option<String>,
        /// The request as plugins see it (without body), for later hooks.
        seen: Option<wit::Request>,
        /// A burst priority class a plugin put the request in.
        priority: Option<String>,
    },
    Respond(Response<ProxyBody>),
}

/// Runs `f` on `plugin`, times and counts it, then [`settle`]s the result.
fn call<R>(
    plugin: &LoadedPlugin,
    hook: &'static str,
    ctx: &RequestContext,
    metrics: &Metrics,
    f: impl FnOnce(&LoadedPlugin) -> (Result<R, HookFailure>, Vec<MetricOp>),
) -> Result<Option<R>, ProxyError> {
    let started = StdInstant::now();
    let (result, ops) = f(plugin);
    let secs = started.elapsed().as_secs_f64();
    let (spec, m) = (&plugin.spec, &metrics.plugins);
    m.duration.with_label_values(&[&spec.registry, &spec.name, hook]).observe(secs);
    m.apply(&spec.name, ops);
    if result.is_ok() {
        m.calls.with_label_values(&[&spec.registry, &spec.name, hook, "ok"]).inc();
    }
    settle(plugin, hook, ctx, metrics, result)
}

/// Applies the fail policy to a hook's result (the call itself, or applying
/// what it returned): a failure is logged and counted, then `open` skips
/// the plugin (`Ok(None)`) and `closed` fails the request.
fn settle<R>(
    plugin: &LoadedPlugin,
    hook: &'static str,
    ctx: &RequestContext,
    metrics: &Metrics,
    result: Result<R, HookFailure>,
) -> Result<Option<R>, ProxyError> {
    let failure = match result {
        Ok(r) => return Ok(Some(r)),
        Err(failure) => failure,
    };
    let spec = &plugin.spec;
    metrics.plugins.calls.with_label_values(&[&spec.registry, &spec.name, hook, failure.label()]).inc();
    let id = ctx.request_id.to_str().unwrap_or_default();
    tracing::warn!(request_id = id, registry = %spec.registry, plugin = %spec.name, hook, policy = ?spec.fail, error = %failure, "plugin failed");
    match spec.fail {
        FailPolicy::Open => Ok(None),
        FailPolicy::Closed => {
            Err(ProxyError::PluginFailed { plugin: spec.name.clone(), hook, reason: failure.to_string() })
        }
    }
}

fn wit_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect()
}

/// Applies removals, then replacements; a bad name or value is the plugin's fault.
fn apply_headers(h: &mut HeaderMap, remove: &[String], set: &[(String, String)]) -> Result<(), HookFailure> {
    for name in remove {
        h.remove(name.as_str());
    }
    for (name, value) in set {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| HookFailure::Output(format!("invalid header name {name:?}")))?;
        let v = HeaderValue::from_str(value)
            .map_err(|_| HookFailure::Output(format!("invalid value for header {name}")))?;
        h.insert(n, v);
    }
    Ok(())
}

fn set_length(h: &mut HeaderMap, len: usize) {
    h.remove(header::TRANSFER_ENCODING);
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
}

/// On-request phase: each plugin in turn may change the request, answer
/// it, or hint a site. The body is read only when a plugin declared it.
pub async fn on_request(
    chain: &Chain,
    parts: &mut Parts,
    incoming: Incoming,
    ctx: &RequestContext,
    conn: &ConnInfo,
    metrics: &Metrics,
    limits: &Limits,
) -> Result<OnRequest, ProxyError> {
    if chain.is_empty() {
        return Ok(OnRequest::Go {
            body: Inbound::Streaming(incoming),
            hint: None,
            seen: None,
            priority: None,
        });
    }
    let mut seen = wit::Request {
        method: parts.method.as_str().to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: wit_headers(&parts.headers),
        body: None,
        registry: ctx.registry.as_deref().unwrap_or_default().to_string(),
        request_id: ctx.request_id.to_str().unwrap_or_default().to_string(),
        client_ip: conn.peer.ip().to_string(),
    };
    let mut inbound = match chain.request_body_cap().filter(|_| chain.wants(|m| m.on_request)) {
        Some(cap) => read_request_body(incoming, cap, limits, ctx).await?,
        None => Inbound::Streaming(incoming),
    };
    let (mut hint, mut priority) = (None, None);
    for plugin in chain.plugins.iter().filter(|p| p.manifest.on_request) {
        let wants_body = plugin.manifest.request_body;
        seen.body = match &inbound {
            Inbound::Buffered(b) if wants_body && b.len() <= plugin.spec.max_body => Some(b.to_vec()),
            Inbound::Streaming(_) | Inbound::Buffered(_) if !wants_body => None,
            _ => match plugin.spec.over_cap {
                OverCap::Skip => continue,
                OverCap::Reject => return Err(too_large(plugin, "request")),
            },
        };
        let Some(action) = call(plugin, "on_request", ctx, metrics, |p| p.on_request(&seen))? else {
            continue;
        };
        let (changes, site) = match action {
            wit::RequestAction::Respond(r) => match respond(plugin, r, ctx, metrics)? {
                Some(resp) => return Ok(OnRequest::Respond(resp)),
                None => continue,
            },
            wit::RequestAction::Continue(c) => (c, None),
            wit::RequestAction::HintSite((site, c)) => (c, Some(site)),
        };
        let class = changes.priority.clone();
        let applied = apply_request(parts, &mut inbound, changes);
        if settle(plugin, "on_request", ctx, metrics, applied)?.is_some() {
            hint = site.or(hint);
            priority = class.or(priority);
        }
        seen.headers = wit_headers(&parts.headers);
        seen.path = parts.uri.path().to_string();
    }
    seen.body = None;
    Ok(OnRequest::Go { body: inbound, hint, seen: Some(seen), priority })
}

fn too_large(plugin: &LoadedPlugin, what: &'static str) -> ProxyError {
    ProxyError::PluginBodyTooLarge { plugin: plugin.spec.name.clone(), what, limit: plugin.spec.max_body }
}

async fn read_request_body(
    incoming: Incoming,
    cap: usize,
    limits: &Limits,
    ctx: &RequestContext,
) -> Result<Inbound, ProxyError> {
    let max = usize::try_from(limits.max_request_body).unwrap_or(usize::MAX);
    let limited = http_body_util::Limited::new(incoming, max).boxed();
    match read_capped(limited, cap, ctx.deadline).await {
        Ok(Capped::Whole(b)) => Ok(Inbound::Buffered(b)),
        Ok(Capped::Over(rest)) => Ok(Inbound::Over(rest)),
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(ProxyError::BodyTooLarge { limit: limits.max_request_body })
        }
        Err(e) => Err(ProxyError::BadRequest(format!("request body: {e}"))),
    }
}

fn apply_request(
    parts: &mut Parts,
    inbound: &mut Inbound,
    c: wit::RequestChanges,
) -> Result<(), HookFailure> {
    apply_headers(&mut parts.headers, &c.remove_headers, &c.set_headers)?;
    if let Some(path) = c.path {
        let uri = http::uri::PathAndQuery::try_from(path.as_str())
            .map_err(|_| HookFailure::Output(format!("invalid path {path:?}")))?;
        let mut uri_parts = std::mem::take(&mut parts.uri).into_parts();
        uri_parts.path_and_query = Some(uri);
        parts.uri = http::Uri::from_parts(uri_parts).map_err(|e| HookFailure::Output(e.to_string()))?;
    }
    if let (Some(new), Inbound::Buffered(_)) = (c.body, &*inbound) {
        set_length(&mut parts.headers, new.len());
        *inbound = Inbound::Buffered(Bytes::from(new));
    }
    Ok(())
}

/// A plugin's own answer; its headers are checked like any change
/// (`None`: they were bad and the policy says skip the plugin).
fn respond(
    plugin: &LoadedPlugin,
    r: wit::Response,
    ctx: &RequestContext,
    metrics: &Metrics,
) -> Result<Option<Response<ProxyBody>>, ProxyError> {
    let mut resp = Response::new(body::empty());
    *resp.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let applied = apply_headers(resp.headers_mut(), &[], &r.headers);
    if settle(plugin, "on_request", ctx, metrics, applied)?.is_none() {
        return Ok(None);
    }
    set_length(resp.headers_mut(), r.body.len());
    Ok(Some(resp.map(|_| body::full(r.body))))
}

/// Choose-site phase: a hint from on-request moves its site to the front
/// of `plan`, then each routing plugin may pick the site to try first.
/// Only sites already in `plan` can be chosen: plugins steer among the
/// sites health, continuity and the write policy allow, never around them.
pub fn order_sites(
    chain: &Chain,
    seen: Option<&wit::Request>,
    hint: Option<&str>,
    plan: &mut Vec<usize>,
    sites: &RegistrySites,
    ctx: &RequestContext,
    metrics: &Metrics,
) -> Result<(), ProxyError> {
    let to_front = |plan: &mut Vec<usize>, name: &str| {
        if let Some(pos) = plan.iter().position(|&i| &*sites.pools[i].spec.name == name) {
            let site = plan.remove(pos);
            plan.insert(0, site);
        }
    };
    if let Some(site) = hint {
        to_front(plan, site);
    }
    let Some(seen) = seen.filter(|_| chain.wants(|m| m.choose_site)) else { return Ok(()) };
    let snapshot = site_snapshot(sites, plan);
    for plugin in chain.plugins.iter().filter(|p| p.manifest.choose_site) {
        if let Some(Some(site)) =
            call(plugin, "choose_site", ctx, metrics, |p| p.choose_site(seen, &snapshot))?
        {
            to_front(plan, &site);
        }
    }
    Ok(())
}

/// The registry's sites as routing plugins see them, read live.
fn site_snapshot(sites: &RegistrySites, plan: &[usize]) -> Vec<wit::SiteInfo> {
    let now = now_ms();
    let unix = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).ok();
    sites
        .pools
        .iter()
        .enumerate()
        .map(|(i, pool)| {
            let usable = pool.backends.iter().filter(|b| b.usable(now)).count();
            let health = match usable {
                0 => wit::Health::Down,
                n if n == pool.backends.len() => wit::Health::Healthy,
                _ => wit::Health::Degraded,
            };
            let in_flight =
                pool.backends.iter().map(|b| b.in_flight.load(std::sync::atomic::Ordering::Relaxed)).sum();
            let latency_ms =
                pool.backends.iter().filter_map(|b| b.latency()).min().map(|d| d.as_millis() as u32);
            let freshness = match &pool.spec.freshness {
                Freshness::Live => wit::Freshness::Live,
                Freshness::Replica { max_lag } => wit::Freshness::Replica(max_lag.as_secs() as u32),
                Freshness::Snapshot(_) => {
                    wit::Freshness::Snapshot(sites.as_of(i).and_then(unix).map(|d| d.as_secs()))
                }
            };
            wit::SiteInfo {
                name: pool.spec.name.to_string(),
                kind: kind(pool.spec.kind),
                health,
                in_flight,
                latency_ms,
                freshness,
                eligible: plan.contains(&i),
            }
        })
        .collect()
}

fn kind(k: SiteKind) -> wit::SiteKind {
    match k {
        SiteKind::Home => wit::SiteKind::Home,
        SiteKind::Embassy => wit::SiteKind::Embassy,
    }
}

/// On-response phase: each plugin in turn may rewrite status, headers and
/// (when it declared the body) the body. Runs after the respond step's
/// header work, so plugins see `x-served-by` and freshness too.
pub async fn on_response(
    chain: &Chain,
    seen: Option<&wit::Request>,
    resp: Response<ProxyBody>,
    sites: &RegistrySites,
    ctx: &RequestContext,
    metrics: &Metrics,
) -> Result<Response<ProxyBody>, ProxyError> {
    let (Some(seen), Some(site)) = (seen, ctx.site_index) else { return Ok(resp) };
    if !chain.wants(|m| m.on_response) {
        return Ok(resp);
    }
    let spec = &sites.pools[site].spec;
    let served = wit::ServedBy { site: spec.name.to_string(), kind: kind(spec.kind) };
    let (mut parts, body) = resp.into_parts();
    let mut buffered = match chain.response_body_cap() {
        Some(cap) => match read_capped(body, cap, ctx.deadline).await {
            Ok(Capped::Whole(b)) => Ok(b),
            Ok(Capped::Over(rest)) => Err(rest),
            Err(e) => {
                return Err(ProxyError::UpstreamClosed {
                    site: format!("{} ({e})", spec.name),
                    backend: String::new(),
                })
            }
        },
        None => Err(body),
    };
    let mut replaced = false;
    for plugin in chain.plugins.iter().filter(|p| p.manifest.on_response) {
        let body = match &buffered {
            Ok(b) if plugin.manifest.response_body && b.len() <= plugin.spec.max_body => Some(b.to_vec()),
            _ if !plugin.manifest.response_body => None,
            _ => match plugin.spec.over_cap {
                OverCap::Skip => continue,
                OverCap::Reject => return Err(too_large(plugin, "response")),
            },
        };
        let upstream = wit::UpstreamResponse {
            status: parts.status.as_u16(),
            headers: wit_headers(&parts.headers),
            body,
        };
        let Some(Some(changes)) =
            call(plugin, "on_response", ctx, metrics, |p| p.on_response(seen, &served, &upstream))?
        else {
            continue;
        };
        replaced |= changes.body.is_some();
        let applied = apply_response(&mut parts, &mut buffered, changes);
        settle(plugin, "on_response", ctx, metrics, applied)?;
    }
    let body = match buffered {
        Ok(b) => {
            // A body read whole but unchanged keeps its own framing (HEAD
            // answers say the length of a body they do not carry).
            if replaced {
                set_length(&mut parts.headers, b.len());
            }
            body::full(b)
        }
        Err(streaming) => streaming,
    };
    Ok(Response::from_parts(parts, body))
}

fn apply_response(
    parts: &mut http::response::Parts,
    buffered: &mut Result<Bytes, ProxyBody>,
    c: wit::ResponseChanges,
) -> Result<(), HookFailure> {
    if let Some(status) = c.status {
        parts.status = StatusCode::from_u16(status)
            .ok()
            .filter(|s| s.as_u16() >= 200)
            .ok_or_else(|| HookFailure::Output(format!("status {status} is not a final HTTP status")))?;
    }
    apply_headers(&mut parts.headers, &c.remove_headers, &c.set_headers)?;
    if let (Some(new), Ok(_)) = (c.body, &*buffered) {
        *buffered = Ok(Bytes::from(new));
    }
    Ok(())
}
