//! Failover between home and embassy sites, over real sockets with a fault
//! injector between the gateway and each site.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gateway::sites::continuity::ContinuityEvent;
use gateway::sites::{HealthEvent, Transition};
use http::{Method, Request};
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::fixtures::backend::text;
use crate::fixtures::client::{empty, h1_client};
use crate::fixtures::faults::{Fault, FaultProxy};
use crate::fixtures::{get, send, Backend, Reply, TestGateway};

pub const TOKEN: &str = "test-admin-token-0123456789";

/// Home and embassy backends, each behind a fault proxy, and the gateway.
pub struct Pair {
    pub home: Backend,
    pub embassy: Backend,
    pub home_fault: FaultProxy,
    pub embassy_fault: FaultProxy,
    pub gw: TestGateway,
}

/// Options a test varies; the rest is fixed and fast.
pub struct Setup {
    pub continuity: &'static str,
    pub embassy: &'static str,
    pub check_interval: &'static str,
    /// Without checks on home, only real requests meet its faults.
    pub home_checks: bool,
    pub limits: &'static str,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            continuity: "failback_hold = \"500ms\"",
            embassy: "freshness = \"replica\"\nmax_lag = \"30s\"",
            check_interval: "50ms",
            home_checks: true,
            limits: "response_header_timeout = \"500ms\"",
        }
    }
}

pub async fn pair(setup: Setup) -> Pair {
    let home = Backend::named("home").await;
    let embassy = Backend::named("embassy").await;
    let home_fault = FaultProxy::start(home.addr).await;
    let embassy_fault = FaultProxy::start(embassy.addr).await;
    let check = format!(
        "health_check = {{ path = \"/health\", interval = \"{}\", timeout = \"200ms\", rise = 1, fall = 1, jitter = 0.0 }}",
        setup.check_interval
    );
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[registries.population]
routes = [{{ prefix = "/" }}]
limits = {{ {limits} }}
continuity = {{ {continuity} }}
[registries.population.sites.home]
backends = ["{home}"]
{home_check}
[registries.population.sites.embassy-lu]
backends = ["{embassy}"]
{embassy_extra}
{check}
"#,
        limits = setup.limits,
        continuity = setup.continuity,
        home = home_fault.addr,
        embassy = embassy_fault.addr,
        embassy_extra = setup.embassy,
        home_check = if setup.home_checks { check.as_str() } else { "" },
    );
    let gw = TestGateway::start(&config).await;
    Pair { home, embassy, home_fault, embassy_fault, gw }
}

impl Pair {
    pub fn events(&self) -> broadcast::Receiver<ContinuityEvent> {
        self.gw.gateway.subscribe("population").unwrap()
    }

    pub fn health(&self) -> broadcast::Receiver<HealthEvent> {
        self.gw.gateway.sites("population").unwrap().subscribe_health()
    }
}

/// Waits for the registry to enter `state`; the timeout only bounds a
/// broken test.
pub async fn wait_state(events: &mut broadcast::Receiver<ContinuityEvent>, state: &str) -> ContinuityEvent {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let e = events.recv().await.expect("event stream ended");
            if e.to == state {
                return e;
            }
        }
    });
    found.await.unwrap_or_else(|_| panic!("registry never entered {state}"))
}

/// Waits for a health transition of `site` matching `want`.
pub async fn wait_health(
    events: &mut broadcast::Receiver<HealthEvent>,
    site: &str,
    want: fn(&Transition) -> bool,
) {
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let e = events.recv().await.expect("health stream ended");
            if &*e.site == site && want(&e.transition) {
                return;
            }
        }
    });
    found.await.unwrap_or_else(|_| panic!("no such health transition of {site}"));
}

pub fn served_by(reply: &Reply) -> &str {
    reply.header("x-served-by")
}

fn down(t: &Transition) -> bool {
    !matches!(t, Transition::BecameHealthy)
}

