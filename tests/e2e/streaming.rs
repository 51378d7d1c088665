use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, StreamBody};
use tokio::sync::mpsc;

use crate::fixtures::backend::TestBody;
use crate::fixtures::client::{empty, h1_client};
use crate::fixtures::process::GatewayProcess;
use crate::fixtures::{one_registry, Backend, TestGateway};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A body of `total` bytes made of one shared 1 MiB chunk, so the test
/// itself holds almost nothing.
fn big_body(total: usize) -> TestBody {
    let chunk = Bytes::from(vec![b'z'; 1 << 20]);
    let frames =
        (0..total / chunk.len()).map(move |_| Ok::<_, BoxError>(http_body::Frame::data(chunk.clone())));
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

/// Counts body bytes as they stream, holding none of them.
async fn count_bytes(body: hyper::body::Incoming) -> u64 {
    let mut body = body;
    let mut n = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            n += data.len() as u64;
        }
    }
    n
}

#[tokio::test]
async fn a_slow_sites_chunks_reach_the_client_as_they_come() {
    // The site sends chunk 0 at once and each later chunk only when the test
    // says so; the test says so only after the previous chunk reached it.
    let (next_tx, next_rx) = mpsc::unbounded_channel::<()>();
    let next_rx = std::sync::Arc::new(std::sync::Mutex::new(Some(next_rx)));
    let home = Backend::start(move |_req| {
        let rx = next_rx.lock().unwrap().take().expect("one request only");
        async move {
            let chunks = futures_util::stream::unfold((0usize, rx), |(i, mut rx)| async move {
                if i == 3 || (i > 0 && rx.recv().await.is_none()) {
                    return None;
                }
                let frame = http_body::Frame::data(Bytes::from(format!("chunk-{i};")));
                Some((Ok::<_, BoxError>(frame), (i + 1, rx)))
            });
            http::Response::new(StreamBody::new(chunks).boxed())
        }
    })
    .await;
    let gw = TestGateway::start(&one_registry("/", home.addr, "")).await;
    let resp = h1_client().request(Request::get(gw.url("/acts")).body(empty()).unwrap()).await.unwrap();
    let mut body = resp.into_body();
    for i in 0..3 {
        let frame = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("a chunk was held back while the site waited")
            .unwrap()
            .unwrap();
        assert_eq!(frame.into_data().unwrap(), format!("chunk-{i};").as_bytes());
        if i < 2 {
            next_tx.send(()).unwrap();
        }
    }
    assert!(body.frame().await.is_none());
}

#[tokio::test]
async fn sixty_four_mib_pass_both_ways_with_bounded_gateway_memory() {
    const TOTAL: usize = 64 << 20;
    let home = Backend::start(|req| async move {
        let received = count_bytes(req.into_body()).await;
        let mut resp = http::Response::new(big_body(TOTAL));
        resp.headers_mut().insert("x-received", received.to_string().parse().unwrap());
        resp
    })
    .await;
    let config = one_registry("/", home.addr, "limits = { max_request_body = \"100MiB\" }");
    let gw = GatewayProcess::start(&config);
    let before = gw.peak_rss();

    let url = format!("http://{}/upload", gw.addr);
    let resp = h1_client().request(Request::post(url).body(big_body(TOTAL)).unwrap()).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-received"], TOTAL.to_string().as_str());
    assert_eq!(count_bytes(resp.into_body()).await, TOTAL as u64);

    let peak = gw.peak_rss();
    let grew = peak.saturating_sub(before);
    assert!(
        grew < 24 << 20,
        "gateway peak memory grew by {} MiB moving 2 x 64 MiB (peak {} MiB): bodies are being buffered",
        grew >> 20,
        peak >> 20
    );
}
