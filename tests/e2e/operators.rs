//! What operators see and steer: served-by and freshness headers, the admin
//! API (auth, force, drain, automatic) and `gateway ctl`.

use std::io::Write;

use http::{Method, Request};
use tokio::sync::{mpsc, oneshot};

use crate::continuity::{pair, served_by, Setup, TOKEN};
use crate::fixtures::backend::text;
use crate::fixtures::client::{empty, h1_client};
use crate::fixtures::faults::Fault;
use crate::fixtures::process::GatewayProcess;
use crate::fixtures::{get, send, Backend, Reply, TestGateway};

async fn admin(gw: &TestGateway, method: Method, path: &str, token: Option<&str>) -> Reply {
    let mut req = Request::builder().method(method).uri(format!("http://{}{path}", gw.admin.unwrap()));
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    send(&h1_client(), req.body(empty()).unwrap()).await
}

#[tokio::test]
async fn every_answer_names_its_site_and_a_replica_states_its_lag() {
    let p = pair(Setup::default()).await;
    let from_home = get(&p.gw.url("/people/1")).await;
    assert_eq!(served_by(&from_home), "home");
    assert!(!from_home.headers.contains_key("x-data-freshness"), "home is live");

    let mut events = p.events();
    p.home_fault.set(Fault::Refuse);
    crate::continuity::wait_state(&mut events, "failover").await;
    let from_embassy = get(&p.gw.url("/people/1")).await;
    assert_eq!(served_by(&from_embassy), "embassy-lu");
    assert_eq!(from_embassy.header("x-data-freshness"), "replica; max-lag=30");
}

#[tokio::test]
async fn a_snapshot_states_its_as_of_time_from_config_or_file() {
    let home = Backend::named("home").await;
    let fixed = Backend::named("fixed").await;
    let filed = Backend::named("filed").await;
    let mut as_of = tempfile::NamedTempFile::new().unwrap();
    writeln!(as_of, "2026-11-21T02:30:00Z").unwrap();
    let gw = TestGateway::start(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
served_by_header = "x-site"
[registries.gazette]
routes = [{{ prefix = "/" }}]
sites.home.backends = ["{}"]
sites.nightly.backends = ["{}"]
sites.nightly.freshness = "snapshot"
sites.nightly.as_of = "2026-11-20T03:00:00Z"
sites.weekly.backends = ["{}"]
sites.weekly.freshness = "snapshot"
sites.weekly.as_of_file = "{}"
"#,
        home.addr,
        fixed.addr,
        filed.addr,
        as_of.path().display()
    ))
    .await;
    let sites = gw.gateway.sites("gazette").unwrap();
    for (site, want) in [("nightly", "2026-11-20T03:00:00Z"), ("weekly", "2026-11-21T02:30:00Z")] {
        sites.continuity.force(sites.site_index(site).unwrap(), "test");
        let reply = get(&gw.url("/acts/1")).await;
        assert_eq!(reply.header("x-site"), site);
        assert_eq!(reply.header("x-data-freshness"), format!("snapshot; as-of=\"{want}\""));
    }
}

#[tokio::test]
async fn the_admin_api_refuses_requests_without_the_token() {
    let p = pair(Setup::default()).await;
    assert_eq!(admin(&p.gw, Method::GET, "/v1/status", None).await.status, 401);
    let wrong = admin(&p.gw, Method::GET, "/v1/status", Some("test-admin-token-012345678X")).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.header("www-authenticate"), "Bearer");
    let force = admin(&p.gw, Method::POST, "/v1/registries/population/force/embassy-lu", None).await;
    assert_eq!(force.status, 401);
    assert_eq!(served_by(&get(&p.gw.url("/people/1")).await), "home", "an unauthenticated force took effect");
    // Probes need no token and say nothing.
    assert_eq!(admin(&p.gw, Method::GET, "/livez", None).await.status, 200);
}

#[tokio::test]
async fn the_admin_api_is_not_served_on_the_public_listener() {
    let p = pair(Setup::default()).await;
    let reply = get(&p.gw.url("/v1/status")).await;
    assert_eq!(served_by(&reply), "home", "the public listener answered an admin path itself");
}

