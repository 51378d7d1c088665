//! The demo's switchboard: `POST http://127.0.0.1:18100/sites/{registry}/{site}/down`
//! (or `/up`) takes a simulated site down or brings it back, so a newcomer
//! can watch failover and failback happen.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use super::{Switches, CONTROL};

/// Serves the switchboard for `switches` on [`CONTROL`].
pub async fn start_control(switches: Switches) -> anyhow::Result<()> {
    let listener = TcpListener::bind(CONTROL)
        .await
        .map_err(|e| anyhow::anyhow!("cannot start the demo switchboard on {CONTROL}: {e}"))?;
    let switches = Arc::new(switches);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let switches = switches.clone();
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let answer = flip(&switches, req.method(), req.uri().path());
                async move { Ok::<_, Infallible>(answer) }
            });
            tokio::spawn(
                auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(stream), service)
                    .into_owned(),
            );
        }
    });
    Ok(())
}

fn flip(switches: &Switches, method: &Method, path: &str) -> Response<Full<Bytes>> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (status, text) = match (method, parts.as_slice()) {
        (&Method::POST, ["sites", registry, site, action @ ("up" | "down")]) => {
            match switches.get(&format!("{registry}/{site}")) {
                Some(list) => {
                    list.iter().for_each(|s| s.set_up(*action == "up"));
                    tracing::warn!(%registry, %site, "demo: simulated site switched {action}");
                    (StatusCode::OK, format!("{registry}/{site} is {action}\n"))
                }
                None => (StatusCode::NOT_FOUND, format!("no simulated site {registry}/{site}\n")),
            }
        }
        _ => (StatusCode::NOT_FOUND, "use POST /sites/{registry}/{site}/down or /up\n".to_string()),
    };
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = status;
    resp
}
