//! The request path. Every request runs these phases in order; each phase
//! is a function below with its contract in its doc comment.
//!
//! ```text
//!  client ──► accept      server/: TCP, HTTP/1.1 or h2c, idle + head limits
//!              │
//!              ▼
//!            check_head   head size and field count, Host, path shape, Via loop
//!              │            ──► 400 / 431 / 508
//!              ▼
//!            route        host + longest path prefix -> registry  ──► 404
//!              │
//!              ▼
//!            admission    priority class, rate limits per registry and
//!              │          per client (burst.rs)  ──► 429 + Retry-After
//!              ▼
//!            on_request   registry's plugins (plugins.rs): change the request,
//!              │          answer it, or hint a site; body read only if declared
//!              │            ──► plugin's answer / 413 / 502 (fail = closed)
//!              ▼
//!              │
//!              ▼
//!            cache        GET / HEAD: fresh hit, stale-while-revalidate,
//!              │          coalesced misses; stale-if-error on failure
//!              ▼
//!            select_site  continuity state (normal / failover / override),
//!              │          live backend health, drains, write policy;
//!              │          spill-over to an embassy when home is saturated
//!              │            ──► 503 + Retry-After (all down, write rejected)
//!              │          then plugins' hint and choose-site reorder the plan
//!              ▼
//!            slot         concurrency slot at the site, bounded priority
//!              │          queue with deadline  ──► 503 + Retry-After
//!              ▼
//!            forward      rewrite head (hop-by-hop, Via, X-Forwarded-*, id),
//!              │          pooled upstream, connect / head / total timeouts;
//!              │          on failure before any response byte, the next
//!              │          site at once (retry rules and budget: attempt.rs);
//!              │          outcomes feed passive outlier detection
//!              │            ──► 413 / 502 / 504
//!              ▼
//!            respond      strip hop-by-hop, Via, x-request-id, served-by and
//!              │          freshness; body streams under the request deadline
//!              ▼
//!            on_response  registry's plugins: rewrite status, headers, body
//!                         (translation); body buffered only if declared
//! ```
//!
//! Errors from any phase become one [`ProxyError`], answered by
//! [`respond::error`] with its status, `Proxy-Status` and a JSON body.

mod attempt;
pub mod body;
mod burst;
mod context;
pub mod error;
mod forward;
mod gateway;
pub mod generation;
mod hardening;
pub mod headers;
mod plugin_body;
mod plugins;
mod replay;
mod request;
mod respond;
pub mod route;

use http::{Request, Response};
use hyper::body::Incoming;

pub use body::{ProxyBody, ResponseBody};
pub use context::{ConnInfo, RequestContext};
pub use error::{Fault, ProxyError};
pub use gateway::{Gateway, ReloadError};
pub use generation::{Generation, ReloadReport};
/// Public for the fuzz target over request heads (gateway/fuzz).
pub use request::check_head;

use crate::admin::metrics::{method_label, status_class, Metrics};
use body::AccessRecord;
use generation::RegistryState;
use replay::RequestBody;

impl Generation {
    /// Runs one request through every phase; errors become responses, and
    /// every response is counted and (when enabled) access-logged when its
    /// body ends.
    pub async fn handle(
        &self,
        conn: &ConnInfo,
        req: Request<Incoming>,
        metrics: &Metrics,
    ) -> Response<ResponseBody> {
        let mut ctx = RequestContext::new(headers::request_id(req.headers()));
        let method = req.method().clone();
        let version = req.version();
        let log = &self.config.log;
        let path = log.access.then(|| log.redactor.apply(&req.uri().to_string()).into_owned());
        let resp = match self.proxy(&mut ctx, conn, req, metrics).await {
            Ok(resp) => resp,
            Err(err) => {
                let registry = ctx.registry.as_deref().unwrap_or("none");
                metrics
                    .gateway_errors
                    .with_label_values(&[registry, err.fault().label(), err.proxy_status()])
                    .inc();
                respond::error(&self.config.server, &log.redactor, &ctx, err)
            }
        };
        let mut resp = resp;
        hardening::close_after_refusal(&mut resp, version);
        let (mut parts, body) = resp.into_parts();
        parts.headers.insert(headers::X_REQUEST_ID.clone(), ctx.request_id.clone());

        let secs = ctx.started.elapsed().as_secs_f64();
        match ctx.registry_index.map(|i| &self.registries[i]) {
            Some(r) => r.metrics.record(metrics, ctx.site_index, &method, parts.status, secs),
            None => {
                let labels = ["none", "none", method_label(&method), status_class(parts.status)];
                metrics.requests.with_label_values(&labels).inc();
                metrics.duration.with_label_values(&["none", "none"]).observe(secs);
            }
        }

        let record = path.map(|path| AccessRecord::new(&ctx, conn, method, path, parts.status));
        Response::from_parts(parts, ResponseBody::new(body, ctx.deadline_or_far(), record))
    }