#[tokio::test]
async fn operators_force_a_site_then_return_to_automatic() {
    let p = pair(Setup::default()).await;
    let forced = admin(&p.gw, Method::POST, "/v1/registries/population/force/embassy-lu", Some(TOKEN)).await;
    assert_eq!(forced.status, 200);
    assert_eq!(forced.json()["state"], "override:embassy-lu");
    for _ in 0..3 {
        assert_eq!(served_by(&get(&p.gw.url("/people/1")).await), "embassy-lu");
    }
    let status = admin(&p.gw, Method::GET, "/v1/status", Some(TOKEN)).await.json();
    assert_eq!(status["registries"][0]["state"], "override:embassy-lu");

    let auto = admin(&p.gw, Method::POST, "/v1/registries/population/automatic", Some(TOKEN)).await;
    assert_eq!(auto.json()["state"], "normal");
    assert_eq!(served_by(&get(&p.gw.url("/people/1")).await), "home");

    let unknown = admin(&p.gw, Method::POST, "/v1/registries/population/force/embassy-xx", Some(TOKEN)).await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn a_drained_site_gets_no_new_requests_while_its_requests_in_flight_finish() {
    // Home holds one request until the test releases it.
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel::<oneshot::Sender<()>>();
    let home = Backend::start(move |req| {
        let arrived_tx = arrived_tx.clone();
        async move {
            if req.uri().path() == "/slow" {
                let (tx, rx) = oneshot::channel();
                arrived_tx.send(tx).unwrap();
                let _ = rx.await;
            }
            http::Response::new(text("home"))
        }
    })
    .await;
    let embassy = Backend::named("embassy").await;
    let gw = TestGateway::start(&format!(
        r#"
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[registries.population]
routes = [{{ prefix = "/" }}]
sites.home.backends = ["{}"]
sites.embassy-lu.backends = ["{}"]
"#,
        home.addr, embassy.addr
    ))
    .await;
    let slow_url = gw.url("/slow");
    let slow = tokio::spawn(async move { get(&slow_url).await });
    let release = arrived.recv().await.unwrap();

    let drained = admin(&gw, Method::POST, "/v1/registries/population/drain/home", Some(TOKEN)).await;
    assert_eq!(drained.json()["sites"][0]["draining"], true);
    assert_eq!(served_by(&get(&gw.url("/people/1")).await), "embassy-lu");

    release.send(()).unwrap();
    let slow = slow.await.unwrap();
    assert_eq!((slow.status.as_u16(), served_by(&slow)), (200, "home"));

    admin(&gw, Method::POST, "/v1/registries/population/automatic", Some(TOKEN)).await;
    assert_eq!(served_by(&get(&gw.url("/people/1")).await), "home");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_ctl_forces_a_site_on_a_running_gateway() {
    let home = Backend::named("home").await;
    let embassy = Backend::named("embassy").await;
    let admin_port = crate::fixtures::closed_port().await;
    let gw = GatewayProcess::start_with_env(
        &format!(
            r#"
[server]
listen = "127.0.0.1:0"
[admin]
listen = "{admin_port}"
token_env = "DEG_TEST_TOKEN"
[registries.population]
routes = [{{ prefix = "/" }}]
sites.home.backends = ["{}"]
sites.embassy-lu.backends = ["{}"]
"#,
            home.addr, embassy.addr
        ),
        &[("DEG_TEST_TOKEN", TOKEN)],
    );
    let url = format!("http://{}/people/1", gw.addr);
    assert_eq!(served_by(&get(&url).await), "home");

    let ctl = |args: &[&str]| {
        std::process::Command::new(crate::fixtures::process::BIN)
            .args(["ctl", "--admin", &admin_port.to_string(), "--token-env", "DEG_TEST_TOKEN"])
            .args(args)
            .env("DEG_TEST_TOKEN", TOKEN)
            .output()
            .unwrap()
    };
    let out = tokio::task::block_in_place(|| ctl(&["force", "population", "embassy-lu"]));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("override:embassy-lu"));
    assert_eq!(served_by(&get(&url).await), "embassy-lu");

    let out = tokio::task::block_in_place(|| ctl(&["auto", "population"]));
    assert!(out.status.success());
    assert_eq!(served_by(&get(&url).await), "home");
}
