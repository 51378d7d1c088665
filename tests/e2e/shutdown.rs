use http::Request;
use tokio::sync::{mpsc, oneshot};

use crate::fixtures::backend::text;
use crate::fixtures::client::{empty, h1_client};
use crate::fixtures::{one_registry, Backend, TestGateway};

#[tokio::test]
async fn graceful_shutdown_finishes_a_request_in_flight_and_refuses_new_connections() {
    // The site holds its answer until the test releases it.
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel::<oneshot::Sender<()>>();
    let home = Backend::start(move |_req| {
        let arrived_tx = arrived_tx.clone();
        async move {
            let (release_tx, release) = oneshot::channel();
            arrived_tx.send(release_tx).unwrap();
            let _ = release.await;
            http::Response::new(text("finished"))
        }
    })
    .await;
    let mut gw = TestGateway::start(&one_registry("/", home.addr, "")).await;

    let url = gw.url("/people/1");
    let in_flight = tokio::spawn(async move {
        let resp = h1_client().request(Request::get(url).body(empty()).unwrap()).await.unwrap();
        let status = resp.status();
        let body = http_body_util::BodyExt::collect(resp.into_body()).await.unwrap().to_bytes();
        (status, body)
    });
    let release = arrived.recv().await.unwrap();

    gw.begin_shutdown();
    // Once the listener is gone, new connections are refused.
    let mut refused = false;
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(gw.addr).await.is_err() {
            refused = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(refused, "the gateway kept accepting after shutdown began");

    release.send(()).unwrap();
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(&body[..], b"finished");
    gw.finished().await;
}
