//! The burst-load and cache phases of the request path (issue 5), kept
//! apart from `mod.rs` so the chart there stays readable:
//!
//! - admission (after route): priority class and rate limits -> 429;
//! - cache (before select-site): fresh hit, stale-while-revalidate,
//!   coalesced misses, stale-if-error when every site fails;
//! - slot (around forward): spill-over decision, then a concurrency slot
//!   at the first site of the plan -> 503 when shed.

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::time::Instant;

use super::attempt;
use super::body::ProxyBody;
use super::context::{ConnInfo, RequestContext};
use super::error::ProxyError;
use super::generation::{Generation, RegistryState};
use super::headers::ViaValues;
use super::replay::RequestBody;
use super::request::UpstreamHead;
use super::{plugins, respond};
use crate::admin::metrics::Metrics;
use crate::burst::{Decision, Slot};
use crate::cache::coalesce::{self, Join};
use crate::cache::{Cache, Lookup, RequestParts};
use crate::config::ServerSettings;
use crate::plugin::{wit, Chain};

/// Admission phase: the request's priority class (`None` without a
/// `[burst]` policy) or 429 with Retry-After when a rate limit says no.
pub(super) fn admit(
    registry: &RegistryState,
    ctx: &RequestContext,
    conn: &ConnInfo,
    req: &Request<Incoming>,
    metrics: &Metrics,
) -> Result<Option<usize>, ProxyError> {
    let Some(adm) = &registry.admission else { return Ok(None) };
    let hint = ctx.priority_hint.as_deref();
    match adm.admit(req.method(), req.uri().path(), conn.peer.ip(), req.headers(), hint) {
        Decision::Admit { class } => Ok(Some(class)),
        Decision::Shed { class, retry_after, reason, .. } => {
            let name = &*registry.sites.registry.name;
            metrics.burst.admission.with_label_values(&[name, adm.class_name(class), reason]).inc();
            Err(ProxyError::RateLimited {
                registry: name.to_string(),
                scope: if reason == "client_rate" { "client" } else { "registry" },
                retry_after,
            })
        }
    }
}

/// A plugin's priority decision (a class name) overrides the class that
/// admission gave by route and method; the rate limits have already run.
pub(super) fn reclassify(
    registry: &RegistryState,
    class: Option<usize>,
    priority: Option<&str>,
) -> Option<usize> {
    let (Some(adm), Some(name)) = (&registry.admission, priority) else { return class };
    adm.class_index(name).or(class)
}

/// What forwarding needs from the generation; owned copies of it outlive
/// the request for a background refresh.
pub(super) struct Fetch<'a> {
    pub registry: &'a Arc<RegistryState>,
    pub server: &'a ServerSettings,
    pub via: &'a ViaValues,
    pub plugins: Plugins<'a>,
}

/// The registry's plugins as forwarding needs them: choose-site before the
/// slot, on-response after the answer, so the cache stores what clients see
/// (translated) and a hit needs no plugin call.
#[derive(Clone, Copy)]
pub(super) struct Plugins<'a> {
    pub chain: &'a Chain,
    /// The request as on-request saw it (`None` without plugins).
    pub seen: Option<&'a wit::Request>,
    pub hint: Option<&'a str>,
}

/// Select-site, slot and forward phases: the plan (with spill-over), a
/// slot at its first site held until the response head arrives, then the
/// forward with retries.
pub(super) async fn fetch(
    f: &Fetch<'_>,
    class: Option<usize>,
    head: UpstreamHead,
    body: RequestBody,
    write: bool,
    ctx: &mut RequestContext,
    metrics: &Metrics,
) -> Result<Response<ProxyBody>, ProxyError> {
    let registry = f.registry;
    let idempotent = head.method.is_idempotent();
    let mut plan = super::select_sites(registry, write)?;
    let p = f.plugins;
    plugins::order_sites(p.chain, p.seen, p.hint, &mut plan, &registry.sites, ctx, metrics)?;
    let _slot = slot(registry, &mut plan, class, ctx.deadline, metrics).await?;
    let answer = attempt::forward(registry, &plan, head, body, idempotent, ctx, metrics).await?;
    let resp = respond::from_upstream(answer, &registry.sites, f.via, f.server);
    plugins::on_response(p.chain, p.seen, resp, &registry.sites, ctx, metrics).await
}

async fn slot(
    registry: &RegistryState,
    plan: &mut Vec<usize>,
    class: Option<usize>,
    deadline: Instant,
    metrics: &Metrics,
) -> Result<Option<Slot>, ProxyError> {
    let (Some(adm), Some(class)) = (&registry.admission, class) else { return Ok(None) };
    let sites = &registry.sites;
    let name = &*sites.registry.name;
    let class_name = adm.class_name(class);
    match adm.slot(sites, plan, class, deadline).await {
        Ok((slot, waited)) => {
            let site = plan.first().map_or("none", |&i| &*sites.pools[i].spec.name);
            if slot.spilled_to.is_some() {
                metrics.burst.spill.with_label_values(&[name, site]).inc();
            }
            if slot.permit.is_some() {
                metrics
                    .burst
                    .queue_wait
                    .with_label_values(&[name, site, class_name])
                    .observe(waited.as_secs_f64());
            }
            metrics.burst.admission.with_label_values(&[name, class_name, "admitted"]).inc();
            Ok(Some(slot))
        }
        Err(reason) => {
            metrics.burst.admission.with_label_values(&[name, class_name, reason.label()]).inc();
            let site = plan.first().map_or("none", |&i| &*sites.pools[i].spec.name);
            Err(ProxyError::Shed {
                registry: name.to_string(),
                site: site.to_string(),
                reason: reason.label(),
                retry_after: adm.settings.retry_after,
            })
        }
    }
}

