//! route-canary (choose-site) moves traffic between sites.

use crate::fixtures::client::{empty, h1_client};
use crate::fixtures::plugins::entry;
use crate::fixtures::{get, send, Backend, TestGateway};

fn config(home: std::net::SocketAddr, embassy: std::net::SocketAddr, plugin_config: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
[registries.population]
routes = [{{ prefix = "/population/" }}]
sites.home.backends = ["{home}"]
sites.embassy-lu.backends = ["{embassy}"]
{}"#,
        entry(
            "population",
            "route_canary",
            &format!("capabilities = [\"config\"]\nfail = \"open\"\nconfig = {plugin_config}")
        )
    )
}

#[tokio::test]
async fn a_request_naming_a_site_in_the_route_header_goes_there() {
    let (home, embassy) = (Backend::named("home").await, Backend::named("embassy").await);
    let gw = TestGateway::start(&config(home.addr, embassy.addr, "{ header = \"x-route-to\" }")).await;

    assert_eq!(get(&gw.url("/population/a")).await.text(), "home");
    let req =
        http::Request::get(gw.url("/population/a")).header("x-route-to", "embassy-lu").body(empty()).unwrap();
    let reply = send(&h1_client(), req).await;
    assert_eq!((reply.text().as_str(), reply.header("x-served-by")), ("embassy", "embassy-lu"));
    // An unknown site is ignored: the gateway's own order stands.
    let req =
        http::Request::get(gw.url("/population/a")).header("x-route-to", "atlantis").body(empty()).unwrap();
    assert_eq!(send(&h1_client(), req).await.text(), "home");
}

#[tokio::test]
async fn the_canary_cohort_moves_to_the_canary_site() {
    let (home, embassy) = (Backend::named("home").await, Backend::named("embassy").await);
    let all = "{ canary_site = \"embassy-lu\", canary_percent = 100 }";
    let gw = TestGateway::start(&config(home.addr, embassy.addr, all)).await;
    for _ in 0..20 {
        assert_eq!(get(&gw.url("/population/a")).await.text(), "embassy");
    }
    let none = "{ canary_site = \"embassy-lu\", canary_percent = 0 }";
    let gw = TestGateway::start(&config(home.addr, embassy.addr, none)).await;
    for _ in 0..20 {
        assert_eq!(get(&gw.url("/population/a")).await.text(), "home");
    }
}

#[tokio::test]
async fn prefer_fastest_moves_traffic_to_the_lower_latency_site() {
    // Not synchronisation: this is the site's latency, which the gateway
    // measures in real time and the plugin compares.
    let slow = Backend::start(|_req| async {
        tokio::time::sleep(std::time::Duration::from_millis(40)).await;
        http::Response::new(crate::fixtures::backend::text("home"))
    })
    .await;
    let fast = Backend::named("embassy").await;
    let gw = TestGateway::start(&config(slow.addr, fast.addr, "{ prefer_fastest = true }")).await;
    let mut served = Vec::new();
    for _ in 0..6 {
        served.push(get(&gw.url("/population/a")).await.text());
    }
    // Each site is timed once, then the faster one takes the traffic.
    assert_eq!(served[2..], ["embassy", "embassy", "embassy", "embassy"], "{served:?}");
}
