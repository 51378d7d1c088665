//! Hot reload of plugin chains: atomic swaps under load with no failed
//! request, refusal of a plugin that cannot load (the old one keeps
//! serving), and `gateway check` on the shipped config.

use crate::fixtures::load::SteadyLoad;

use gateway::config;

use crate::fixtures::client::{empty, h1_client};
use crate::fixtures::plugins::{entry, wasm};
use crate::fixtures::{send, Backend, TestGateway};

fn config_text(home: std::net::SocketAddr, plugin: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
[registries.population]
routes = [{{ prefix = "/population/" }}]
sites.home.backends = ["{home}"]
{}"#,
        entry("population", plugin, extra)
    )
}

fn plugin_hash(gw: &TestGateway) -> (String, String) {
    let config = gw.gateway.config();
    let p = &config.registries[0].plugins.plugins[0];
    (p.spec.name.clone(), p.hash.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reloading_plugin_chains_under_load_fails_no_request() {
    let home = Backend::named("home").await;
    let a = config_text(home.addr, "noop", "fail = \"closed\"");
    let b = config_text(home.addr, "population_translate", "fail = \"closed\"\ncapabilities = [\"config\"]");
    let gw = TestGateway::start(&a).await;

    let load = SteadyLoad::start(gw.url("/population/x"), 4, |r| r.status == 200 && r.text() == "home");
    let mut hashes = Vec::new();
    for round in 0..6 {
        // Wait for some traffic on the current chain before swapping it.
        load.until_more_ok(20).await;
        let text = if round % 2 == 0 { &b } else { &a };
        let report = gw.gateway.reload(config::from_toml(text).unwrap()).expect("reload");
        assert_eq!(report.rebuilt, vec!["population".to_string()]);
        hashes.push(plugin_hash(&gw));
    }
    let (ok, failed) = load.stop().await;
    println!("requests during 6 plugin reloads: {ok} ok, {failed} failed");
    assert_eq!(failed, 0);
    assert_eq!(hashes[0].0, "population-translate");
    assert_eq!(hashes[1].0, "noop");
    assert_ne!(hashes[0].1, hashes[1].1);
}

#[tokio::test]
async fn a_plugin_that_cannot_load_is_refused_and_the_old_chain_keeps_serving() {
    let home = Backend::named("home").await;
    let gw = TestGateway::start(&config_text(home.addr, "noop", "")).await;
    let before = plugin_hash(&gw);

    let garbage = tempfile::Builder::new().suffix(".wasm").tempfile().unwrap();
    std::fs::write(garbage.path(), b"\0asm but not really a component").unwrap();
    let text = config_text(home.addr, "noop", "name = \"noop\"")
        .replace(&wasm("noop"), &garbage.path().display().to_string());
    let err = config::from_toml(&text).unwrap_err().to_string();
    assert!(err.starts_with("registries.population.plugins[0].path: not a valid plugin component"), "{err}");

    let reply = send(&h1_client(), http::Request::get(gw.url("/population/x")).body(empty()).unwrap()).await;
    assert_eq!(reply.text(), "home");
    assert_eq!(plugin_hash(&gw), before);
}

#[test]
fn plugin_config_errors_name_the_key_path() {
    let text = r#"
[server]
listen = "127.0.0.1:0"
[registries.population]
routes = [{ prefix = "/population/" }]
sites.home.backends = ["127.0.0.1:1"]
[[registries.population.plugins]]
path = "nope.wasm"
capabilities = ["network"]
fail = "sometimes"
"#;
    let err = config::from_toml(text).unwrap_err().to_string();
    assert!(
        err.contains("registries.population.plugins[0].capabilities[0]: unknown capability \"network\""),
        "{err}"
    );
    assert!(err.contains("registries.population.plugins[0].fail: unknown value \"sometimes\""), "{err}");
    assert!(
        err.contains("registries.population.plugins[0].path: cannot read \"nope.wasm\": No such file"),
        "{err}"
    );
}

#[test]
fn the_shipped_plugins_config_passes_gateway_check() {
    let _built = wasm("noop");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = std::process::Command::new(crate::fixtures::process::BIN)
        .args(["check", "--config", "config/plugins.toml"])
        .current_dir(&root)
        .env("GATEWAY_ADMIN_TOKEN", "a-test-token-of-enough-length")
        .output()
        .unwrap();
    let says = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{says}");
}

fn file_config(home: std::net::SocketAddr, plugin: &std::path::Path) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
token = "{}"
[registries.population]
routes = [{{ prefix = "/population/" }}]
sites.home.backends = ["{home}"]
[[registries.population.plugins]]
name = "swappable"
path = "{}"
capabilities = ["config"]
config = {{ mode = "ungranted" }}
"#,
        crate::continuity::TOKEN,
        plugin.display()
    )
}

