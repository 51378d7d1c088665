//! Scenario runs against servers on 127.0.0.1:0, in process. Counts are
//! bounded and asserted exactly where the tool's logic makes them exact;
//! anything that depends on the machine's speed gets a generous tolerance.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use gateway_bench::output::TargetResult;
use gateway_bench::{backend, compare, runner, scenario, svg};
use http_body_util::Full;
use tokio::net::TcpListener;

async fn bench_backend(name: &str) -> (String, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let served = Arc::new(AtomicU64::new(0));
    let options =
        backend::Options { name: Some(http::HeaderValue::from_str(name).unwrap()), crash_path: None };
    tokio::spawn(backend::serve_with(listener, Arc::clone(&served), options, std::future::pending()));
    (url, served)
}

fn scenario_text(load: &str, extra: &str) -> String {
    format!(
        r#"
name = "test"
target = "http://127.0.0.1:9"
site_header = "x-backend-name"
timeout = "5s"
{load}
[[classes]]
name = "read"
weight = 3
paths = ["/population/people/1", "/population/people/2"]
[[classes]]
name = "write"
method = "POST"
paths = ["/tax/declarations"]
body = "{{}}"
{extra}
"#
    )
}

#[tokio::test]
async fn open_loop_ramp_sends_what_the_schedule_holds() {
    // 0 -> 100 req/s over 1 s, then 200 req/s for 1 s: 50 + 200 requests.
    let load = r#"
[load]
mode = "open"
connections = 8
stages = [{ duration = "1s", rate = 0, to = 100 }, { duration = "1s", rate = 200 }]
"#;
    let sc = scenario::parse(&scenario_text(load, "")).unwrap();
    let (url, served) = bench_backend("home").await;
    let outcome = runner::run(&sc, &url, false).await.unwrap();
    let r = TargetResult::new(&sc, "direct", &url, &outcome).unwrap();
    // Every due request is either answered or reported unsent: exact.
    assert_eq!(r.total.requests + r.total.errors + r.unsent, 250);
    assert_eq!(r.total.requests, served.load(Ordering::Relaxed));
    // A loaded 2-core machine may leave some unsent, but not most.
    assert!(r.total.requests >= 200, "only {} of 250 sent", r.total.requests);
    // The ramp shows: the second second carries about four times the first.
    let by_second: Vec<u32> = r.timeline.iter().map(|s| s.completed).collect();
    assert!(2 * by_second[0] < by_second[1], "{by_second:?}");
    // The 3:1 mix holds per class; bench-backend refuses POST with 405.
    let (read, write) = (&r.classes[0], &r.classes[1]);
    assert_eq!(read.status.s2xx, read.requests);
    assert_eq!(write.status.s4xx, write.requests);
    assert!(read.requests > 2 * write.requests, "{} vs {}", read.requests, write.requests);
    assert_eq!(r.timeline[0].by_site[0].0, "home");
}

#[tokio::test]
async fn closed_loop_side_by_side_compares_with_the_baseline() {
    let load = r#"load = { mode = "closed", connections = 2, duration = "300ms" }"#;
    let mut sc = scenario::parse(&scenario_text(load, "")).unwrap();
    let (a, _) = bench_backend("a").await;
    let (b, _) = bench_backend("b").await;
    scenario::override_targets(&mut sc, &[format!("direct={a}"), format!("other={b}")]).unwrap();
    let mut results = Vec::new();
    for (name, url) in &sc.targets {
        let outcome = runner::run(&sc, url, false).await.unwrap();
        results.push(TargetResult::new(&sc, name, url, &outcome).unwrap());
    }
    assert!(results.iter().all(|r| r.total.requests > 0 && r.total.errors == 0));
    let (table, rows) = compare::compare(&results, None);
    assert_eq!(rows[0].rps_ratio, Some(1.0));
    assert!(rows[1].rps_ratio.unwrap() > 0.0);
    assert!(table.contains("ratios to \"direct\""), "{table}");
}

