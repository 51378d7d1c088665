//! The operators' API: its own listener (loopback by default), JSON, bearer
//! token. Never served on the public listener.
//!
//! | method | path | what |
//! | --- | --- | --- |
//! | GET | /livez, /readyz | probes (no token: they reveal nothing) |
//! | GET | /v1/status | every registry: continuity state, sites, backends |
//! | POST | /v1/registries/{r}/force/{site} | route the registry to that site only |
//! | POST | /v1/registries/{r}/drain/{site} | no new requests for that site |
//! | POST | /v1/registries/{r}/automatic | clear force and drains |
//! | POST | /v1/reload | re-read the configuration file (as SIGHUP) |
//! | GET | /v1/plugins | every registry's plugin chain: name, content hash, policy |
//! | GET | /metrics | Prometheus exposition (token required) |

mod api;
pub mod ctl;
pub mod metrics;
mod plugins;

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;

use crate::proxy::Gateway;

pub type AdminResponse = Response<Full<Bytes>>;

/// Serves the admin API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    token: String,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let token: Arc<[u8]> = token.into_bytes().into();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, peer)) = accepted else { continue };
                let (gateway, token) = (gateway.clone(), token.clone());
                let service = service_fn(move |req| {
                    let (gateway, token) = (gateway.clone(), token.clone());
                    async move { Ok::<_, Infallible>(handle(&gateway, &token, req, peer).await) }
                });
                tokio::spawn(async move {
                    let _ = auto::Builder::new(TokioExecutor::new()).serve_connection(TokioIo::new(stream), service).await;
                });
            }
            () = &mut shutdown => return Ok(()),
        }
    }
}

async fn handle(
    gateway: &Gateway,
    token: &[u8],
    req: Request<Incoming>,
    peer: std::net::SocketAddr,
) -> AdminResponse {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (req.method(), segments.as_slice()) {
        (&Method::GET, ["livez"]) => json(StatusCode::OK, serde_json::json!({"status": "alive"})),
        (&Method::GET, ["readyz"]) => readiness(gateway),
        _ if !authorized(&req, token) => {
            tracing::warn!(%peer, %path, "admin request without a valid token");
            let mut resp = json(
                StatusCode::UNAUTHORIZED,
                serde_json::json!({"error": "a valid bearer token is required"}),
            );
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
            resp
        }
        (&Method::GET, ["v1", "status"]) => json(StatusCode::OK, api::status(gateway)),
        (&Method::GET, ["v1", "plugins"]) => json(StatusCode::OK, plugins::list(gateway)),
        (&Method::GET, ["metrics"]) => {
            let sites = gateway.all_sites();
            let text = gateway.metrics().render(sites.iter().map(|s| &**s));
            let mut resp = Response::new(Full::new(Bytes::from(text)));
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            resp
        }
        (&Method::POST, ["v1", "reload"]) => match gateway.reload_source() {
            Ok(report) => json(
                StatusCode::OK,
                serde_json::json!({"generation": report.generation, "kept": report.kept, "rebuilt": report.rebuilt, "removed": report.removed}),
            ),
            Err(e) => json(StatusCode::UNPROCESSABLE_ENTITY, serde_json::json!({"error": e.to_string()})),
        },
        (&Method::POST, ["v1", "registries", registry, action @ ..]) => {
            let who = format!("admin API ({peer})");
            match api::act(gateway, registry, action, &who) {
                Ok(state) => json(StatusCode::OK, state),
                Err((status, why)) => json(status, serde_json::json!({"error": why})),
            }
        }
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": format!("no admin endpoint {} {path}", req.method())}),
        ),
    }
}

/// Ready once serving, and not while shutting down; load balancers stop
/// sending before the listener closes.
fn readiness(gateway: &Gateway) -> AdminResponse {
    if gateway.is_serving() {
        json(StatusCode::OK, serde_json::json!({"status": "ready", "generation": gateway.current().number}))
    } else {
        json(StatusCode::SERVICE_UNAVAILABLE, serde_json::json!({"status": "not serving"}))
    }
}

/// Constant-time comparison, so response timing leaks nothing of the token.
fn authorized(req: &Request<Incoming>, token: &[u8]) -> bool {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::as_bytes)
        .unwrap_or_default();
    presented.len() == token.len() && bool::from(presented.ct_eq(token))
}

fn json(status: StatusCode, value: serde_json::Value) -> AdminResponse {
    let mut resp = Response::new(Full::new(Bytes::from(value.to_string())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    resp.headers_mut().insert(header::CACHE_CONTROL, header::HeaderValue::from_static("no-store"));
    resp
}
