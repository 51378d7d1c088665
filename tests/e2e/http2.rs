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
