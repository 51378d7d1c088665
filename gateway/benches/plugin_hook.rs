//! What one plugin hook costs per request: instantiate (from the pooling
//! allocator, copy-on-write memory) + call, for a no-op on-request hook and
//! for population-translate on a ~1 KB JSON body; each with a fresh
//! instance per request and with a shared (reused) instance.
//!
//! `scripts/build-plugins && cargo bench -p gateway --bench plugin_hook`
//! Besides criterion's estimates it prints p50 / p99 of single calls.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use gateway::plugin::{wit, Capabilities, FailPolicy, InstanceMode, LoadedPlugin, OverCap, PluginSpec};

fn plugin(name: &str, instance: InstanceMode) -> Arc<LoadedPlugin> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../plugins/target/wasm32-wasip2/release/{name}.wasm"));
    assert!(path.is_file(), "{} is missing: run scripts/build-plugins first", path.display());
    let mut capabilities = Capabilities::default();
    capabilities.grant("config");
    capabilities.grant("metrics");
    LoadedPlugin::load(PluginSpec {
        name: name.into(),
        registry: "population".into(),
        path,
        config_json: "{}".into(),
        capabilities,
        fail: FailPolicy::Closed,
        instance,
        timeout: Duration::from_millis(50),
        max_memory: 16 << 20,
        max_body: 1 << 20,
        over_cap: OverCap::Skip,
    })
    .expect("plugin loads")
}

fn request() -> wit::Request {
    let headers = (0..10).map(|i| (format!("x-header-{i}"), format!("value {i}"))).collect();
    wit::Request {
        method: "GET".into(),
        path: "/population/people/48001080271".into(),
        query: None,
        headers,
        body: None,
        registry: "population".into(),
        request_id: "0123456789abcdef".into(),
        client_ip: "127.0.0.1".into(),
    }
}

/// A ~1 KB legacy-schema person.
fn legacy_body() -> Vec<u8> {
    let history: Vec<_> = (0..11)
        .map(|i| serde_json::json!({"omavalitsus": "Tallinn", "aadress": format!("Narva mnt {i}-12"), "alates": "01.01.2001"}))
        .collect();
    let doc = serde_json::json!({
        "isik": {"isikukood": "48001080271", "eesnimi": "Mari", "perenimi": "Tamm", "sugu": "N",
                 "synniaeg": "08.01.1980", "kodakondsus": "EST", "staatus": "elanik"},
        "elukoht": {"riik": "EE", "omavalitsus": "Tallinn", "aadress": "Narva mnt 5-12"},
        "elukohaajalugu": history,
    });
    serde_json::to_vec(&doc).unwrap()
}

fn percentiles(label: &str, mut f: impl FnMut()) {
    let mut samples: Vec<Duration> = (0..20_000)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!("{label}: p50 {:?}  p90 {:?}  p99 {:?}", at(0.5), at(0.9), at(0.99));
}

fn hooks(c: &mut Criterion) {
    let req = request();
    let served = wit::ServedBy { site: "embassy-lu".into(), kind: wit::SiteKind::Embassy };
    let body = legacy_body();
    println!("translate input: {} bytes", body.len());
    let resp = wit::UpstreamResponse {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: Some(body),
    };
    for (mode, label) in [(InstanceMode::PerRequest, "per-request"), (InstanceMode::Shared, "shared")] {
        let noop = plugin("noop", mode);
        let translate = plugin("population_translate", mode);
        let call_noop = || assert!(noop.on_request(&req).0.is_ok());
        let call_translate = || assert!(matches!(translate.on_response(&req, &served, &resp).0, Ok(Some(_))));
        percentiles(&format!("noop on_request, {label}"), call_noop);
        percentiles(&format!("translate 1KB on_response, {label}"), call_translate);
        c.bench_function(&format!("noop_on_request_{label}"), |b| b.iter(call_noop));
        c.bench_function(&format!("translate_1kb_on_response_{label}"), |b| b.iter(call_translate));
    }
}

criterion_group!(benches, hooks);
criterion_main!(benches);
