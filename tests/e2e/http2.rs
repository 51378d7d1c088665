use http::{Request, Version};

use crate::fixtures::client::empty;
use crate::fixtures::{h2_client, one_registry, send, Backend, TestGateway};

#[tokio::test]
async fn an_http2_client_reaches_an_http11_site_with_a_host_header() {
    let mut home = Backend::named("home").await;
    let gw = TestGateway::start(&one_registry("/population/", home.addr, "")).await;
    let req = Request::get(gw.url("/population/people/1")).version(Version::HTTP_2).body(empty()).unwrap();
    let reply = send(&h2_client(), req).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.text(), "home");
    assert_eq!(reply.header("via"), "1.1 data-embassy-gateway");

    let seen = home.next_seen().await;
    assert_eq!(seen.version, Version::HTTP_11);
    assert_eq!(seen.headers["host"], gw.addr.to_string().as_str());
    assert_eq!(seen.headers["via"], "2 data-embassy-gateway");
}

#[tokio::test]
async fn many_concurrent_http2_streams_share_one_connection() {
    let home = Backend::named("home").await;
    let gw = TestGateway::start(&one_registry("/", home.addr, "")).await;
    let client = h2_client();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let client = client.clone();
        let url = gw.url(&format!("/people/{i}"));
        tasks.push(tokio::spawn(async move {
            send(&client, Request::get(url).version(Version::HTTP_2).body(empty()).unwrap()).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_idle_timeout_but_not_while_a_request_is_in_flight() {
    // The site answers only when the test says so.
    let release = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let gate = release.clone();
    let home = Backend::start(move |_req| {
        let gate = gate.clone();
        async move {
            gate.acquire().await.unwrap().forget();
            http::Response::new(crate::fixtures::backend::text("slow but there"))
        }
    })
    .await;
    let toml = one_registry("/", home.addr, "")
        .replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:0\"\nclient_idle_timeout = \"300ms\"");
    let gw = TestGateway::start(&toml).await;
    let h2_connect = || async {
        let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
        let (client, conn) = h2::client::handshake(tcp).await.unwrap();
        (client, tokio::spawn(conn))
    };
    let closed = |conn| async move {
        tokio::time::timeout(std::time::Duration::from_secs(10), conn)
            .await
            .expect("an idle HTTP/2 connection was never closed")
    };

    let (client, busy_conn) = h2_connect().await;
    let mut client = client.ready().await.unwrap();
    let req = http::Request::get(format!("http://{}/slow", gw.addr)).body(()).unwrap();
    let (answer, _) = client.send_request(req, true).unwrap();
    // A second connection, opened later and left idle, closing is the event
    // that the idle timeout has passed for the first one too.
    let idle_from = std::time::Instant::now();
    let (_idle_client, idle_conn) = h2_connect().await;
    let _ = closed(idle_conn).await;
    assert!(idle_from.elapsed() >= std::time::Duration::from_millis(250), "closed before the idle timeout");
    assert!(!busy_conn.is_finished(), "the connection with a request in flight was closed as idle");

    release.add_permits(1);
    let answer = answer.await.expect("the request in flight outlived the idle timeout");
    assert_eq!(answer.status(), 200);
    let mut body = answer.into_body();
    let mut got = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        got.extend_from_slice(&chunk);
    }
    assert_eq!(got, b"slow but there");
    // Now idle, it closes too.
    let _ = closed(busy_conn).await;
}
