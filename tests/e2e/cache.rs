//! The response cache over real sockets: hits with their age, misses,
//! Vary, no-store and private, coalesced misses, stale-while-revalidate and
//! stale-if-error when every site is down.

use std::net::SocketAddr;
use std::sync::Arc;

use http::Request;
use http_body_util::BodyExt;

use crate::burst::held_backend_with;
use crate::fixtures::backend::text;
use crate::fixtures::client::{empty, h1_client};
use crate::fixtures::faults::{Fault, FaultProxy};
use crate::fixtures::{get, send, Backend, TestGateway};

fn config(sites: &[SocketAddr], cache: &str) -> String {
    let mut out = format!(
        r#"
[server]
listen = "127.0.0.1:0"
[registries.gazette]
routes = [{{ prefix = "/gazette" }}]
cache = {{ max_bytes = "1MiB", max_entry_bytes = "64KiB" {cache} }}
sites.home.backends = ["{}"]
"#,
        sites[0]
    );
    if let Some(embassy) = sites.get(1) {
        out.push_str(&format!("sites.embassy-lu.backends = [\"{embassy}\"]\n"));
    }
    out
}

/// Answers with the Cache-Control / Vary the path asks for:
/// `/gazette/cc/<directives>` (`_` for spaces) and `/gazette/vary`.
async fn gazette() -> Backend {
    Backend::start(|req| async move {
        let path = req.uri().path().to_string();
        let lang = req.headers().get("accept-language").map(|v| v.to_str().unwrap().to_string());
        let mut resp = http::Response::builder().header("content-type", "text/plain");
        let body = if let Some(cc) = path.strip_prefix("/gazette/cc/") {
            resp = resp.header("cache-control", cc.replace('_', " ").replace("%20", " "));
            format!("act {path}")
        } else if path == "/gazette/vary" {
            resp = resp.header("cache-control", "max-age=60").header("vary", "accept-language");
            format!("act in {}", lang.unwrap_or_default())
        } else {
            "no caching said".to_string()
        };
        let _ = req.into_body().collect().await;
        resp.header("content-length", body.len()).body(text(body)).unwrap()
    })
    .await
}

#[tokio::test]
async fn a_fresh_response_is_served_from_the_cache_with_its_age() {
    let mut home = gazette().await;
    let gw = TestGateway::start(&config(&[home.addr], "")).await;
    let first = get(&gw.url("/gazette/cc/max-age=60")).await;
    assert_eq!(first.header("x-served-by"), "home");
    let second = get(&gw.url("/gazette/cc/max-age=60")).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.header("x-served-by"), "cache");
    assert!(second.header("age").parse::<u64>().unwrap() <= 1);
    assert_eq!(second.body, first.body);
    assert_eq!(home.take_seen().len(), 1, "one upstream request for two answers");
    let lookups = &gw.gateway.metrics().burst.cache_lookups;
    assert_eq!(lookups.with_label_values(&["gazette", "hit"]).get(), 1);
    assert_eq!(lookups.with_label_values(&["gazette", "miss"]).get(), 1);
}

#[tokio::test]
async fn no_store_private_and_uncacheable_responses_go_upstream_every_time() {
    let mut home = gazette().await;
    let gw = TestGateway::start(&config(&[home.addr], "")).await;
    for path in ["/gazette/cc/no-store", "/gazette/cc/private,_max-age=60", "/gazette/plain"] {
        for _ in 0..2 {
            assert_eq!(get(&gw.url(path)).await.header("x-served-by"), "home", "{path}");
        }
        assert_eq!(home.take_seen().len(), 2, "{path}");
    }
}