/// The request as the cache sees it: the client's method and URI with the
/// headers that go upstream (the client's, less hop-by-hop fields).
pub(super) fn cache_request(parts: &http::request::Parts, head: &UpstreamHead) -> RequestParts {
    request_parts(&parts.method, &parts.uri, &head.headers)
}

fn request_parts(method: &http::Method, uri: &http::Uri, headers: &http::HeaderMap) -> RequestParts {
    let mut req = Request::new(());
    *req.method_mut() = method.clone();
    *req.uri_mut() = uri.clone();
    *req.headers_mut() = headers.clone();
    req.into_parts().0
}

/// Cache phase for GET / HEAD of a registry with a cache.
#[allow(clippy::too_many_arguments)]
pub(super) async fn through_cache(
    gen: &Generation,
    registry: &Arc<RegistryState>,
    cache: &Arc<Cache>,
    class: Option<usize>,
    plugins: Plugins<'_>,
    req: RequestParts,
    head: UpstreamHead,
    ctx: &mut RequestContext,
    metrics: &Metrics,
) -> Result<Response<ProxyBody>, ProxyError> {
    let served_by = gen.config.server.served_by_header.as_ref();
    let name = &*registry.sites.registry.name;
    let count = |outcome: &str| metrics.burst.cache_lookups.with_label_values(&[name, outcome]).inc();
    let stale = match cache.lookup(&req, served_by) {
        Lookup::Fresh(resp) => {
            count("hit");
            return Ok(resp);
        }
        Lookup::Revalidate(entry) => {
            count("stale");
            refresh_behind(gen, registry, cache, (class, plugins), &req, head, metrics);
            return Ok(cache.serve_stale(&entry, &req, served_by));
        }
        Lookup::Miss { stale } => stale,
    };
    let _leader = match cache.inflight.join(&cache.key(&req)) {
        Join::Leader(leader) => Some(leader),
        Join::Follower(rx) => {
            coalesce::wait(rx, cache.coalesce_timeout()).await;
            if let Lookup::Fresh(resp) = cache.lookup(&req, served_by) {
                count("coalesced");
                return Ok(resp);
            }
            // The first answer was not storable: fetch this one too.
            None
        }
    };
    count("miss");
    let f = Fetch { registry, server: &gen.config.server, via: &gen.via, plugins };
    let result = fetch(&f, class, head, RequestBody::Empty, false, ctx, metrics).await;
    match result {
        Ok(resp) if !resp.status().is_server_error() => {
            let (resp, stored) = cache.store(&req, resp, ctx.deadline).await;
            if stored {
                count("stored");
            }
            Ok(resp)
        }
        other => match stale.as_ref().and_then(|e| cache.stale_if_error(e, &req, served_by)) {
            Some(resp) => {
                count("stale_if_error");
                Ok(resp)
            }
            None => other,
        },
    }
}

/// stale-while-revalidate: one background fetch per key refreshes the
/// entry while clients get the stale copy.
fn refresh_behind(
    gen: &Generation,
    registry: &Arc<RegistryState>,
    cache: &Arc<Cache>,
    (class, plugins): (Option<usize>, Plugins<'_>),
    req: &RequestParts,
    head: UpstreamHead,
    metrics: &Metrics,
) {
    let Join::Leader(leader) = cache.inflight.join(&cache.key(req)) else { return };
    let (registry, cache, config, via, metrics) =
        (registry.clone(), cache.clone(), gen.config.clone(), gen.via.clone(), metrics.clone());
    let req = request_parts(&req.method, &req.uri, &req.headers);
    let id = head.headers.get(super::headers::X_REQUEST_ID.clone()).cloned();
    let (chain, seen, hint) = (plugins.chain.clone(), plugins.seen.cloned(), plugins.hint.map(str::to_owned));
    tokio::spawn(async move {
        let plugins = Plugins { chain: &chain, seen: seen.as_ref(), hint: hint.as_deref() };
        let _leader = leader;
        let mut ctx = RequestContext::new(id.unwrap_or_else(|| http::HeaderValue::from_static("refresh")));
        ctx.deadline = ctx.started + registry.sites.registry.limits.request_timeout;
        ctx.registry = Some(registry.sites.registry.name.clone());
        let f = Fetch { registry: &registry, server: &config.server, via: &via, plugins };
        match fetch(&f, class, head, RequestBody::Empty, false, &mut ctx, &metrics).await {
            Ok(resp) if !resp.status().is_server_error() => {
                let _ = cache.store(&req, resp, ctx.deadline).await;
            }
            Ok(resp) => tracing::debug!(status = %resp.status(), "background refresh got an error status"),
            Err(err) => tracing::debug!(error = %err, "background refresh failed"),
        }
    });
}
