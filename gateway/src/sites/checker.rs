//! Active health checks, one task per backend, running whether or not
//! traffic flows; and the refresh of snapshot as-of times.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::task::JoinSet;

use super::RegistrySites;
use crate::config::continuity::rfc3339;
use crate::config::{Freshness, HealthCheck, SnapshotSource};

type CheckClient = Client<HttpConnector, Empty<Bytes>>;

/// How often an as-of time is refreshed when the site has no health check.
const AS_OF_REFRESH: Duration = Duration::from_secs(5);

/// Starts every check of one registry on `tasks`.
pub fn spawn(sites: &Arc<RegistrySites>, tasks: &mut JoinSet<()>) {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: CheckClient =
        Client::builder(TokioExecutor::new()).pool_timer(TokioTimer::new()).build(connector);
    for (s, pool) in sites.pools.iter().enumerate() {
        if let Some(hc) = &pool.spec.health_check {
            for b in 0..pool.backends.len() {
                tasks.spawn(check_loop(sites.clone(), s, b, hc.clone(), client.clone()));
            }
        }
        if let Freshness::Snapshot(source @ (SnapshotSource::File(_) | SnapshotSource::Endpoint(_))) =
            &pool.spec.freshness
        {
            let every = pool.spec.health_check.as_ref().map_or(AS_OF_REFRESH, |h| h.interval);
            tasks.spawn(as_of_loop(sites.clone(), s, source.clone(), every, client.clone()));
        }
    }
}

async fn check_loop(
    sites: Arc<RegistrySites>,
    site: usize,
    backend: usize,
    hc: HealthCheck,
    client: CheckClient,
) {
    let state = &sites.pools[site].backends[backend];
    let uri: Option<Uri> = format!("http://{}{}", state.addr, hc.path).parse().ok();
    let Some(uri) = uri else {
        tracing::error!(backend = %state.addr, path = %hc.path, "health check URI is invalid; not checking");
        return;
    };
    loop {
        let transition = match probe(&client, &uri, hc.timeout).await {
            Ok(status) if hc.expect.contains(&status) => state.check_passed(hc.rise),
            Ok(status) => state.check_failed(hc.fall, format!("health check answered {status}")),
            Err(why) => state.check_failed(hc.fall, format!("health check failed: {why}")),
        };
        if let Some(t) = transition {
            sites.transition(site, state, t);
        }
        let spread = 1.0 + hc.jitter * fastrand::f64();
        tokio::time::sleep(hc.interval.mul_f64(spread)).await;
    }
}

/// One GET within `timeout`: the status, or why there was none.
async fn probe(client: &CheckClient, uri: &Uri, timeout: Duration) -> Result<u16, String> {
    let req = Request::get(uri.clone()).body(Empty::new()).map_err(|e| e.to_string())?;
    let fut = async {
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        // Read the (small) body so the connection can be reused.
        let _ = Limited::new(resp.into_body(), 64 << 10).collect().await;
        Ok(status)
    };
    tokio::time::timeout(timeout, fut).await.map_err(|_| format!("no answer within {timeout:?}"))?
}

async fn as_of_loop(
    sites: Arc<RegistrySites>,
    site: usize,
    source: SnapshotSource,
    every: Duration,
    client: CheckClient,
) {
    loop {
        let found = match &source {
            SnapshotSource::File(path) => {
                tokio::fs::read_to_string(path).await.map_err(|e| format!("{}: {e}", path.display()))
            }
            SnapshotSource::Endpoint(path) => fetch_text(&sites, site, path, &client).await,
            SnapshotSource::Fixed(_) => return,
        };
        match found.and_then(|text: String| parse_as_of(&text)) {
            Ok(t) => sites.set_as_of(site, t),
            Err(why) => tracing::warn!(
                registry = %sites.registry.name, site = %sites.pools[site].spec.name, %why,
                "cannot refresh the snapshot's as-of time"
            ),
        }
        tokio::time::sleep(every).await;
    }
}

async fn fetch_text(
    sites: &RegistrySites,
    site: usize,
    path: &str,
    client: &CheckClient,
) -> Result<String, String> {
    let target = sites.target(site).ok_or("no usable backend")?;
    let uri: Uri = format!("http://{}{path}", target.backend.addr).parse().map_err(|e| format!("{e}"))?;
    let req = Request::get(uri).body(Empty::new()).map_err(|e| e.to_string())?;
    let fut = async {
        let resp = client.request(req).await.map_err(|e| e.to_string())?;
        let body = Limited::new(resp.into_body(), 4096).collect().await.map_err(|e| e.to_string())?;
        String::from_utf8(body.to_bytes().to_vec()).map_err(|e| e.to_string())
    };
    tokio::time::timeout(Duration::from_secs(5), fut).await.map_err(|_| "timed out".to_string())?
}

/// Plain RFC 3339 text, or JSON `{"as_of": "..."}`.
pub fn parse_as_of(text: &str) -> Result<SystemTime, String> {
    let text = text.trim();
    if text.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        let t = v["as_of"].as_str().ok_or("JSON without an \"as_of\" string")?;
        return rfc3339(t);
    }
    rfc3339(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_of_reads_text_or_json() {
        let a = parse_as_of("2026-11-20T03:00:00Z\n").unwrap();
        let b = parse_as_of(r#"{"as_of": "2026-11-20T03:00:00Z"}"#).unwrap();
        assert_eq!(a, b);
        assert!(parse_as_of("yesterday").is_err());
    }
}
