use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::fixtures::backend::text;
use crate::fixtures::client::{empty, h1_client};
use crate::fixtures::{closed_port, get, one_registry, raw, send, Backend, Reply, TestGateway};

/// Every error the gateway makes has its status, a Proxy-Status naming the
/// RFC 9209 type, and a small JSON body that repeats both.
fn assert_gateway_error(reply: &Reply, status: u16, kind: &str) {
    assert_eq!(reply.status, status, "body: {}", reply.text());
    assert_eq!(reply.proxy_status_error(), kind);
    assert!(reply.header("proxy-status").starts_with("data-embassy-gateway; error="));
    assert_eq!(reply.header("content-type"), "application/json");
    let body = reply.json();
    assert_eq!(body["status"], status);
    assert_eq!(body["error"], kind);
    assert_eq!(body["request_id"], reply.header("x-request-id"));
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[tokio::test]
async fn a_refused_connection_is_a_502() {
    let gw = TestGateway::start(&one_registry("/", closed_port().await, "")).await;
    assert_gateway_error(&get(&gw.url("/people/1")).await, 502, "connection_refused");
}

#[tokio::test]
async fn a_site_that_closes_without_answering_is_a_502() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            drop(s);
        }
    });
    let gw = TestGateway::start(&one_registry("/", addr, "")).await;
    assert_gateway_error(&get(&gw.url("/people/1")).await, 502, "connection_terminated");
}

#[tokio::test]
async fn a_site_that_never_answers_is_a_504_after_the_response_header_timeout() {
    let home = Backend::start(|_req| async {
        std::future::pending::<()>().await;
        unreachable!()
    })
    .await;
    let limits = "limits = { response_header_timeout = \"200ms\" }";
    let gw = TestGateway::start(&one_registry("/", home.addr, limits)).await;
    assert_gateway_error(&get(&gw.url("/people/1")).await, 504, "http_response_timeout");
}

#[tokio::test]
async fn no_matching_registry_is_a_404() {
    let home = Backend::named("home").await;
    let gw = TestGateway::start(&one_registry("/population/", home.addr, "")).await;
    assert_gateway_error(&get(&gw.url("/elections/2027")).await, 404, "destination_not_found");
}

#[tokio::test]
async fn http11_without_host_is_a_400() {
    let home = Backend::named("home").await;
    let gw = TestGateway::start(&one_registry("/", home.addr, "")).await;
    let answer = raw(gw.addr, b"GET /people HTTP/1.1\r\nConnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer
        .to_ascii_lowercase()
        .contains("proxy-status: data-embassy-gateway; error=http_request_error"));
}

#[tokio::test]
async fn dot_segments_that_could_escape_the_registry_prefix_are_a_400() {
    let mut home = Backend::named("home").await;
    let gw = TestGateway::start(&one_registry("/population/", home.addr, "")).await;
    let answer =
        raw(gw.addr, b"GET /population/../admin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert_eq!(home.seen_count(), 0);
}

#[tokio::test]
async fn a_declared_body_over_the_registry_limit_is_a_413_and_never_forwarded() {
    let mut home = Backend::named("home").await;
    let limits = "limits = { max_request_body = \"1KiB\" }";
    let gw = TestGateway::start(&one_registry("/", home.addr, limits)).await;
    let req = Request::post(gw.url("/declarations")).body(text(vec![b'x'; 2048])).unwrap();
    assert_gateway_error(&send(&h1_client(), req).await, 413, "http_request_error");
    assert_eq!(home.seen_count(), 0);
}

#[tokio::test]
async fn a_streamed_body_that_grows_over_the_limit_is_a_413() {
    let home = Backend::start(|req| async move {
        // A real site reads the body before answering; the gateway cuts it.
        match req.into_body().collect().await {
            Ok(_) => http::Response::new(text("accepted")),
            Err(_) => http::Response::builder().status(400).body(text("cut")).unwrap(),
        }
    })
    .await;
    let limits = "limits = { max_request_body = \"64KiB\" }";
    let gw = TestGateway::start(&one_registry("/", home.addr, limits)).await;
    // No Content-Length: sent chunked, 16 chunks of 8 KiB.
    let chunks = (0..16).map(|_| {
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(http_body::Frame::data(Bytes::from(vec![
            b'y';
            8192
        ])))
    });
    let body = StreamBody::new(futures_util::stream::iter(chunks)).boxed();
    let req = Request::post(gw.url("/declarations")).body(body).unwrap();
    assert_gateway_error(&send(&h1_client(), req).await, 413, "http_request_error");
}

#[tokio::test]
async fn too_many_header_fields_is_a_431() {
    let home = Backend::named("home").await;
    let gw = TestGateway::start(
        &one_registry("/", home.addr, "")
            .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:0\"\nmax_headers = 10"),
    )
    .await;
    let mut req = Request::get(gw.url("/people"));
    for i in 0..20 {
        req = req.header(format!("x-extra-{i}"), "1");
    }
    let reply = send(&h1_client(), req.body(empty()).unwrap()).await;
    assert_gateway_error(&reply, 431, "http_request_error");
}

#[tokio::test]
async fn an_oversized_head_is_a_431() {
    let home = Backend::named("home").await;
    let gw = TestGateway::start(
        &one_registry("/", home.addr, "")
            .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:0\"\nmax_header_bytes = \"2KiB\""),
    )
    .await;
    let req = Request::get(gw.url("/people")).header("cookie", "a".repeat(3000)).body(empty()).unwrap();
    assert_gateway_error(&send(&h1_client(), req).await, 431, "http_request_error");
}

#[tokio::test]
async fn a_request_that_already_passed_this_gateway_is_refused_as_a_loop() {
    let mut home = Backend::named("home").await;
    let gw = TestGateway::start(&one_registry("/", home.addr, "")).await;
    let req =
        Request::get(gw.url("/people")).header("via", "1.1 data-embassy-gateway").body(empty()).unwrap();
    assert_gateway_error(&send(&h1_client(), req).await, 508, "proxy_loop_detected");
    assert_eq!(home.seen_count(), 0);
}

#[tokio::test]
async fn the_total_request_timeout_cuts_a_response_that_trickles_forever() {
    let home = Backend::start(|_req| async {
        let first = futures_util::stream::iter([Ok::<_, Box<dyn std::error::Error + Send + Sync>>(
            http_body::Frame::data(Bytes::from_static(b"{\"acts\": [")),
        )]);
        let never = futures_util::stream::pending();
        let chunks = futures_util::StreamExt::chain(first, never);
        http::Response::new(BodyExt::boxed(StreamBody::new(chunks)))
    })
    .await;
    let limits = "limits = { request_timeout = \"300ms\" }";
    let gw = TestGateway::start(&one_registry("/", home.addr, limits)).await;
    let resp = h1_client().request(Request::get(gw.url("/acts")).body(empty()).unwrap()).await.unwrap();
    assert_eq!(resp.status(), 200);
    let outcome = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect()).await;
    assert!(matches!(outcome, Ok(Err(_))), "the body must end in an error at the deadline");
}