fn up(t: &Transition) -> bool {
    matches!(t, Transition::BecameHealthy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_killed_under_steady_load_fails_no_request() {
    let p = pair(Setup::default()).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (url, stop, tx) = (p.gw.url("/people/38001085718"), stop.clone(), tx.clone());
        clients.push(tokio::spawn(async move {
            let client = h1_client();
            // Bounded in count; the test stops it far earlier.
            for _ in 0..5_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let reply = send(&client, Request::get(url.as_str()).body(empty()).unwrap()).await;
                let site = reply.headers.get("x-served-by").map(|v| v.to_str().unwrap().to_string());
                tx.send((reply.status.as_u16(), site)).unwrap();
            }
        }));
    }
    drop(tx);

    let (mut total, mut by_embassy, mut failed) = (0, 0, 0);
    while let Some((status, site)) = rx.recv().await {
        total += 1;
        if status != 200 {
            failed += 1;
        }
        if total == 200 {
            p.home_fault.set(Fault::Refuse);
        }
        if site.as_deref() == Some("embassy-lu") {
            by_embassy += 1;
        }
        if by_embassy == 300 {
            stop.store(true, Ordering::SeqCst);
        }
    }
    assert_eq!(failed, 0, "{failed} of {total} requests failed while home died");
    assert!(
        by_embassy >= 300 && total > by_embassy,
        "home served {} and the embassy {by_embassy}",
        total - by_embassy
    );
}

#[tokio::test]
async fn fails_back_only_after_home_stayed_healthy_for_the_hold() {
    let p = pair(Setup { continuity: "failback_hold = \"1s\"", ..Setup::default() }).await;
    let mut events = p.events();
    let mut health = p.health();
    p.home_fault.set(Fault::Refuse);
    wait_state(&mut events, "failover").await;

    p.home_fault.set(Fault::Pass);
    wait_health(&mut health, "home", up).await;
    let healthy_at = Instant::now();
    // Home is healthy again, but the hold keeps the embassy serving.
    assert_eq!(served_by(&get(&p.gw.url("/people/1")).await), "embassy-lu");

    let back = wait_state(&mut events, "normal").await;
    assert!(
        healthy_at.elapsed() >= Duration::from_millis(900),
        "failed back after {:?}",
        healthy_at.elapsed()
    );
    assert!(back.reason.contains("failback hold"), "{}", back.reason);
    assert_eq!(served_by(&get(&p.gw.url("/people/1")).await), "home");
}

#[tokio::test]
async fn a_flapping_home_does_not_flap_routing() {
    let p = pair(Setup { continuity: "failback_hold = \"3s\"", check_interval: "20ms", ..Setup::default() })
        .await;
    let mut events = p.events();
    let mut health = p.health();
    p.home_fault.set(Fault::Refuse);
    wait_state(&mut events, "failover").await;

    for _ in 0..5 {
        p.home_fault.set(Fault::Pass);
        wait_health(&mut health, "home", up).await;
        assert_eq!(served_by(&get(&p.gw.url("/people/1")).await), "embassy-lu");
        p.home_fault.set(Fault::Refuse);
        wait_health(&mut health, "home", down).await;
    }
    assert!(events.try_recv().is_err(), "routing changed while home flapped");
    assert_eq!(served_by(&get(&p.gw.url("/people/1")).await), "embassy-lu");
}

async fn post(p: &Pair) -> Reply {
    let req = Request::post(p.gw.url("/people")).body(text("{\"given_name\":\"Mari\"}")).unwrap();
    send(&h1_client(), req).await
}

fn posts(backend: &mut Backend) -> usize {
    backend.take_seen().iter().filter(|s| s.method == Method::POST).count()
}

#[tokio::test]
async fn a_write_during_failover_is_rejected_with_retry_after_under_the_reject_policy() {
    let mut p = pair(Setup::default()).await;
    let mut events = p.events();
    p.home_fault.set(Fault::Refuse);
    wait_state(&mut events, "failover").await;

    let reply = post(&p).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.proxy_status_error(), "destination_unavailable");
    assert_eq!(reply.header("retry-after"), "5");
    assert_eq!(posts(&mut p.embassy), 0, "a rejected write reached the embassy");
    // Reads still flow.
    assert_eq!(get(&p.gw.url("/people/1")).await.status, 200);
}

#[tokio::test]
async fn a_write_during_failover_goes_to_a_live_embassy_once_under_the_forward_policy() {
    let setup = Setup {
        continuity: "write_policy = \"forward\"",
        embassy: "freshness = \"live\"",
        ..Setup::default()
    };
    let mut p = pair(setup).await;
    let mut events = p.events();
    p.home_fault.set(Fault::Refuse);
    wait_state(&mut events, "failover").await;

    let reply = post(&p).await;
    assert_eq!((reply.status.as_u16(), served_by(&reply)), (200, "embassy-lu"));
    assert_eq!(posts(&mut p.embassy), 1);
    assert_eq!(posts(&mut p.home), 0);
}

