//! population-translate end to end: embassy answers in the legacy schema
//! reach clients in the home schema, field by field.

use http::Response;
use serde_json::Value;

use crate::fixtures::backend::text;
use crate::fixtures::plugins::entry;
use crate::fixtures::{closed_port, get, Backend, TestGateway};

const LEGACY: &str = include_str!("fixtures/data/population_legacy.json");
const HOME: &str = include_str!("fixtures/data/population_home.json");

async fn json_backend(body: &'static str) -> Backend {
    Backend::start(move |_req| async move {
        Response::builder().header("content-type", "application/json").body(text(body)).unwrap()
    })
    .await
}

fn config(home: std::net::SocketAddr, embassy: std::net::SocketAddr) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
[registries.population]
routes = [{{ prefix = "/population/" }}]
sites.home.backends = ["{home}"]
sites.embassy-lu.backends = ["{embassy}"]
sites.embassy-lu.freshness = "replica"
sites.embassy-lu.max_lag = "30s"
{}"#,
        entry(
            "population",
            "population_translate",
            "capabilities = [\"config\", \"metrics\"]\nfail = \"closed\""
        )
    )
}

#[tokio::test]
async fn embassy_answers_reach_clients_in_the_home_schema_field_by_field() {
    let embassy = json_backend(LEGACY).await;
    // Home refuses connections: the request moves on to the embassy.
    let gw = TestGateway::start(&config(closed_port().await, embassy.addr)).await;

    let reply = get(&gw.url("/population/people/48001080271")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-served-by"), "embassy-lu");
    assert_eq!(reply.header("x-schema-translated"), "legacy-to-home");
    let got = reply.json();
    let want: Value = serde_json::from_str(HOME).unwrap();
    let want = want.as_object().unwrap();
    assert_eq!(got.as_object().unwrap().len(), want.len(), "extra or missing fields: {got}");
    for (field, value) in want {
        assert_eq!(&got[field], value, "field {field}");
    }
    assert_eq!(reply.header("content-length"), reply.body.len().to_string());
}

#[tokio::test]
async fn home_answers_pass_untouched() {
    let home = json_backend(HOME).await;
    let embassy = json_backend(LEGACY).await;
    let gw = TestGateway::start(&config(home.addr, embassy.addr)).await;

    let reply = get(&gw.url("/population/people/48001080271")).await;
    assert_eq!(reply.header("x-served-by"), "home");
    assert!(reply.headers.get("x-schema-translated").is_none());
    assert_eq!(reply.body, HOME.as_bytes());
}

#[tokio::test]
async fn a_response_body_over_the_plugin_cap_fails_with_reject_and_streams_untranslated_with_skip() {
    let embassy = json_backend(LEGACY).await;
    let closed = closed_port().await;
    let capped = |over_cap: &str| {
        config(closed, embassy.addr).replace(
            "fail = \"closed\"",
            &format!("fail = \"closed\"\nmax_body = 100\nover_cap = \"{over_cap}\""),
        )
    };
    let gw = TestGateway::start(&capped("reject")).await;
    let reply = get(&gw.url("/population/people/48001080271")).await;
    assert_eq!(reply.status, 502, "{}", reply.text());

    let gw = TestGateway::start(&capped("skip")).await;
    let reply = get(&gw.url("/population/people/48001080271")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, LEGACY.as_bytes());
}

#[tokio::test]
async fn the_cache_keeps_the_translated_answer_so_a_hit_is_in_the_home_schema_without_asking_the_embassy() {
    let mut embassy = Backend::start(|_req| async {
        Response::builder()
            .header("content-type", "application/json")
            .header("cache-control", "public, max-age=60")
            .body(text(LEGACY))
            .unwrap()
    })
    .await;
    let cached = format!(
        "{}\n[registries.population.cache]\nmax_bytes = \"1MiB\"\n",
        config(closed_port().await, embassy.addr)
    );
    let gw = TestGateway::start(&cached).await;
    let want: Value = serde_json::from_str(HOME).unwrap();

    let first = get(&gw.url("/population/people/48001080271")).await;
    assert_eq!(first.header("x-served-by"), "embassy-lu");
    assert_eq!(first.json(), want);
    let second = get(&gw.url("/population/people/48001080271")).await;
    assert_eq!(second.status, 200, "{}", second.text());
    assert_eq!(second.header("x-served-by"), "cache");
    assert_eq!(second.json(), want, "a hit is what clients saw the first time: the home schema");
    assert_eq!(embassy.take_seen().len(), 1, "the hit did not reach the embassy");
}