#[tokio::test]
async fn vary_keeps_one_entry_per_header_value() {
    let mut home = gazette().await;
    let gw = TestGateway::start(&config(&[home.addr], "")).await;
    let get_lang = |lang: &'static str| {
        let req =
            Request::get(gw.url("/gazette/vary")).header("accept-language", lang).body(empty()).unwrap();
        async move { send(&h1_client(), req).await }
    };
    assert_eq!(get_lang("et").await.text(), "act in et");
    assert_eq!(get_lang("en").await.text(), "act in en");
    let et = get_lang("et").await;
    let en = get_lang("en").await;
    assert_eq!((et.text().as_str(), et.header("x-served-by")), ("act in et", "cache"));
    assert_eq!((en.text().as_str(), en.header("x-served-by")), ("act in en", "cache"));
    assert_eq!(home.take_seen().len(), 2);
}

#[tokio::test]
async fn many_identical_concurrent_misses_make_one_upstream_request() {
    let (mut home, gate) = held_backend_with("gazette", &[("cache-control", "max-age=60")]).await;
    let gw = Arc::new(TestGateway::start(&config(&[home.addr], "")).await);
    let clients: Vec<_> = (0..20)
        .map(|_| {
            let gw = gw.clone();
            tokio::spawn(async move { get(&gw.url("/gazette/acts/1")).await })
        })
        .collect();
    // The first miss reached the site and is held there; whatever the
    // others do meanwhile (wait for it, or arrive after it is stored),
    // none of them may reach the site.
    home.next_seen().await;
    gate.add_permits(100);
    for c in clients {
        let reply = c.await.unwrap();
        assert_eq!((reply.status.as_u16(), reply.text().as_str()), (200, "gazette"));
    }
    assert_eq!(home.take_seen().len(), 0, "no second upstream request");
    let lookups = &gw.gateway.metrics().burst.cache_lookups;
    let waited_or_hit = lookups.with_label_values(&["gazette", "coalesced"]).get()
        + lookups.with_label_values(&["gazette", "hit"]).get();
    assert_eq!((lookups.with_label_values(&["gazette", "miss"]).get(), waited_or_hit), (1, 19));
}

#[tokio::test]
async fn stale_while_revalidate_answers_at_once_and_refreshes_behind() {
    let mut home = gazette().await;
    let gw = TestGateway::start(&config(&[home.addr], "")).await;
    let path = "/gazette/cc/max-age=0,_stale-while-revalidate=60";
    assert_eq!(get(&gw.url(path)).await.header("x-served-by"), "home");
    home.next_seen().await;
    let stale = get(&gw.url(path)).await;
    assert_eq!(stale.header("x-served-by"), "cache");
    assert!(stale.headers.contains_key("age"));
    // The background refresh reaches the site.
    assert_eq!(home.next_seen().await.uri.path(), "/gazette/cc/max-age=0,_stale-while-revalidate=60");
}

#[tokio::test]
async fn stale_if_error_serves_the_gazette_with_its_age_when_every_site_is_down() {
    let (home, embassy) = (gazette().await, gazette().await);
    let (home_fault, embassy_fault) =
        (FaultProxy::start(home.addr).await, FaultProxy::start(embassy.addr).await);
    let gw = TestGateway::start(&config(&[home_fault.addr, embassy_fault.addr], "")).await;
    let path = "/gazette/cc/max-age=0,_stale-if-error=3600";
    let fresh = get(&gw.url(path)).await;
    assert_eq!(fresh.header("x-served-by"), "home");
    home_fault.set(Fault::Refuse);
    embassy_fault.set(Fault::Refuse);
    let served = get(&gw.url(path)).await;
    assert_eq!(served.status, 200, "{}", served.text());
    assert_eq!(served.header("x-served-by"), "cache");
    assert_eq!(served.body, fresh.body);
    assert!(served.headers.contains_key("age"));
    let lookups = &gw.gateway.metrics().burst.cache_lookups;
    assert_eq!(lookups.with_label_values(&["gazette", "stale_if_error"]).get(), 1);

    // Without stale-if-error the same outage is an error.
    let plain = get(&gw.url("/gazette/cc/max-age=0")).await;
    assert!(plain.status.is_server_error());
}
