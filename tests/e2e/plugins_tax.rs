//! tax-peak-guard: polls shed under pressure, submissions never; fresh
//! poll answers served from the shared store.

use http::{Method, Response};

use crate::fixtures::backend::text;
use crate::fixtures::client::h1_client;
use crate::fixtures::plugins::entry;
use crate::fixtures::{get, send, Backend, TestGateway};

/// `json = false`: poll answers are plain text, which the guard does not
/// store, so every poll meets the rate check.
async fn tax_backend(json: bool) -> Backend {
    Backend::start(move |req| async move {
        let status = if req.method() == Method::POST { 201 } else { 200 };
        let kind = if json { "application/json" } else { "text/plain" };
        Response::builder()
            .status(status)
            .header("content-type", kind)
            .body(text(r#"{"status":"accepted"}"#))
            .unwrap()
    })
    .await
}

fn config(home: std::net::SocketAddr, guard: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
[registries.tax]
routes = [{{ prefix = "/tax/" }}]
sites.home.backends = ["{home}"]
{}"#,
        entry(
            "tax",
            "tax_peak_guard",
            &format!("capabilities = [\"config\", \"kv\", \"clock\", \"metrics\"]\nfail = \"open\"\nconfig = {guard}")
        )
    )
}

#[tokio::test]
async fn under_pressure_polls_beyond_the_citizen_rate_get_429_and_submissions_never_do() {
    let mut home = tax_backend(false).await;
    // pressure_rps = 0: always under pressure.
    let guard =
        "{ pressure_rps = 0, polls_per_window = 2, window_ms = 60000, fresh_ms = 1, retry_after = 7 }";
    let gw = TestGateway::start(&config(home.addr, guard)).await;

    let poll = gw.url("/tax/declarations/38001085718/2025");
    assert_eq!(get(&poll).await.status, 200);
    assert_eq!(get(&poll).await.status, 200);
    let shed = get(&poll).await;
    assert_eq!(shed.status, 429, "{}", shed.text());
    assert_eq!(shed.header("retry-after"), "7");
    assert_eq!(shed.json()["error"], "too_many_polls");
    // Another citizen is not held back by the first one's polls.
    assert_eq!(get(&gw.url("/tax/declarations/49002124277/2025")).await.status, 200);

    let client = h1_client();
    for i in 0..20 {
        let req = http::Request::post(gw.url("/tax/declarations"))
            .body(crate::fixtures::backend::text(format!("{{\"taxpayer\":\"38001085718\",\"n\":{i}}}")))
            .unwrap();
        assert_eq!(send(&client, req).await.status, 201, "submission {i}");
    }
    let submissions = home.take_seen().into_iter().filter(|s| s.method == Method::POST).count();
    assert_eq!(submissions, 20);
}

#[tokio::test]
async fn a_fresh_poll_answer_is_served_from_the_shared_store() {
    let mut home = tax_backend(true).await;
    // Under pressure, and still a fresh stored answer beats a 429.
    let guard = "{ pressure_rps = 0, polls_per_window = 1, fresh_ms = 60000 }";
    let gw = TestGateway::start(&config(home.addr, guard)).await;

    let poll = gw.url("/tax/declarations/37605030299/2025");
    let first = get(&poll).await;
    assert_eq!(first.status, 200);
    assert!(first.headers.get("x-served-from").is_none());
    let second = get(&poll).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.header("x-served-from"), "tax-peak-guard");
    assert_eq!(second.body, first.body);
    assert_eq!(home.take_seen().len(), 1, "the second poll reached the registry");
}

#[tokio::test]
async fn a_citizen_over_the_poll_rate_is_demoted_to_the_lowest_burst_class_by_the_plugin() {
    use crate::continuity::TOKEN;
    let home = tax_backend(false).await;
    // No pressure ever, so nothing is shed: the guard demotes instead.
    let guard =
        r#"{ pressure_rps = 1000000, polls_per_window = 1, window_ms = 60000, demote_to = "browse" }"#;
    let toml = config(home.addr, guard).replace(
        "[registries.tax]",
        &format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n\
             [registries.tax.burst]\nmax_in_flight = 8\nclasses = [\
             {{ name = \"status\", methods = [\"GET\"], prefixes = [\"/tax/declarations\"] }}, \
             {{ name = \"browse\" }}]\n[registries.tax]"
        ),
    );
    let gw = TestGateway::start(&toml).await;

    // A citizen of its own: the plugins' shared store lives as long as the
    // process, and other tests poll as other citizens.
    let poll = gw.url("/tax/declarations/51107121760/2025");
    assert_eq!(get(&poll).await.status, 200);
    assert_eq!(get(&poll).await.status, 200, "a demoted poll is still served");
    let req = http::Request::get(format!("http://{}/metrics", gw.admin.unwrap()))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(crate::fixtures::client::empty())
        .unwrap();
    let text = send(&h1_client(), req).await.text();
    let admitted = |class| {
        crate::ops::sample(&text, "gateway_admission_total", &[("class", class), ("outcome", "admitted")])
    };
    assert_eq!(admitted("status"), 1.0, "the first poll keeps its route's class\n{text}");
    assert_eq!(admitted("browse"), 1.0, "the second is in the plugin's class");
}