async fn admin(gw: &TestGateway, method: http::Method, path: &str) -> crate::fixtures::Reply {
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://{}{path}", gw.admin.unwrap()))
        .header("authorization", format!("Bearer {}", crate::continuity::TOKEN))
        .body(empty())
        .unwrap();
    send(&h1_client(), req).await
}

#[tokio::test]
async fn a_changed_plugin_file_is_swapped_in_by_the_admin_reload_and_listed_with_its_hash() {
    let home = Backend::named("home").await;
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("swappable.wasm");
    std::fs::copy(wasm("noop"), &plugin).unwrap();
    let mut file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut file, file_config(home.addr, &plugin).as_bytes()).unwrap();
    let gw = TestGateway::start(&file_config(home.addr, &plugin)).await;
    gw.gateway.set_source(file.path().to_path_buf());

    let listed = admin(&gw, http::Method::GET, "/v1/plugins").await.json();
    let first = listed["registries"][0]["plugins"][0]["sha256"].as_str().unwrap().to_string();
    assert_eq!(listed["registries"][0]["plugins"][0]["name"], "swappable");
    assert_eq!(crate::fixtures::get(&gw.url("/population/x")).await.text(), "home");

    // The new version (misbehave in `ungranted` mode) answers by itself.
    std::fs::copy(wasm("misbehave"), &plugin).unwrap();
    let reply = admin(&gw, http::Method::POST, "/v1/reload").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["rebuilt"][0], "population");
    let listed = admin(&gw, http::Method::GET, "/v1/plugins").await.json();
    assert_ne!(listed["registries"][0]["plugins"][0]["sha256"].as_str().unwrap(), first);
    let after = crate::fixtures::get(&gw.url("/population/x")).await;
    assert_eq!(after.json()["config"], "ok", "{}", after.text());

    let metrics = admin(&gw, http::Method::GET, "/metrics").await.text();
    assert!(metrics.contains("gateway_plugin_calls_total{hook=\"on_request\",outcome=\"ok\",plugin=\"swappable\",registry=\"population\"}"), "{metrics}");
}

#[tokio::test]
async fn sighup_swaps_in_a_changed_plugin_file() {
    let home = Backend::named("home").await;
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("swappable.wasm");
    std::fs::copy(wasm("noop"), &plugin).unwrap();
    let gw = crate::fixtures::process::GatewayProcess::start(&file_config(home.addr, &plugin));
    let url = format!("http://{}/population/x", gw.addr);
    assert_eq!(crate::fixtures::get(&url).await.text(), "home");

    std::fs::copy(wasm("misbehave"), &plugin).unwrap();
    gw.signal("HUP");
    loop {
        let line = gw.log.recv_timeout(std::time::Duration::from_secs(30)).expect("no reload logged");
        if line.contains("configuration reloaded") {
            assert!(line.contains("rebuilt=[\"population\"]"), "{line}");
            break;
        }
    }
    assert_eq!(crate::fixtures::get(&url).await.json()["config"], "ok");
}

#[tokio::test]
async fn a_changed_plugin_file_is_reloaded_without_a_signal() {
    let home = Backend::named("home").await;
    let dir = tempfile::tempdir().unwrap();
    let plugin = dir.path().join("swappable.wasm");
    std::fs::copy(wasm("noop"), &plugin).unwrap();
    let gw = crate::fixtures::process::GatewayProcess::start(&file_config(home.addr, &plugin));
    let url = format!("http://{}/population/x", gw.addr);
    assert_eq!(crate::fixtures::get(&url).await.text(), "home");

    // Written beside, then renamed in: the watcher never sees half a file.
    let staged = dir.path().join("staged.wasm");
    std::fs::copy(wasm("misbehave"), &staged).unwrap();
    std::fs::rename(&staged, &plugin).unwrap();
    loop {
        let line = gw.log.recv_timeout(std::time::Duration::from_secs(30)).expect("no reload logged");
        if line.contains("configuration reloaded") {
            break;
        }
    }
    assert_eq!(crate::fixtures::get(&url).await.json()["config"], "ok");
}

#[test]
fn compiled_plugins_are_cached_on_disk_by_content_hash() {
    let noop = wasm("noop");
    let cache = tempfile::tempdir().unwrap();
    let mut config = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(
        &mut config,
        config_text("127.0.0.1:1".parse().unwrap(), "noop", "").as_bytes(),
    )
    .unwrap();
    let check = || {
        let out = std::process::Command::new(crate::fixtures::process::BIN)
            .args(["check", "--config"])
            .arg(config.path())
            .env("GATEWAY_PLUGIN_CACHE", cache.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    check();
    let digest = ring::digest::digest(&ring::digest::SHA256, &std::fs::read(&noop).unwrap());
    let hash: String = digest.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    let cached: Vec<String> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(cached.iter().any(|f| f.starts_with(&hash) && f.ends_with(".cwasm")), "{cached:?}");
    // A second start loads the artifact instead of compiling (and leaves no temporaries).
    check();
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), cached.len());
}
