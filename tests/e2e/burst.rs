//! Burst load over real sockets: rate limits (429), priority shedding at a
//! saturated site, the queue deadline (503), and spill-over to the embassy.
//! Backends hold requests until the test releases them, so saturation is
//! an event the test controls, not a race against the clock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request};
use http_body_util::BodyExt;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::continuity::TOKEN;
use crate::fixtures::backend::text;
use crate::fixtures::client::{empty, h1_client};
use crate::fixtures::{get, send, Backend, Reply, TestGateway};

/// A backend that answers only when the test adds permits to its gate.
pub async fn held_backend(name: &'static str) -> (Backend, Arc<Semaphore>) {
    held_backend_with(name, &[]).await
}

/// Like [`held_backend`], answering with these extra headers.
pub async fn held_backend_with(
    name: &'static str,
    headers: &'static [(&'static str, &'static str)],
) -> (Backend, Arc<Semaphore>) {
    let gate = Arc::new(Semaphore::new(0));
    let g = gate.clone();
    let backend = Backend::start(move |req| {
        let g = g.clone();
        async move {
            let _ = req.into_body().collect().await;
            g.acquire().await.expect("gate open").forget();
            let mut resp =
                http::Response::builder().header("x-backend", name).header("content-length", name.len());
            for (k, v) in headers {
                resp = resp.header(*k, *v);
            }
            resp.body(text(name)).unwrap()
        }
    })
    .await;
    (backend, gate)
}

fn tax_config(home: SocketAddr, burst: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[registries.tax]
routes = [{{ prefix = "/tax" }}]
sites.home.backends = ["{home}"]
{extra}
[registries.tax.burst]
{burst}
"#
    )
}

async fn request(gw: &TestGateway, method: Method, path: &str) -> Reply {
    let req = Request::builder().method(method).uri(gw.url(path)).body(empty()).unwrap();
    send(&h1_client(), req).await
}

/// Waits (bounded) until the next request at `site` of `registry` would
/// stand at `at_least` in its queue: woken by the limiter, not polled.
async fn until_position(gw: &TestGateway, registry: &str, site: usize, at_least: usize) {
    let generation = gw.gateway.current();
    let state = generation.registry(registry).expect("registry");
    let limiter = state.admission().and_then(|a| a.limiter(site)).expect("a concurrency limit");
    tokio::time::timeout(Duration::from_secs(5), limiter.until_position(at_least))
        .await
        .unwrap_or_else(|_| panic!("queue never reached {at_least}"));
}

fn shed_headers_are_present(reply: &Reply) {
    let secs: u32 = reply.header("retry-after").parse().expect("Retry-After in seconds");
    assert!(secs >= 1, "Retry-After {secs}");
    assert!(reply.headers.contains_key("proxy-status"));
}

#[tokio::test]
async fn a_client_over_its_rate_gets_429_with_retry_after() {
    let home = Backend::named("home").await;
    let burst = "client_rate = { per_second = 1, burst = 2 }";
    let gw = TestGateway::start(&tax_config(home.addr, burst, "")).await;
    assert_eq!(get(&gw.url("/tax/a")).await.status, 200);
    assert_eq!(get(&gw.url("/tax/a")).await.status, 200);
    let refused = get(&gw.url("/tax/a")).await;
    assert_eq!(refused.status, 429);
    shed_headers_are_present(&refused);
    assert_eq!(refused.proxy_status_error(), "http_request_denied");
}

#[tokio::test]
async fn a_saturated_site_sheds_browsing_first_while_submissions_succeed() {
    let (mut home, gate) = held_backend("home").await;
    let burst = r#"max_in_flight = 2
queue = 2
queue_timeout = "5s"
classes = [
  { name = "submit", share = 0.5, methods = ["POST"], prefixes = ["/tax/declarations"] },
  { name = "browse" },
]"#;
    let gw = Arc::new(TestGateway::start(&tax_config(home.addr, burst, "")).await);
    let spawn = |method: Method, path: &'static str| {
        let gw = gw.clone();
        tokio::spawn(async move { request(&gw, method, path).await })
    };
    // Submissions are flowing: their reservation holds while they do.
    let first = spawn(Method::POST, "/tax/declarations/2024");
    home.next_seen().await;
    gate.add_permits(1);
    assert_eq!(first.await.unwrap().status, 200);
    // One browse holds a slot; the other slot is reserved for submissions.
    let browse1 = spawn(Method::GET, "/tax/rates");
    home.next_seen().await;
    let queued = [spawn(Method::GET, "/tax/rates"), spawn(Method::GET, "/tax/rates")];
    // Two waiting; the free slot is kept for submissions.
    until_position(&gw, "tax", 0, 2).await;

    let started = Instant::now();
    let shed = request(&gw, Method::GET, "/tax/rates").await;
    assert_eq!(shed.status, 503, "{}", shed.text());
    assert!(started.elapsed() < Duration::from_millis(500), "shed at once, not after a wait");
    shed_headers_are_present(&shed);
    assert_eq!(shed.proxy_status_error(), "connection_limit_reached");

    // A submission goes straight to the reserved slot past the browse queue.
    let submit = spawn(Method::POST, "/tax/declarations/2025");
    let seen = home.next_seen().await;
    assert_eq!((seen.method, seen.uri.path()), (Method::POST, "/tax/declarations/2025"));
    gate.add_permits(10);
    assert_eq!(submit.await.unwrap().status, 200);
    assert_eq!(browse1.await.unwrap().status, 200);
    for q in queued {
        assert_eq!(q.await.unwrap().status, 200, "queued browsing is served once slots free up");
    }
}

