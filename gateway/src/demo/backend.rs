//! A simulated registry site: answers the registry's API from [`super::data`].

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::data;

/// What one simulated site serves.
pub struct SimulatedSite {
    pub registry: String,
    pub site: String,
}

/// Switches a running simulated site off (its port refuses connections and
/// open connections are cut, as when a data centre goes dark) and on.
#[derive(Clone)]
pub struct SiteSwitch(watch::Sender<bool>);

impl SiteSwitch {
    pub fn set_up(&self, up: bool) {
        self.0.send_replace(up);
    }
}

impl SimulatedSite {
    /// Binds `addr` and serves until the runtime ends.
    pub async fn start(self, addr: SocketAddr) -> std::io::Result<SiteSwitch> {
        let listener = TcpListener::bind(addr).await?;
        let (switch, up) = watch::channel(true);
        tokio::spawn(self.run(addr, listener, up));
        Ok(SiteSwitch(switch))
    }

    async fn run(self, addr: SocketAddr, listener: TcpListener, mut up: watch::Receiver<bool>) {
        let site = Arc::new(self);
        let mut listener = Some(listener);
        loop {
            let Some(l) = &listener else {
                // Down: nothing listens until switched on again.
                if up.wait_for(|u| *u).await.is_err() {
                    return;
                }
                listener = TcpListener::bind(addr).await.ok();
                continue;
            };
            tokio::select! {
                accepted = l.accept() => {
                    let Ok((stream, _)) = accepted else { continue };
                    tokio::spawn(site.clone().serve(stream, up.clone()));
                }
                changed = up.changed() => {
                    if changed.is_err() { return; }
                    if !*up.borrow() { listener = None; }
                }
            }
        }
    }

    async fn serve(self: Arc<Self>, stream: tokio::net::TcpStream, mut up: watch::Receiver<bool>) {
        let site = self.clone();
        let service = service_fn(move |req| {
            let site = site.clone();
            async move { Ok::<_, Infallible>(site.answer(req).await) }
        });
        let builder = auto::Builder::new(TokioExecutor::new());
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        tokio::select! {
            _ = conn => {}
            _ = up.wait_for(|u| !*u) => {}
        }
    }

    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let body = req.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let (status, value) = self.route(&method, &path, &body);
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-demo-site", self.site.as_str())
            .body(Full::new(Bytes::from(value.to_string())))
            .unwrap_or_default()
    }

    fn route(&self, method: &Method, path: &str, body: &[u8]) -> (StatusCode, Value) {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let found = |v: Option<Value>| match v {
            Some(v) => (StatusCode::OK, v),
            None => (StatusCode::NOT_FOUND, json!({"error": "not_found", "path": path})),
        };
        match (self.registry.as_str(), method, segments.as_slice()) {
            (_, &Method::GET, ["health"]) => (StatusCode::OK, json!({"status": "ok", "site": self.site})),
            (_, &Method::GET, ["as-of"]) => (StatusCode::OK, json!({"as_of": "2026-11-22T03:00:00Z"})),
            // The embassy's copy speaks the legacy schema; the
            // population-translate plugin turns it into the home one.
            ("population", &Method::GET, ["people"]) if self.site != "home" => {
                let list: Vec<Value> = data::people().iter().map(data::legacy_list_entry).collect();
                (StatusCode::OK, json!({"isikud": list}))
            }
            ("population", &Method::GET, ["people", id]) if self.site != "home" => {
                found(by_field(data::people(), "id", id).map(|p| data::legacy_person(&p)))
            }
            ("population", &Method::GET, ["people"]) => {
                let list: Vec<Value> = data::people()
                    .iter()
                    .map(|p| json!({"id": p["id"], "name": format!("{} {}", p["given_name"].as_str().unwrap_or(""), p["family_name"].as_str().unwrap_or(""))}))
                    .collect();
                (StatusCode::OK, json!({"people": list}))
            }
            ("population", &Method::GET, ["people", id]) => found(by_field(data::people(), "id", id)),
            ("tax", &Method::GET, ["declarations", id, "2025"]) => {
                found(by_field(data::people(), "id", id).map(|p| data::tax_declaration(&p)))
            }
            ("tax", &Method::POST, ["declarations"]) => (
                StatusCode::CREATED,
                json!({"receipt": format!("TAX-2025-{:08}", body.len() * 7919 % 100_000_000), "bytes_received": body.len(), "status": "received"}),
            ),
            ("business", &Method::GET, ["companies"]) => {
                (StatusCode::OK, json!({"companies": data::companies()}))
            }
            ("business", &Method::GET, ["companies", code]) => {
                found(by_field(data::companies(), "registry_code", code))
            }
            ("gazette", &Method::GET, [""] | ["acts"]) => {
                (StatusCode::OK, json!({"acts": data::gazette_acts()}))
            }
            ("gazette", &Method::GET, ["acts", id]) => found(by_field(data::gazette_acts(), "id", id)),
            _ => (StatusCode::NOT_FOUND, json!({"error": "not_found", "path": path})),
        }
    }
}

fn by_field(list: Vec<Value>, field: &str, want: &str) -> Option<Value> {
    list.into_iter().find(|v| v[field] == want)
}
