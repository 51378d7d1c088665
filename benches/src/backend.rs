//! The benchmark upstream: answers every GET with one prebuilt JSON record.
//!
//! It does as little as possible per request (no allocation beyond what hyper
//! needs, no parsing of the path) so that in a proxy benchmark the measured
//! cost is the proxy's, not the upstream's.

use std::convert::Infallible;
use std::future::{ready, Future};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, ALLOW, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

/// In-flight requests get this long to finish after a shutdown signal; the
/// load generator's keep-alive connections are idle and close at once.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A population-registry record of realistic size and shape (~300 bytes),
/// so proxies move a representative payload rather than a few bytes. A
/// literal rather than `json!` keeps the natural field order (serde_json
/// sorts keys) and makes every response a reference-counted clone.
const POPULATION_RECORD: &str = concat!(
    r#"{"id":"38001085718","given_name":"Mari","family_name":"Tamm","#,
    r#""birth_date":"1980-01-08","sex":"F","citizenship":"EE","#,
    r#""address":{"street":"Narva mnt 7-12","city":"Tallinn","#,
    r#""county":"Harju maakond","postal_code":"10117","country":"EE"},"#,
    r#""residence_status":"permanent","registered_at":"2004-05-01T00:00:00Z","#,
    r#""updated_at":"2024-11-20T09:15:00Z"}"#
);

/// The response header naming the backend (`bench-backend --name`).
pub static BACKEND_NAME: HeaderName = HeaderName::from_static("x-backend-name");

pub fn population_record() -> Bytes {
    Bytes::from_static(POPULATION_RECORD.as_bytes())
}

struct Responses {
    record: Bytes,
    health: Bytes,
    served: Arc<AtomicU64>,
    /// Stamped as `x-backend-name` so a client behind any proxy can tell
    /// which backend (home or embassy) answered.
    name: Option<HeaderValue>,
    crash_path: Option<String>,
}

/// How a backend presents itself (all off by default).
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Stamped as `x-backend-name` on every response.
    pub name: Option<HeaderValue>,
    /// A request for this path ends the process at once, without a
    /// response: the kernel resets its connections and the port refuses,
    /// as when a site dies (SIGKILL), but timed by the load tool's event.
    pub crash_path: Option<String>,
}

impl Responses {
    fn respond(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        if self.crash_path.as_deref() == Some(req.uri().path()) {
            eprintln!("bench-backend: crash requested by {}", req.uri().path());
            std::process::exit(137);
        }
        let mut resp = self.answer(req);
        if let Some(name) = &self.name {
            resp.headers_mut().insert(BACKEND_NAME.clone(), name.clone());
        }
        resp
    }

    fn answer(&self, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        self.served.fetch_add(1, Ordering::Relaxed);
        // HEAD shares GET's answer; hyper omits the body on the wire.
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut resp = Response::new(Full::new(Bytes::new()));
            *resp.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            resp.headers_mut().insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        let body = if req.uri().path() == "/health" { self.health.clone() } else { self.record.clone() };
        let mut resp = Response::new(Full::new(body));
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        resp
    }
}

/// Serves HTTP/1.1 and h2c (prior knowledge) until `shutdown` resolves, then
/// drains connections for at most [`DRAIN_TIMEOUT`]. Every answered request
/// increments `served`, which tests compare with the client's count.
pub async fn serve(listener: TcpListener, served: Arc<AtomicU64>, shutdown: impl Future<Output = ()>) {
    serve_with(listener, served, Options::default(), shutdown).await;
}

/// As [`serve`], with a name stamp or a crash path (see [`Options`]).
pub async fn serve_with(
    listener: TcpListener,
    served: Arc<AtomicU64>,
    options: Options,
    shutdown: impl Future<Output = ()>,
) {
    let responses = Arc::new(Responses {
        record: population_record(),
        health: Bytes::from_static(br#"{"status":"ok"}"#),
        served,
        name: options.name,
        crash_path: options.crash_path,
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Typically EMFILE: back off instead of spinning on accept.
                    eprintln!("bench-backend: accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let responses = Arc::clone(&responses);
        let service = service_fn(move |req| ready(Ok::<_, Infallible>(responses.respond(&req))));
        let conn = builder.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn.into_owned());
        tokio::spawn(async move {
            // Client resets are routine under load and not worth reporting.
            let _ = conn.await;
        });
    }
    drop(listener);
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_is_realistic_json() {
        let record = population_record();
        assert!((250..=400).contains(&record.len()), "{} bytes", record.len());
        let value: serde_json::Value = serde_json::from_slice(&record).unwrap();
        assert_eq!(value["id"], "38001085718");
        assert_eq!(value["address"]["country"], "EE");
    }
}
