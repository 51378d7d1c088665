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
//!            select_site  home today; continuity picks sites in issue 3
//!              │
//!              ▼
//!            forward      rewrite head (hop-by-hop, Via, X-Forwarded-*, id),
//!              │          pooled upstream, connect / head / total timeouts
//!              │            ──► 413 / 502 / 504
//!              ▼
//!           (on-response plugins: issue 4)
//!              │
//!              ▼
//!            respond      strip hop-by-hop, Via, x-request-id; body streams
//!                         under the request deadline
//! ```
//!
//! Errors from any phase become one [`ProxyError`], answered by
//! [`respond::error`] with its status, `Proxy-Status` and a JSON body.

pub mod body;
mod context;
pub mod error;
mod forward;
mod hardening;
pub mod headers;
mod request;
mod respond;
pub mod route;

use std::sync::Arc;

use http::{Request, Response};
use hyper::body::Incoming;

pub use body::ProxyBody;
pub use context::{ConnInfo, RequestContext};
pub use error::{Fault, ProxyError};
/// Public for the fuzz target over request heads (gateway/fuzz).
pub use request::check_head;

use crate::config::Config;
use crate::sites::{RegistrySites, Target};
use forward::Upstream;
use headers::ViaValues;
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
    sites: RegistrySites,
    upstream: Upstream,
}

impl Gateway {
    pub fn new(config: Config) -> Arc<Gateway> {
        let router = Router::new(&config);
        let registries = config
            .registries
            .iter()
            .map(|r| RegistryState {
                sites: RegistrySites::new(r.clone()),
                upstream: Upstream::new(r),
            })
            .collect();
        let via = ViaValues::new(&config.server.name);
        Arc::new(Gateway {
            config: Arc::new(config),
            router,
            registries,
            via,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Runs one request through every phase; never fails: errors become
    /// responses.
    pub async fn handle(&self, conn: &ConnInfo, req: Request<Incoming>) -> Response<ProxyBody> {
        let mut ctx = RequestContext::new(headers::request_id(req.headers()));
        let version = req.version();
        let mut resp = match self.proxy(&mut ctx, conn, req).await {
            Ok(resp) => resp,
            Err(err) => respond::error(&self.config.server.name, &ctx, err),
        };
        hardening::close_after_refusal(&mut resp, version);
        resp.headers_mut()
            .insert(headers::X_REQUEST_ID.clone(), ctx.request_id.clone());
        resp
    }

    async fn proxy(
        &self,
        ctx: &mut RequestContext,
        conn: &ConnInfo,
        req: Request<Incoming>,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        hardening::check_connection(conn)?;
        let host = request::check_head(&req, &self.config.server, &self.via)?;

        let routed = self
            .router
            .route(host.as_deref(), req.uri().path())
            .ok_or_else(|| ProxyError::NoRoute {
                path: req.uri().path().to_string(),
            })?;
        let registry = &self.registries[routed.route.registry];
        let limits = &routed.registry.limits;
        ctx.registry = Some(routed.registry.name.clone());
        ctx.deadline = ctx.started + limits.request_timeout;

        let target = self.select_site(registry);
        ctx.site = Some(target.site.name.clone());

        let upstream_req =
            request::upstream_request(req, ctx, conn, routed.route, target, limits, self)?;
        let upstream_req =
            hardening::prime_body(upstream_req, ctx.deadline, limits.max_request_body).await?;
        let resp = registry
            .upstream
            .send(upstream_req, target, ctx.deadline)
            .await?;

        Ok(respond::from_upstream(resp, ctx, &self.via))
    }

    /// Select-site phase. Until continuity lands, home always serves.
    fn select_site<'a>(&self, registry: &'a RegistryState) -> Target<'a> {
        registry.sites.home().next_target()
    }
}
