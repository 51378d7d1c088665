//! Edge hardening: smuggling shapes, head limits, slow heads, connection
//! limits, HTTP/2 rapid reset.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::fixtures::{one_registry, raw, Backend, TestGateway};

/// Sends `probe` and reads until the gateway closes; a gateway that kept
/// the connection open fails the test after 10s instead of hanging it.
async fn probe(addr: SocketAddr, probe: &[u8]) -> String {
    tokio::time::timeout(Duration::from_secs(10), raw(addr, probe))
        .await
        .unwrap_or_else(|_| panic!("connection left open after {:?}", String::from_utf8_lossy(probe)))
}

/// Each shape a front end and a back end could frame differently. None may
/// reach the site, each gets a 400, and the gateway closes the connection
/// (no `Connection: close` is sent, so closing is the gateway's decision).
#[tokio::test]
async fn every_smuggling_probe_is_a_400_that_closes_and_reaches_no_site() {
    let mut home = Backend::named("home").await;
    let gw = TestGateway::start(&one_registry("/", home.addr, "")).await;
    let probes: &[(&str, &[u8])] = &[
        (
            "Content-Length then Transfer-Encoding",
            b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
        ),
        (
            "Transfer-Encoding then Content-Length",
            b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n",
        ),
        (
            "differing duplicate Content-Length",
            b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        ),
        (
            "Content-Length list that disagrees",
            b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabcd",
        ),
        (
            "signed Content-Length",
            b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\nabc",
        ),
        (
            "obs-fold",
            b"GET /a HTTP/1.1\r\nHost: a\r\nX-Folded: one\r\n two\r\n\r\n",
        ),
        (
            "space before the colon",
            b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "invalid header name",
            b"GET /a HTTP/1.1\r\nHost: a\r\nX(bad): 1\r\n\r\n",
        ),
        (
            "control character in a header value",
            b"GET /a HTTP/1.1\r\nHost: a\r\nX-Bad: a\x01b\r\n\r\n",
        ),
        (
            "bare CR in a header value",
            b"GET /a HTTP/1.1\r\nHost: a\r\nX-Bad: a\rb\r\n\r\n",
        ),
        (
            "chunked not the last coding",
            b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        ),
        (
            "unknown transfer coding",
            b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "Transfer-Encoding on HTTP/1.0",
            b"POST /a HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "chunk size that is not hex",
            b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "chunk size that overflows",
            b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        ),
        (
            "negative chunk size",
            b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
        ),
    ];
    for (name, bytes) in probes {
        let answer = probe(gw.addr, bytes).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{name}: {answer}");
        assert_eq!(answer.matches("HTTP/1.1 ").count(), 1, "{name}: more than one response: {answer}");
    }
    // A well-formed request afterwards reaches the site: it is up, and the
    // only request it ever saw is this one.
    let ok = probe(gw.addr, b"GET /ok HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert_eq!(home.next_seen().await.uri.path(), "/ok");
    assert_eq!(home.seen_count(), 0);
}

#[tokio::test]
async fn the_gateways_own_400s_carry_proxy_status_and_close_the_connection() {
    let mut home = Backend::named("home").await;
    let gw = TestGateway::start(&one_registry("/", home.addr, "")).await;
    let answer = probe(
        gw.addr,
        b"POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    )
    .await
    .to_ascii_lowercase();
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(answer.contains("error=http_request_error"), "{answer}");
    assert!(answer.contains("request smuggling"), "{answer}");
    assert_eq!(home.seen_count(), 0);
}

#[tokio::test]
async fn a_well_formed_chunked_request_still_streams_to_the_site() {
    let mut home = Backend::named("home").await;
    let gw = TestGateway::start(&one_registry("/", home.addr, "")).await;
    let answer = probe(
        gw.addr,
        b"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(home.next_seen().await.uri.path(), "/a");
}

#[tokio::test]
async fn a_head_arriving_too_slowly_is_cut_off() {
    let home = Backend::named("home").await;
    let server = "listen = \"127.0.0.1:0\"\nclient_idle_timeout = \"200ms\"";
    let gw =
        TestGateway::start(&one_registry("/", home.addr, "").replace("listen = \"127.0.0.1:0\"", server))
            .await;
    let mut tcp = TcpStream::connect(gw.addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ").await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest))
        .await
        .expect("a slow head held the connection for 10s")
        .ok();
    let text = String::from_utf8_lossy(&rest);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
}

/// Holds a served keep-alive connection open (so it is surely admitted).
async fn served_connection(addr: SocketAddr) -> TcpStream {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tcp.read(&mut buf).await.unwrap();
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
    tcp
}

#[tokio::test]
async fn connections_over_the_per_client_limit_are_closed_unserved() {
    let home = Backend::named("home").await;
    let server = "listen = \"127.0.0.1:0\"\nmax_connections_per_client = 2";
    let gw =
        TestGateway::start(&one_registry("/", home.addr, "").replace("listen = \"127.0.0.1:0\"", server))
            .await;
    let first = served_connection(gw.addr).await;
    let _second = served_connection(gw.addr).await;
    let third = probe(gw.addr, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
    assert_eq!(third, "", "a third connection was served");

    // Once one closes, its place is free again (bounded wait for the
    // gateway to notice the close).
    drop(first);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let again = probe(gw.addr, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
        if again.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the freed place never came back");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn connections_over_the_overall_limit_are_closed_unserved() {
    let home = Backend::named("home").await;
    let server = "listen = \"127.0.0.1:0\"\nmax_connections = 1\nmax_connections_per_client = 1";
    let gw =
        TestGateway::start(&one_registry("/", home.addr, "").replace("listen = \"127.0.0.1:0\"", server))
            .await;
    let _only = served_connection(gw.addr).await;
    let second = probe(gw.addr, b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
    assert_eq!(second, "");
}

/// CVE-2023-44487: open streams and cancel them at once, over and over.
/// The gateway must end such a connection (GOAWAY) long before the client
/// has sent its 2000 resets, and the site must see only a fraction of them.
#[tokio::test]
async fn an_http2_rapid_reset_flood_ends_the_connection() {
    let mut home = Backend::start(|_req| async {
        std::future::pending::<()>().await;
        unreachable!()
    })
    .await;
    let gw = TestGateway::start(&one_registry("/", home.addr, "")).await;
    let tcp = TcpStream::connect(gw.addr).await.unwrap();
    let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut sent = 0;
    let flood = async {
        // Batches of 64: their HEADERS go out together, then their resets,
        // so the gateway reads many cancelled streams at once.
        for _ in 0..2000 / 64 {
            let mut batch = Vec::new();
            for _ in 0..64 {
                client = client.ready().await?;
                let req = http::Request::get(format!("http://{}/x", gw.addr)).body(()).unwrap();
                batch.push(client.send_request(req, true)?.0);
            }
            tokio::task::yield_now().await;
            // Dropping the response futures resets the streams (CANCEL).
            sent += batch.len();
            drop(batch);
            tokio::task::yield_now().await;
        }
        Ok::<(), h2::Error>(())
    };
    let flood = tokio::time::timeout(Duration::from_secs(20), flood).await.expect("the flood ran for 20s");
    let ended = tokio::time::timeout(Duration::from_secs(10), conn)
        .await
        .expect("the gateway kept the flooding connection open")
        .unwrap();
    let goaway = flood.err().or(ended.err()).expect("the connection ended cleanly");
    assert!(goaway.is_go_away() || goaway.is_io(), "{goaway:?}");
    assert!(sent < 1984, "all {sent} resets were taken");
    assert!(home.seen_count() < 500);
}

/// With too few file descriptors the accept loop must wait, not spin, and
/// serve again once connections close.
#[test]
fn running_out_of_file_descriptors_backs_off_instead_of_spinning() {
    // A port nothing listens on: the gateway answers 502 without waiting.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let config = one_registry("/", closed, "").replace("[server]", "[server]\nworkers = 1");
    let gw = crate::fixtures::process::GatewayProcess::start_with_fd_limit(&config, Some(40));
    // More connections than descriptors: the kernel queues the rest.
    let held: Vec<std::net::TcpStream> =
        (0..60).map(|_| std::net::TcpStream::connect(gw.addr).unwrap()).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let line = gw.log.recv_timeout(left).expect("no out-of-resources log line");
        if line.contains("out of resources") {
            break;
        }
    }
    let before = gw.cpu_ticks();
    std::thread::sleep(Duration::from_secs(1)); // the measurement window
    let used = gw.cpu_ticks() - before;
    assert!(used < 30, "{used} ticks of CPU in 1s while out of descriptors");

    drop(held);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut tcp = std::net::TcpStream::connect(gw.addr).unwrap();
        use std::io::{Read, Write};
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        let _ = tcp.read_to_string(&mut answer);
        // A 502 (the site refuses) proves the gateway accepts and serves.
        if answer.starts_with("HTTP/1.1 502") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never served again: {answer:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
