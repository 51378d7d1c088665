use http::Request;
use http_body_util::BodyExt;

use crate::fixtures::backend::text;
use crate::fixtures::client::{empty, h1_client};
use crate::fixtures::{one_registry, send, Backend, TestGateway};

#[tokio::test]
async fn hop_by_hop_request_headers_never_reach_the_site() {
    let mut home = Backend::named("home").await;
    let gw = TestGateway::start(&one_registry("/", home.addr, "")).await;
    let req = Request::get(gw.url("/people"))
        .header("connection", "x-session-secret")
        .header("x-session-secret", "s3cr3t")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("trailer", "x-checksum")
        .header("upgrade", "websocket")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("proxy-connection", "keep-alive")
        .header("accept", "application/json")
        .body(empty())
        .unwrap();
    assert_eq!(send(&h1_client(), req).await.status, 200);

    let seen = home.next_seen().await;
    assert_eq!(seen.method, http::Method::GET);
    for gone in [
        "x-session-secret",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert!(!seen.headers.contains_key(gone), "{gone} reached the site: {:?}", seen.headers);
    }
    assert_eq!(seen.headers["accept"], "application/json");
    assert_eq!(seen.headers["via"], "1.1 data-embassy-gateway");
}

#[tokio::test]
async fn hop_by_hop_response_headers_never_reach_the_client() {
    let home = Backend::start(|_req| async {
        http::Response::builder()
            .header("connection", "x-internal")
            .header("x-internal", "site detail")
            .header("keep-alive", "timeout=99")
            .header("proxy-authenticate", "Basic")
            .header("via", "1.1 home-lb")
            .header("x-registry", "population")
            .body(text("{}"))
            .unwrap()
    })
    .await;
    let gw = TestGateway::start(&one_registry("/", home.addr, "")).await;
    let reply = crate::fixtures::get(&gw.url("/people")).await;
    assert!(!reply.headers.contains_key("x-internal"));
    assert!(!reply.headers.contains_key("proxy-authenticate"));
    assert_ne!(reply.headers.get("keep-alive").map(|v| v.as_bytes()), Some(&b"timeout=99"[..]));
    assert_eq!(reply.header("x-registry"), "population");
    let via: Vec<_> = reply.headers.get_all("via").iter().map(|v| v.to_str().unwrap()).collect();
    assert_eq!(via, ["1.1 home-lb", "1.1 data-embassy-gateway"]);
}

#[tokio::test]
async fn forwarding_headers_from_an_untrusted_client_are_replaced() {
    let mut home = Backend::named("home").await;
    let gw = TestGateway::start(&one_registry("/", home.addr, "")).await;
    let req = Request::get(gw.url("/people"))
        .header("x-forwarded-for", "203.0.113.66")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "for=203.0.113.66")
        .body(empty())
        .unwrap();
    send(&h1_client(), req).await;
    let seen = home.next_seen().await;
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["forwarded"], "for=127.0.0.1;proto=http");
    assert!(!seen.headers.contains_key("x-forwarded-host"));
}

#[tokio::test]
async fn forwarding_headers_from_a_trusted_proxy_are_extended() {
    let mut home = Backend::named("home").await;
    let config = one_registry("/", home.addr, "")
        .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:0\"\ntrusted_proxies = [\"127.0.0.0/8\"]");
    let gw = TestGateway::start(&config).await;
    let req = Request::get(gw.url("/people"))
        .header("x-forwarded-for", "198.51.100.7")
        .header("x-forwarded-proto", "https")
        .header("forwarded", "for=198.51.100.7;proto=https")
        .body(empty())
        .unwrap();
    send(&h1_client(), req).await;
    let seen = home.next_seen().await;
    assert_eq!(seen.headers["x-forwarded-for"], "198.51.100.7, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert_eq!(seen.headers["forwarded"], "for=198.51.100.7;proto=https, for=127.0.0.1;proto=http");
}

#[tokio::test]
async fn a_well_formed_request_id_is_kept_both_ways() {
    let mut home = Backend::named("home").await;
    let gw = TestGateway::start(&one_registry("/", home.addr, "")).await;
    let req = Request::get(gw.url("/people")).header("x-request-id", "tax-day-42").body(empty()).unwrap();
    let reply = send(&h1_client(), req).await;
    assert_eq!(reply.header("x-request-id"), "tax-day-42");
    assert_eq!(home.next_seen().await.headers["x-request-id"], "tax-day-42");
}

#[tokio::test]
async fn a_missing_or_malformed_request_id_is_replaced_by_one_the_site_also_sees() {
    let mut home = Backend::named("home").await;
    let gw = TestGateway::start(&one_registry("/", home.addr, "")).await;
    let req = Request::get(gw.url("/people"))
        .header("x-request-id", "<script>alert(1)</script>")
        .body(empty())
        .unwrap();
    let reply = send(&h1_client(), req).await;
    let id = reply.header("x-request-id").to_string();
    assert_eq!(id.len(), 36, "expected a UUID, got {id}");
    assert_eq!(home.next_seen().await.headers["x-request-id"], id.as_str());

    let again = crate::fixtures::get(&gw.url("/people")).await;
    assert_ne!(again.header("x-request-id"), id, "ids must differ per request");
}

#[tokio::test]
async fn request_bodies_arrive_intact() {
    let home = Backend::start(|req| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        http::Response::new(text(body))
    })
    .await;
    let gw = TestGateway::start(&one_registry("/", home.addr, "")).await;
    let payload = serde_json::json!({"taxpayer_id": "38001085718", "income_eur": 41200}).to_string();
    let req = Request::post(gw.url("/declarations"))
        .header("content-type", "application/json")
        .body(text(payload.clone()))
        .unwrap();
    assert_eq!(send(&h1_client(), req).await.text(), payload);
}
