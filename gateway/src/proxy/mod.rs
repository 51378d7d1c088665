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
//!           (admission, on-request plugins, cache: issues 5 and 4)
//!              │
//!              ▼
//!            select_site  continuity state (normal / failover / override),
//!              │          live backend health, drains, write policy
//!              │            ──► 503 + Retry-After (all down, write rejected)
//!              ▼
//!            forward      rewrite head (hop-by-hop, Via, X-Forwarded-*, id),
//!              │          pooled upstream, connect / head / total timeouts;
//!              │          on failure before any response byte, the next
//!              │          site at once (retry rules and budget: attempt.rs);
//!              │          outcomes feed passive outlier detection
//!              │            ──► 413 / 502 / 504
//!              ▼
//!           (on-response plugins: issue 4)
//!              │
//!              ▼
//!            respond      strip hop-by-hop, Via, x-request-id, served-by and
//!                         freshness; body streams under the request deadline
//! ```
//!
//! Errors from any phase become one [`ProxyError`], answered by
//! [`respond::error`] with its status, `Proxy-Status` and a JSON body.

mod attempt;
pub mod body;
mod context;
pub mod error;
mod forward;
pub mod headers;
mod replay;
mod request;
mod respond;
pub mod route;

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;
use tokio::task::JoinSet;

pub use body::ProxyBody;
pub use context::{ConnInfo, RequestContext};
pub use error::{Fault, ProxyError};

use crate::config::Config;
use crate::sites::continuity::ContinuityEvent;
use crate::sites::{checker, NoSite, RegistrySites};
use forward::Upstream;
use headers::ViaValues;
use replay::RequestBody;
use route::Router;

/// Everything the request path needs, built once from a compiled config.
#[derive(Debug)]
pub struct Gateway {
    config: Arc<Config>,
    router: Router,
    /// Aligned with `config.registries`.
    registries: Vec<RegistryState>,
    via: ViaValues,
}

#[derive(Debug)]
struct RegistryState {
    sites: Arc<RegistrySites>,
    upstream: Upstream,
}

impl Gateway {
    pub fn new(config: Config) -> Arc<Gateway> {
        let router = Router::new(&config);
        let registries = config
            .registries
            .iter()
            .map(|r| RegistryState {
                sites: Arc::new(RegistrySites::new(r.clone())),
                upstream: Upstream::new(&r.limits),
            })
            .collect();
        let via = ViaValues::new(&config.server.name);
        Arc::new(Gateway { config: Arc::new(config), router, registries, via })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Health checks and continuity supervisors; they stop when the
    /// returned set is dropped.
    pub fn start_background(&self) -> JoinSet<()> {
        let mut tasks = JoinSet::new();
        for r in &self.registries {
            checker::spawn(&r.sites, &mut tasks);
            tasks.spawn(r.sites.clone().supervise());
        }
        tasks
    }

    /// The live site state of a registry, for the admin API and tests.
    pub fn sites(&self, registry: &str) -> Option<&Arc<RegistrySites>> {
        self.registries.iter().map(|r| &r.sites).find(|s| &*s.registry.name == registry)
    }

    pub fn all_sites(&self) -> impl Iterator<Item = &Arc<RegistrySites>> {
        self.registries.iter().map(|r| &r.sites)
    }

    /// Every continuity change of `registry`, as it happens.
    pub fn subscribe(&self, registry: &str) -> Option<tokio::sync::broadcast::Receiver<ContinuityEvent>> {
        self.sites(registry).map(|s| s.continuity.subscribe())
    }

    /// Runs one request through every phase; never fails: errors become
    /// responses.
    pub async fn handle(&self, conn: &ConnInfo, req: Request<Incoming>) -> Response<ProxyBody> {
        let mut ctx = RequestContext::new(headers::request_id(req.headers()));
        let mut resp = match self.proxy(&mut ctx, conn, req).await {
            Ok(resp) => resp,
            Err(err) => respond::error(&self.config.server, &ctx, err),
        };
        resp.headers_mut().insert(headers::X_REQUEST_ID.clone(), ctx.request_id.clone());
        resp
    }

    async fn proxy(
        &self,
        ctx: &mut RequestContext,
        conn: &ConnInfo,
        req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        let host = request::check_head(&req, &self.config.server, &self.via)?;

        let routed = self
            .router
            .route(host.as_deref(), req.uri().path())
            .ok_or_else(|| ProxyError::NoRoute { path: req.uri().path().to_string() })?;
        let registry = &self.registries[routed.route.registry];
        let limits = &routed.registry.limits;
        ctx.registry = Some(routed.registry.name.clone());
        ctx.deadline = ctx.started + limits.request_timeout;

        let (mut parts, incoming) = req.into_parts();
        let write = !parts.method.is_safe();
        let idempotent = parts.method.is_idempotent();
        let plan = self.select_sites(registry, write)?;

        let head = request::upstream_head(&mut parts, ctx, conn, routed.route, limits, self)?;
        let replay_cap = routed.registry.continuity.replay_buffer;
        let body = RequestBody::prepare(incoming, &head.headers, replay_cap, limits, ctx.deadline).await?;
        let answer =
            attempt::forward(&registry.sites, &registry.upstream, &plan, head, body, idempotent, ctx).await?;

        Ok(respond::from_upstream(answer, &registry.sites, ctx, &self.via, &self.config.server))
    }

    /// Select-site phase: the sites to try, best first, from the
    /// registry's continuity state, live health and write policy.
    fn select_sites(&self, registry: &RegistryState, write: bool) -> Result<Vec<usize>, ProxyError> {
        let name = || registry.sites.registry.name.to_string();
        registry.sites.plan(write).map_err(|no| match no {
            NoSite::AllDown => ProxyError::NoHealthySite { registry: name() },
            NoSite::WriteRejected => ProxyError::WriteRejected {
                registry: name(),
                retry_after: registry.sites.registry.continuity.retry_after,
            },
        })
    }
}
