//! Forward phase with retries: the request goes to the planned sites in
//! turn until one answers. Each outcome also feeds passive outlier
//! detection, so the next request avoids a failing backend at once.

use http::Response;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::context::RequestContext;
use super::error::ProxyError;
use super::forward::Upstream;
use super::generation::RegistryState;
use super::replay::RequestBody;
use super::request::UpstreamHead;
use crate::admin::metrics::Metrics;
use crate::sites::{RegistrySites, Target};

/// The response that will be sent, and the site that gave it.
pub struct Answer<'a> {
    pub response: Response<Incoming>,
    pub target: Target<'a>,
}

/// What one attempt's outcome means for the next.
enum Next<'a> {
    Done(Answer<'a>),
    /// A 5xx worth retrying; kept in case no other site does better.
    RetryWith(Answer<'a>),
    RetryAfter(ProxyError),
    Fail(ProxyError),
}

/// Tries `plan` (site indices, best first).
///
/// Retry rules: a connection that could not be made means the site never
/// saw the request, so any method moves on. A reset or a missing response
/// head moves on only for idempotent methods, and so does a 5xx listed in
/// `retry_on_status`. Each retry spends the registry's retry budget, so a
/// dying home cannot double the load; a request whose body is not kept is
/// never retried.
pub async fn forward<'a>(
    registry: &'a RegistryState,
    plan: &[usize],
    mut head: UpstreamHead,
    mut body: RequestBody,
    idempotent: bool,
    ctx: &mut RequestContext,
    metrics: &Metrics,
) -> Result<Answer<'a>, ProxyError> {
    let (sites, upstream) = (&*registry.sites, &registry.upstream);
    let registry = &*sites.registry.name;
    sites.deposit_retry_budget();
    let mut held: Option<Answer<'a>> = None;
    let mut last_err: Option<ProxyError> = None;

    for (i, &site) in plan.iter().enumerate() {
        let Some(target) = sites.target(site) else { continue };
        if ctx.attempts > 0 && !sites.withdraw_retry_budget() {
            tracing::warn!(registry = %sites.registry.name, "retry budget exhausted: not retrying");
            ctx.retry_budget_exhausted = true;
            metrics.retry_budget_exhausted.with_label_values(&[registry]).inc();
            break;
        }
        let Some(req_body) = body.for_attempt() else { break };
        let more = i + 1 < plan.len() && body.replayable();
        let headers = if more { head.headers.clone() } else { std::mem::take(&mut head.headers) };
        let req = head.request(&target.backend.addr, target.site.tls.is_some(), headers, req_body);
        if ctx.attempts > 0 {
            metrics.retries.with_label_values(&[registry]).inc();
        }
        ctx.attempts += 1;
        ctx.site = Some(target.site.name.clone());
        ctx.site_index = Some(target.index);

        match attempt(sites, upstream, target, req, idempotent, more, ctx.deadline).await {
            Next::Done(answer) => return Ok(answer),
            Next::RetryWith(answer) => held = Some(answer),
            Next::RetryAfter(err) => {
                metrics
                    .upstream_errors
                    .with_label_values(&[registry, &target.site.name, err.proxy_status()])
                    .inc();
                tracing::info!(registry = %sites.registry.name, site = %target.site.name, error = %err, "retrying on the next site");
                last_err = Some(err);
            }
            Next::Fail(err) => {
                if err.fault() == super::error::Fault::Upstream {
                    metrics
                        .upstream_errors
                        .with_label_values(&[registry, &target.site.name, err.proxy_status()])
                        .inc();
                }
                return Err(err);
            }
        }
    }
    match (held, last_err) {
        (Some(answer), _) => Ok(answer),
        (None, Some(err)) => Err(err),
        (None, None) => Err(ProxyError::NoHealthySite { registry: sites.registry.name.to_string() }),
    }
}

async fn attempt<'a>(
    sites: &'a RegistrySites,
    upstream: &Upstream,
    target: Target<'a>,
    req: http::Request<super::body::ProxyBody>,
    idempotent: bool,
    more: bool,
    deadline: Instant,
) -> Next<'a> {
    let backend = target.backend;
    let outlier = &target.site.outlier;
    let has_checks = target.site.health_check.is_some();
    let started = Instant::now();
    backend.in_flight.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let outcome = upstream.send(req, target, deadline).await;
    backend.in_flight.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);

    match outcome {
        Ok(response) => {
            let status = response.status();
            if status.is_server_error() {
                if let Some(t) = backend.record_5xx(outlier, has_checks) {
                    sites.transition(target.index, backend, t);
                }
                let listed = sites.registry.continuity.retry_on_status.contains(&status.as_u16());
                if idempotent && listed && more {
                    return Next::RetryWith(Answer { response, target });
                }
            } else {
                backend.record_success(started.elapsed(), outlier);
            }
            Next::Done(Answer { response, target })
        }
        Err(err) => {
            let (failure, never_received) = match &err {
                ProxyError::ConnectRefused { .. }
                | ProxyError::ConnectTimeout { .. }
                | ProxyError::ConnectFailed { .. } => (true, true),
                ProxyError::UpstreamClosed { .. } | ProxyError::ResponseTimeout { .. } => (true, false),
                _ => (false, false),
            };
            if failure {
                if let Some(t) = backend.record_failure(outlier, has_checks, &err.to_string()) {
                    sites.transition(target.index, backend, t);
                }
            }
            if more && failure && (never_received || idempotent) && Instant::now() < deadline {
                Next::RetryAfter(err)
            } else {
                Next::Fail(err)
            }
        }
    }
}
