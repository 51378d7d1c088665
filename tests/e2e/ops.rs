//! Operations: metrics after real requests, configuration reload (good,
//! bad, under load), access-log fields and redaction.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::{Method, Request};

use crate::continuity::TOKEN;
use crate::fixtures::client::{empty, h1_client};
use crate::fixtures::process::GatewayProcess;
use crate::fixtures::{closed_port, get, send, Backend, Reply, TestGateway};

fn config(home: std::net::SocketAddr, prefix: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"
[registries.population]
routes = [{{ prefix = "{prefix}" }}]
sites.home.backends = ["{home}"]
{extra}
"#
    )
}

async fn admin(gw: &TestGateway, method: Method, path: &str) -> Reply {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", gw.admin.unwrap()))
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(empty())
        .unwrap();
    send(&h1_client(), req).await
}

/// The value of one sample line in Prometheus text, e.g.
/// `gateway_requests_total{class="2xx",...}`; 0 when absent.
pub(crate) fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter(|l| labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[tokio::test]
async fn metrics_count_real_requests_by_registry_site_method_and_class() {
    let home = Backend::named("home").await;
    let gw = TestGateway::start(&config(home.addr, "/population/", "")).await;
    for _ in 0..3 {
        get(&gw.url("/population/people/1")).await;
    }
    get(&gw.url("/nowhere")).await;
    let text = admin(&gw, Method::GET, "/metrics").await.text();

    let ok = [("registry", "population"), ("site", "home"), ("method", "GET"), ("class", "2xx")];
    assert_eq!(sample(&text, "gateway_requests_total", &ok), 3.0, "{text}");
    assert_eq!(sample(&text, "gateway_requests_total", &[("registry", "none"), ("class", "4xx")]), 1.0);
    assert_eq!(
        sample(
            &text,
            "gateway_gateway_errors_total",
            &[("fault", "client"), ("kind", "destination_not_found")]
        ),
        1.0
    );
    assert_eq!(sample(&text, "gateway_request_duration_seconds_count", &[("registry", "population")]), 3.0);
    assert_eq!(sample(&text, "gateway_backend_healthy", &[("site", "home")]), 1.0);
    assert_eq!(
        sample(&text, "gateway_continuity_state", &[("registry", "population"), ("state", "normal")]),
        1.0
    );
    assert_eq!(sample(&text, "gateway_build_info", &[]), 1.0);
}

#[tokio::test]
async fn metrics_count_upstream_errors_and_retries() {
    let embassy = Backend::named("embassy").await;
    let extra = format!("sites.embassy-lu.backends = [\"{}\"]", embassy.addr);
    let gw = TestGateway::start(&config(closed_port().await, "/", &extra)).await;
    let reply = get(&gw.url("/people/1")).await;
    assert_eq!(reply.header("x-served-by"), "embassy-lu");
    let text = admin(&gw, Method::GET, "/metrics").await.text();
    assert_eq!(sample(&text, "gateway_retries_total", &[("registry", "population")]), 1.0);
    assert_eq!(
        sample(&text, "gateway_upstream_errors_total", &[("site", "home"), ("kind", "connection_refused")]),
        1.0
    );
    assert_eq!(sample(&text, "gateway_backend_usable", &[("site", "home")]), 0.0, "home was ejected");
}

#[tokio::test]
async fn metrics_need_the_admin_token() {
    let home = Backend::named("home").await;
    let gw = TestGateway::start(&config(home.addr, "/", "")).await;
    let req = Request::get(format!("http://{}/metrics", gw.admin.unwrap())).body(empty()).unwrap();
    assert_eq!(send(&h1_client(), req).await.status, 401);
}

#[tokio::test]
async fn a_reload_swaps_routes_and_keeps_the_state_of_unchanged_registries() {
    let home = Backend::named("home").await;
    let other = Backend::named("other").await;
    let gw = TestGateway::start(&config(home.addr, "/population/", "")).await;
    let before = gw.gateway.sites("population").unwrap();

    let next = config(home.addr, "/population/", "")
        + &format!(
            "[registries.tax]\nroutes = [{{ prefix = \"/tax/\" }}]\nsites.home.backends = [\"{}\"]\n",
            other.addr
        );
    let report = gw.gateway.reload(gateway::config::from_toml(&next).unwrap()).unwrap();
    assert_eq!(report.kept, ["population"]);
    assert_eq!(report.rebuilt, ["tax"]);
    assert!(Arc::ptr_eq(&before, &gw.gateway.sites("population").unwrap()), "population's state was rebuilt");
    assert_eq!(get(&gw.url("/tax/returns")).await.text(), "other");
    assert_eq!(get(&gw.url("/population/people/1")).await.text(), "home");
}

#[tokio::test]
async fn a_bad_reload_leaves_the_old_configuration_serving_and_says_why() {
    let home = Backend::named("home").await;
    let mut file = tempfile::NamedTempFile::new().unwrap();
    let good = config(home.addr, "/population/", "");
    file.write_all(good.as_bytes()).unwrap();
    let gw = TestGateway::start(&good).await;
    gw.gateway.set_source(file.path().to_path_buf());

    std::fs::write(file.path(), good.replace(&home.addr.to_string(), "10.0.0.1:99999")).unwrap();
    let reply = admin(&gw, Method::POST, "/v1/reload").await;
    assert_eq!(reply.status, 422);
    let why = reply.json()["error"].as_str().unwrap().to_string();
    assert!(why.contains("registries.population.sites.home.backends[0]"), "{why}");
    assert_eq!(get(&gw.url("/population/people/1")).await.text(), "home");
    let text = admin(&gw, Method::GET, "/metrics").await.text();
    assert_eq!(sample(&text, "gateway_config_reloads_total", &[("result", "refused")]), 1.0);
    assert_eq!(sample(&text, "gateway_config_generation", &[]), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloads_under_load_lose_no_request() {
    let a = Backend::named("a").await;
    let b = Backend::named("b").await;
    let gw = TestGateway::start(&config(a.addr, "/", "")).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (url, stop) = (gw.url("/people/1"), stop.clone());
        clients.push(tokio::spawn(async move {
            let client = h1_client();
            let mut statuses = Vec::new();
            for _ in 0..5_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                statuses.push(send(&client, Request::get(url.as_str()).body(empty()).unwrap()).await.status);
            }
            statuses
        }));
    }
    // Twenty reloads, flipping the home backend between a and b.
    for i in 0..20 {
        let home = if i % 2 == 0 { b.addr } else { a.addr };
        gw.gateway.reload(gateway::config::from_toml(&config(home, "/", "")).unwrap()).unwrap();
        tokio::task::yield_now().await;
    }
    stop.store(true, Ordering::SeqCst);
    let mut total = 0;
    for c in clients {
        let statuses = c.await.unwrap();
        total += statuses.len();
        assert!(statuses.iter().all(|s| *s == 200), "a request failed during reloads");
    }
    assert!(total > 0);
    assert_eq!(gw.gateway.current().number, 21);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_has_one_json_line_per_request_with_national_ids_redacted() {
    let home = Backend::named("home").await;
    let gw = GatewayProcess::start(&format!(
        "{}\n[log]\nformat = \"json\"\n",
        config(home.addr, "/", "")
            .replace("[admin]\nlisten = \"127.0.0.1:0\"\ntoken = \"test-admin-token-0123456789\"\n", "")
    ));
    let reply = get(&format!("http://{}/people/38001085718?child=50109173230", gw.addr)).await;
    let id = reply.header("x-request-id").to_string();

    let line = tokio::task::block_in_place(|| {
        gw.log.iter().take(50).find(|l| l.contains("\"target\":\"access\"")).expect("an access log line")
    });
    assert!(!line.contains("38001085718") && !line.contains("50109173230"), "personal data logged: {line}");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["path"], "/people/[redacted]?child=[redacted]");
    assert_eq!(v["request_id"], id.as_str());
    assert_eq!(v["registry"], "population");
    assert_eq!(v["site"], "home");
    assert_eq!(v["status"], 200);
    assert_eq!(v["bytes"], 4);
    assert_eq!(v["outcome"], "complete");
    assert_eq!(v["client"], "127.0.0.1");
    assert!(v["total_ms"].as_f64().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_configuration_file() {
    let a = Backend::named("a").await;
    let b = Backend::named("b").await;
    let plain = |addr| {
        format!("[server]\nlisten = \"127.0.0.1:0\"\n[registries.population]\nroutes = [{{ prefix = \"/\" }}]\nsites.home.backends = [\"{addr}\"]\n")
    };
    let gw = GatewayProcess::start(&plain(a.addr));
    let url = format!("http://{}/people/1", gw.addr);
    assert_eq!(get(&url).await.text(), "a");
    std::fs::write(gw.config_path(), plain(b.addr)).unwrap();
    gw.signal("HUP");
    let reloaded =
        tokio::task::block_in_place(|| gw.log.iter().take(50).any(|l| l.contains("configuration reloaded")));
    assert!(reloaded);
    assert_eq!(get(&url).await.text(), "b");
}

#[tokio::test]
async fn every_metric_on_the_grafana_dashboard_is_exported() {
    let embassy = Backend::named("embassy").await;
    // A burst policy, a cache and a plugin, so their series exist too.
    let extra = format!(
        "sites.embassy-lu.backends = [\"{}\"]\n\
         [registries.population.burst]\nmax_in_flight = 8\n\
         [registries.population.cache]\nmax_bytes = \"1MiB\"\n{}",
        embassy.addr,
        crate::fixtures::plugins::entry("population", "noop", "")
    );
    let toml = config(closed_port().await, "/", &extra);
    let gw = TestGateway::start(&toml).await;
    get(&gw.url("/people/1")).await; // a retry after a refused connection
    let bad =
        Request::get(gw.url("/people/1")).header("via", "1.1 data-embassy-gateway").body(empty()).unwrap();
    send(&h1_client(), bad).await; // an error the gateway answers itself
    gw.gateway.reload(gateway::config::from_toml(&toml).unwrap()).unwrap();
    let text = admin(&gw, Method::GET, "/metrics").await.text();

    let dashboard =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../ops/grafana-dashboard.json"))
            .unwrap();
    let names: std::collections::BTreeSet<String> = regex::Regex::new(r"gateway_[a-z_]+")
        .unwrap()
        .find_iter(&dashboard)
        .map(|m| m.as_str().trim_end_matches("_bucket").to_string())
        .collect();
    // Only appear once a retry budget has run dry / a read has spilled.
    let rare = ["gateway_retry_budget_exhausted_total", "gateway_spill_total"];
    for name in names.iter().filter(|n| !rare.contains(&n.as_str())) {
        assert!(
            text.contains(&format!("# TYPE {name} ")),
            "the dashboard plots {name}, which is not exported"
        );
    }
    assert!(names.len() >= 10, "{names:?}");
}