#[tokio::test]
async fn a_request_waiting_past_the_queue_deadline_gets_503() {
    let (mut home, gate) = held_backend("home").await;
    let burst = "max_in_flight = 1\nqueue_timeout = \"200ms\"\nretry_after = 2";
    let gw = Arc::new(TestGateway::start(&tax_config(home.addr, burst, "")).await);
    let first = {
        let gw = gw.clone();
        tokio::spawn(async move { get(&gw.url("/tax/a")).await })
    };
    home.next_seen().await;
    let started = Instant::now();
    let late = get(&gw.url("/tax/b")).await;
    let waited = started.elapsed();
    assert_eq!(late.status, 503);
    assert_eq!(late.header("retry-after"), "2");
    assert!(waited >= Duration::from_millis(200), "waited {waited:?}");
    assert!(waited < Duration::from_secs(2), "no hang past the deadline: {waited:?}");
    assert!(late.text().contains("queue_timeout"), "{}", late.text());
    gate.add_permits(1);
    assert_eq!(first.await.unwrap().status, 200);
}

async fn admin_state(gw: &TestGateway) -> String {
    let req = Request::get(format!("http://{}/v1/status", gw.admin.unwrap()))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(empty())
        .unwrap();
    let status = send(&h1_client(), req).await.json();
    status["registries"][0]["state"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn spill_over_moves_overflow_reads_to_the_embassy_and_back() {
    let (mut home, gate) = held_backend("home").await;
    let embassy = Backend::named("embassy").await;
    let burst = "max_in_flight = 1\nqueue_timeout = \"5s\"\nspill = { queue_depth = 1 }";
    let extra = format!("sites.embassy-lu.backends = [\"{}\"]", embassy.addr);
    let gw = Arc::new(TestGateway::start(&tax_config(home.addr, burst, &extra)).await);
    assert_eq!(admin_state(&gw).await, "normal");

    let held = {
        let gw = gw.clone();
        tokio::spawn(async move { get(&gw.url("/tax/a")).await })
    };
    home.next_seen().await;
    let overflow = get(&gw.url("/tax/b")).await;
    assert_eq!(overflow.status, 200);
    assert_eq!(overflow.header("x-served-by"), "embassy-lu");
    assert_eq!(admin_state(&gw).await, "spill");
    let metrics = gw.gateway.metrics();
    assert_eq!(metrics.burst.spill.with_label_values(&["tax", "embassy-lu"]).get(), 1);

    gate.add_permits(1);
    assert_eq!(held.await.unwrap().header("x-served-by"), "home");
    gate.add_permits(1);
    let back = get(&gw.url("/tax/c")).await;
    assert_eq!(back.header("x-served-by"), "home", "home has room again: reads go home");
}

#[tokio::test]
async fn writes_do_not_spill_to_a_replica_under_the_reject_policy() {
    let (mut home, gate) = held_backend("home").await;
    let embassy = Backend::named("embassy").await;
    let burst = "max_in_flight = 1\nqueue_timeout = \"5s\"\nspill = { queue_depth = 1, max_lag = \"1m\" }";
    let extra = format!(
        "[registries.tax.sites.embassy-lu]\nbackends = [\"{}\"]\nfreshness = \"replica\"\nmax_lag = \"30s\"",
        embassy.addr
    );
    let gw = Arc::new(TestGateway::start(&tax_config(home.addr, burst, &extra)).await);
    let held = {
        let gw = gw.clone();
        tokio::spawn(async move { get(&gw.url("/tax/a")).await })
    };
    home.next_seen().await;
    assert_eq!(
        get(&gw.url("/tax/b")).await.header("x-served-by"),
        "embassy-lu",
        "a fresh-enough replica takes reads"
    );
    let write = {
        let gw = gw.clone();
        tokio::spawn(async move { request(&gw, Method::POST, "/tax/declarations/1").await })
    };
    until_position(&gw, "tax", 0, 2).await;
    gate.add_permits(2);
    assert_eq!(held.await.unwrap().status, 200);
    assert_eq!(write.await.unwrap().header("x-served-by"), "home", "the write waited for home");
}