    async fn proxy(
        &self,
        ctx: &mut RequestContext,
        conn: &ConnInfo,
        req: Request<Incoming>,
        metrics: &Metrics,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        hardening::check_connection(conn)?;
        let host = request::check_head(&req, &self.config.server, &self.via)?;

        let routed = self
            .router
            .route(host.as_deref(), req.uri().path())
            .ok_or_else(|| ProxyError::NoRoute { path: req.uri().path().to_string() })?;
        let registry = &self.registries[routed.route.registry];
        let limits = &routed.registry.limits;
        ctx.registry = Some(routed.registry.name.clone());
        ctx.registry_index = Some(routed.route.registry);
        ctx.deadline = ctx.started + limits.request_timeout;

        // Admission before plugins: refusing costs nothing, running wasm does.
        let class = burst::admit(registry, ctx, conn, &req, metrics)?;

        let (mut parts, incoming) = req.into_parts();
        let chain = &routed.registry.plugins;
        let on_request = plugins::on_request(chain, &mut parts, incoming, ctx, conn, metrics, limits).await?;
        let (inbound, hint, seen, priority) = match on_request {
            plugins::OnRequest::Go { body, hint, seen, priority } => (body, hint, seen, priority),
            plugins::OnRequest::Respond(resp) => return Ok(resp),
        };
        let class = burst::reclassify(registry, class, priority.as_deref());
        let write = !parts.method.is_safe();
        let head = request::upstream_head(&mut parts, ctx, conn, routed.route, limits, self)?;
        let plugins = burst::Plugins { chain, seen: seen.as_ref(), hint: hint.as_deref() };
        let cache = registry.cache.as_ref().filter(|_| crate::cache::applies(&parts.method));
        if let Some(cache) = cache.filter(|_| inbound.is_empty()) {
            let req = burst::cache_request(&parts, &head);
            return burst::through_cache(self, registry, cache, class, plugins, req, head, ctx, metrics)
                .await;
        }
        let replay_cap = routed.registry.continuity.replay_buffer;
        let body = match inbound {
            plugins::Inbound::Streaming(incoming) => {
                RequestBody::prepare(incoming, &head.headers, replay_cap, limits, ctx.deadline).await?
            }
            plugins::Inbound::Buffered(b) if b.is_empty() => RequestBody::Empty,
            plugins::Inbound::Buffered(b) => RequestBody::Buffered(b),
            plugins::Inbound::Over(rest) => RequestBody::Streaming(Some(rest)),
        };
        let fetch = burst::Fetch { registry, server: &self.config.server, via: &self.via, plugins };
        burst::fetch(&fetch, class, head, body, write, ctx, metrics).await
    }
}

/// Select-site phase: the sites to try, best first, from the registry's
/// continuity state, live health and write policy.
fn select_sites(registry: &RegistryState, write: bool) -> Result<Vec<usize>, ProxyError> {
    let name = || registry.sites.registry.name.to_string();
    registry.sites.plan(write).map_err(|no| match no {
        crate::sites::NoSite::AllDown => ProxyError::NoHealthySite { registry: name() },
        crate::sites::NoSite::WriteRejected => ProxyError::WriteRejected {
            registry: name(),
            retry_after: registry.sites.registry.continuity.retry_after,
        },
    })
}
