//! Misbehaving plugins are contained: each fails only its own request, by
//! its fail policy, while good requests beside it keep succeeding. Also:
//! capability denial, and no data surviving from one request to the next.

use crate::fixtures::load::SteadyLoad;

use crate::fixtures::client::{empty, h1_client};
use crate::fixtures::plugins::entry;
use crate::fixtures::{get, send, Backend, Reply, TestGateway};

fn config(home: std::net::SocketAddr, misbehave: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
[registries.population]
routes = [{{ prefix = "/population/" }}]
sites.home.backends = ["{home}"]
{}
[registries.open]
routes = [{{ prefix = "/open/" }}]
sites.home.backends = ["{home}"]
{}"#,
        entry("population", "misbehave", misbehave),
        entry("open", "noop", "fail = \"closed\"\ntimeout = \"2s\""),
    )
}

async fn with_mode(gw: &TestGateway, mode: &str, secret: &str) -> Reply {
    let req = http::Request::get(gw.url("/population/x"))
        .header("x-mode", mode)
        .header("x-secret", secret)
        .body(empty())
        .unwrap();
    send(&h1_client(), req).await
}

const CLOSED: &str = r#"capabilities = ["config"]
fail = "closed"
timeout = "200ms"
max_memory = "8MiB"
max_body = "64KiB"
config = { bytes = 200000 }"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_misbehaving_plugin_fails_only_its_own_request_while_good_requests_succeed() {
    let home = Backend::named("home").await;
    let gw = TestGateway::start(&config(home.addr, CLOSED)).await;

    // Good traffic on another registry (with its own plugin) all along.
    let good = SteadyLoad::start(gw.url("/open/x"), 2, |reply| reply.status == 200);

    let cases = [
        ("loop", "timeout", "deadline"),
        ("memory", "memory", "memory limit"),
        ("trap", "trap", "trapped"),
        ("panic", "trap", "trapped"),
        ("recursion", "trap", "trapped"),
        ("oversize", "bad_output", "invalid result"),
    ];
    for (mode, outcome, says) in cases {
        let reply = with_mode(&gw, mode, "").await;
        assert_eq!(reply.status, 502, "{mode}: {}", reply.text());
        assert_eq!(reply.proxy_status_error(), "proxy_internal_error", "{mode}");
        let message = reply.json()["message"].as_str().unwrap().to_string();
        assert!(message.contains("plugin misbehave failed in on_request"), "{mode}: {message}");
        assert!(message.contains(says), "{mode}: {message}");
        let counted = gw
            .gateway
            .metrics()
            .plugins
            .calls
            .with_label_values(&["population", "misbehave", "on_request", outcome])
            .get();
        assert!(counted >= 1, "{mode}: outcome {outcome} not counted");
    }
    // And the gateway still serves the plugin's registry afterwards.
    let again = with_mode(&gw, "remember", "").await;
    assert_eq!(again.status, 200);

    let (ok, bad) = good.stop().await;
    println!("good requests during the misbehaviour: {ok} ok, {bad} failed");
    assert!(ok > 0);
    assert_eq!(bad, 0);
}

#[tokio::test]
async fn a_failing_plugin_with_fail_open_is_skipped_and_the_request_goes_on() {
    let home = Backend::named("home").await;
    let gw = TestGateway::start(&config(home.addr, "fail = \"open\"\ntimeout = \"200ms\"")).await;
    for mode in ["trap", "loop"] {
        let reply = with_mode(&gw, mode, "").await;
        assert_eq!((reply.status.as_u16(), reply.text()), (200, "home".to_string()), "{mode}");
    }
}

#[tokio::test]
async fn an_ungranted_capability_is_an_error_the_plugin_sees_not_a_trap() {
    let home = Backend::named("home").await;
    let gw = TestGateway::start(&config(home.addr, CLOSED)).await;
    let reply = with_mode(&gw, "ungranted", "").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let got = reply.json();
    for cap in ["log", "metrics", "kv", "clock"] {
        let answer = got[cap].as_str().unwrap();
        assert!(answer.contains("Denied("), "{cap}: {answer}");
        assert!(answer.contains(&format!("`{cap}` is not granted")), "{cap}: {answer}");
    }
    assert_eq!(got["config"], "ok");
}

#[tokio::test]
async fn two_consecutive_requests_cannot_see_each_other_through_plugin_memory() {
    let home = Backend::named("home").await;
    let gw = TestGateway::start(&config(home.addr, CLOSED)).await;
    let first = with_mode(&gw, "remember", "48001080271").await;
    let second = with_mode(&gw, "remember", "37605030299").await;
    assert_eq!(first.json()["previous"], serde_json::Value::Null);
    assert_eq!(second.json()["previous"], serde_json::Value::Null, "the first citizen's data survived");
}

#[tokio::test]
async fn a_shared_instance_does_keep_state_which_is_why_it_is_only_for_public_data() {
    let home = Backend::named("home").await;
    let gw = TestGateway::start(&config(home.addr, &format!("{CLOSED}\ninstance = \"shared\""))).await;
    let _ = with_mode(&gw, "remember", "first").await;
    let second = with_mode(&gw, "remember", "second").await;
    assert_eq!(second.json()["previous"], "first");
    // Sanity: the registry without the misbehaving plugin is unaffected.
    assert_eq!(get(&gw.url("/open/y")).await.text(), "home");
}

async fn post(gw: &TestGateway, bytes: usize) -> Reply {
    let req = http::Request::post(gw.url("/population/x"))
        .header("x-mode", "body")
        .body(crate::fixtures::backend::text(vec![b'a'; bytes]))
        .unwrap();
    send(&h1_client(), req).await
}

#[tokio::test]
async fn a_declared_request_body_is_buffered_up_to_the_cap_and_over_it_refused_or_skipped() {
    let home = Backend::named("home").await;
    let reject = TestGateway::start(&config(home.addr, &format!("{CLOSED}\nover_cap = \"reject\""))).await;
    assert_eq!(post(&reject, 10_000).await.json()["bytes"], 10_000);
    let refused = post(&reject, 100_000).await;
    assert_eq!(refused.status, 413, "{}", refused.text());
    assert!(refused.text().contains("plugin misbehave's limit of 65536 bytes"), "{}", refused.text());

    // over_cap = "skip": the plugin does not run, the body streams on whole.
    let skip = TestGateway::start(&config(home.addr, &format!("{CLOSED}\nover_cap = \"skip\""))).await;
    assert_eq!(post(&skip, 100_000).await.text(), "home");
}