#[tokio::test]
async fn a_write_the_home_may_have_received_is_never_sent_again() {
    let setup = Setup {
        continuity: "write_policy = \"forward\"",
        embassy: "freshness = \"live\"",
        home_checks: false,
        ..Setup::default()
    };
    let mut p = pair(setup).await;
    p.home_fault.set(Fault::ResetAfter(0));
    let reply = post(&p).await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert_eq!(reply.proxy_status_error(), "connection_terminated");
    assert_eq!(posts(&mut p.home), 1, "home received the write");
    assert_eq!(posts(&mut p.embassy), 0, "the write was delivered twice");
}

#[tokio::test]
async fn a_write_refused_before_home_saw_it_moves_to_a_live_embassy() {
    let setup = Setup {
        continuity: "write_policy = \"forward\"",
        embassy: "freshness = \"live\"",
        home_checks: false,
        ..Setup::default()
    };
    let mut p = pair(setup).await;
    p.home_fault.set(Fault::Refuse);
    let reply = post(&p).await;
    assert_eq!((reply.status.as_u16(), served_by(&reply)), (200, "embassy-lu"));
    assert_eq!(posts(&mut p.embassy), 1);
}

#[tokio::test]
async fn a_black_holed_home_is_detected_within_its_timeouts_and_the_embassy_serves() {
    let p = pair(Setup { home_checks: false, ..Setup::default() }).await;
    let mut events = p.events();
    p.home_fault.set(Fault::BlackHole);
    let started = Instant::now();
    let reply = get(&p.gw.url("/people/1")).await;
    let took = started.elapsed();
    assert_eq!((reply.status.as_u16(), served_by(&reply)), (200, "embassy-lu"));
    // One response-header timeout (500ms), then the embassy at once.
    assert!(took < Duration::from_millis(1500), "took {took:?}");
    assert!(wait_state(&mut events, "failover").await.reason.contains("no usable backend"));
    // Later requests do not wait for the black hole again.
    assert_eq!(served_by(&get(&p.gw.url("/people/2")).await), "embassy-lu");
}

#[tokio::test]
async fn with_every_site_down_the_answer_is_a_clear_503() {
    let p = pair(Setup::default()).await;
    let mut health = p.health();
    p.home_fault.set(Fault::Refuse);
    p.embassy_fault.set(Fault::Refuse);
    wait_health(&mut health, "home", down).await;
    wait_health(&mut health, "embassy-lu", down).await;
    let reply = get(&p.gw.url("/people/1")).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.proxy_status_error(), "destination_unavailable");
    assert!(reply.header("retry-after").parse::<u32>().is_ok());
    assert!(reply.json()["message"].as_str().unwrap().contains("population"));
}

#[tokio::test]
async fn retries_stop_when_the_retry_budget_is_spent() {
    let home =
        Backend::start(|_req| async { http::Response::builder().status(503).body(text("busy")).unwrap() })
            .await;
    let embassy = Backend::named("embassy").await;
    let config = |budget: &str| {
        format!(
            r#"
[server]
listen = "127.0.0.1:0"
[registries.population]
routes = [{{ prefix = "/" }}]
continuity = {{ {budget} }}
sites.home.backends = ["{}"]
sites.home.outlier = {{ consecutive_5xx = 1000 }}
sites.embassy-lu.backends = ["{}"]
"#,
            home.addr, embassy.addr
        )
    };
    let generous = TestGateway::start(&config("retry_budget = 0.2")).await;
    let reply = get(&generous.url("/people/1")).await;
    assert_eq!((reply.status.as_u16(), served_by(&reply)), (200, "embassy-lu"));

    let spent = TestGateway::start(&config("retry_budget = 0.0, retry_min_per_second = 0")).await;
    let reply = get(&spent.url("/people/1")).await;
    assert_eq!((reply.status.as_u16(), served_by(&reply)), (503, "home"));
}

#[tokio::test]
async fn a_home_slower_than_its_header_timeout_is_retried_on_the_embassy() {
    let p = pair(Setup { home_checks: false, ..Setup::default() }).await;
    p.home_fault.set(Fault::Delay(Duration::from_secs(5)));
    let before = p.home_fault.accepted();
    let reply = get(&p.gw.url("/people/1")).await;
    assert_eq!((reply.status.as_u16(), served_by(&reply)), (200, "embassy-lu"));
    assert_eq!(p.home_fault.accepted(), before + 1, "home was tried first");
}
