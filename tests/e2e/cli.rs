use std::io::Write;

use http::Request;
use tokio::sync::{mpsc, oneshot};

use crate::fixtures::backend::text;
use crate::fixtures::client::{empty, h1_client};
use crate::fixtures::process::{check, GatewayProcess};
use crate::fixtures::{one_registry, Backend};

#[test]
fn every_shipped_config_passes_check() {
    // config/plugins.toml names the example plugins: build them first.
    crate::fixtures::plugins::wasm("noop");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let (code, out, err) = check(&path);
            assert_eq!(code, 0, "{} failed check:\n{out}{err}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 2, "expected example configs in {}", dir.display());
}

#[test]
fn check_exits_1_and_lists_every_error() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(
        file,
        "[server]\nlisten = \"127.0.0.1:99999\"\n[registries.population]\nroutes = [{{ prefix = \"/p\" }}]\nsites.home.backends = [\"10.0.0.1:99999\"]\n"
    )
    .unwrap();
    let (code, _out, err) = check(file.path());
    assert_eq!(code, 1);
    assert!(err.contains("2 error(s)"), "{err}");
    assert!(
        err.contains("server.listen: invalid listen address \"127.0.0.1:99999\": port out of range"),
        "{err}"
    );
    assert!(
        err.contains("registries.population.sites.home.backends[0]: invalid address \"10.0.0.1:99999\": port out of range"),
        "{err}"
    );
}

#[test]
fn check_reports_an_unreadable_file() {
    let (code, _, err) = check(std::path::Path::new("/nonexistent/gateway.toml"));
    assert_eq!(code, 1);
    assert!(err.contains("cannot read /nonexistent/gateway.toml"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_request_in_flight_finish_then_exits_cleanly() {
    let (arrived_tx, mut arrived) = mpsc::unbounded_channel::<oneshot::Sender<()>>();
    let home = Backend::start(move |_req| {
        let arrived_tx = arrived_tx.clone();
        async move {
            let (release_tx, release) = oneshot::channel();
            arrived_tx.send(release_tx).unwrap();
            let _ = release.await;
            http::Response::new(text("filed"))
        }
    })
    .await;
    let gw = GatewayProcess::start(&one_registry("/", home.addr, ""));
    let url = format!("http://{}/declarations/1", gw.addr);
    let in_flight = tokio::spawn(async move {
        let resp = h1_client().request(Request::get(url).body(empty()).unwrap()).await.unwrap();
        resp.status()
    });
    let release = arrived.recv().await.unwrap();
    gw.signal("TERM");
    // The gateway logs that it is shutting down before the request ends.
    let log = &gw.log;
    let saw_shutdown =
        tokio::task::block_in_place(|| log.iter().take(20).any(|l| l.contains("shutting down")));
    assert!(saw_shutdown);
    release.send(()).unwrap();
    assert_eq!(in_flight.await.unwrap(), 200);
    let status = tokio::task::block_in_place(|| gw.wait());
    assert!(status.success(), "exit status {status}");
}