#[tokio::test]
async fn h2_scenario_counts_every_request() {
    let load = r#"load = { mode = "closed", connections = 2, duration = "200ms" }"#;
    let text = scenario_text(load, "").replace("timeout = \"5s\"", "timeout = \"5s\"\nh2 = true");
    let sc = scenario::parse(&text).unwrap();
    assert!(sc.h2);
    let (url, served) = bench_backend("home").await;
    let outcome = runner::run(&sc, &url, false).await.unwrap();
    let r = TargetResult::new(&sc, "direct", &url, &outcome).unwrap();
    assert!(r.total.requests > 0);
    assert_eq!(r.total.requests, served.load(Ordering::Relaxed));
    assert_eq!(r.total.errors, 0);
}

/// A site pair behind one port: answers as "home" until `POST /down`, then
/// fails exactly `failures` requests with 503 and answers as "embassy".
async fn failing_over_server(failures: u64) -> String {
    use hyper::server::conn::http1;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let down = Arc::new(AtomicU64::new(0));
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let down = Arc::clone(&down);
            let service = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let down = Arc::clone(&down);
                async move {
                    let mut resp = http::Response::new(Full::new(Bytes::from_static(b"{}")));
                    if req.uri().path() == "/down" {
                        down.store(1, Ordering::SeqCst);
                        return Ok::<_, Infallible>(resp);
                    }
                    let state = down.load(Ordering::SeqCst);
                    if state == 0 {
                        resp.headers_mut().insert("x-backend-name", "home".parse().unwrap());
                    } else if state <= failures {
                        down.fetch_add(1, Ordering::SeqCst);
                        *resp.status_mut() = http::StatusCode::SERVICE_UNAVAILABLE;
                    } else {
                        resp.headers_mut().insert("x-backend-name", "embassy".parse().unwrap());
                    }
                    Ok(resp)
                }
            });
            tokio::spawn(
                http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service),
            );
        }
    });
    url
}

#[tokio::test]
async fn failover_report_counts_failures_and_time_to_the_other_site() {
    let url = failing_over_server(5).await;
    let load = r#"load = { mode = "open", connections = 4, stages = [{ duration = "1s", rate = 200 }] }"#;
    let extra = format!(
        r#"
[[events]]
name = "home-down"
at = "300ms"
method = "POST"
url = "{url}/down"
[failover]
home_site = "home"
down_event = "home-down"
"#
    );
    let sc = scenario::parse(&scenario_text(load, &extra)).unwrap();
    let outcome = runner::run(&sc, &url, false).await.unwrap();
    let r = TargetResult::new(&sc, "gateway", &url, &outcome).unwrap();
    assert_eq!(r.events[0].outcome, "200");
    let f = r.failover.as_ref().expect("the down event was sent");
    assert_eq!(f.failed_before_down, 0);
    assert_eq!(f.failed_until_other_site, 5);
    assert_eq!(f.failed_while_down, 5);
    // Five requests at 200/s take ~25 ms; allow a slow machine 500 ms.
    let ms = f.first_other_site_ms.expect("embassy answered");
    assert!(ms <= 500, "{ms} ms to the embassy");
    assert!(r.render_table().contains("failed requests until then                5"), "{}", r.render_table());
    check_outputs(&r);
}

/// The CSV, JSON and SVG forms carry the same figures.
fn check_outputs(r: &TargetResult) {
    let csv = r.classes_csv();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 1 + r.classes.len() + 1, "{csv}");
    assert!(lines[0].starts_with("target,class,requests,rps,p50_us"));
    assert!(lines[3].starts_with(&format!("gateway,total,{},", r.total.requests)), "{csv}");
    let timeline = r.timeline_csv();
    assert!(
        timeline.starts_with(
            "second,completed,failed,p50_us,p99_us,max_us,class:read,class:write,site:home,site:embassy\n"
        ),
        "{timeline}"
    );
    assert_eq!(timeline.lines().count(), 1 + r.timeline.len());
    let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(json["total"]["requests"], r.total.requests);
    assert_eq!(json["failover"]["failed_until_other_site"], 5);
    assert_eq!(json["classes"][1]["class"], "write");
    let plot = svg::render(r);
    assert!(plot.starts_with("<svg") && plot.trim_end().ends_with("</svg>"));
    // completed, failed and planned rate; p50 and p99.
    assert_eq!(plot.matches("<polyline").count(), 5);
    assert!(plot.contains(">home-down</text>"));
}

#[test]
fn shipped_scenarios_parse() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        // The folder also holds the scenarios' write-ups (tax-day.md).
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        scenario::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        seen += 1;
    }
    assert!(seen >= 3, "{seen} scenarios in {dir}");
}
