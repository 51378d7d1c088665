//! Micro-benchmarks of the request path's per-request steps that do not
//! touch the network: route lookup and header rewriting (plus the config
//! compile step, which runs on every reload).
//!
//!   cargo bench -p gateway --bench hot_path
//!   cargo bench -p gateway --bench hot_path -- route     # a subset
//!
//! Absolute times depend on the machine; compare runs on the same machine.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use gateway::config;
use gateway::proxy::headers::{self, ForwardedFor, ViaValues};
use gateway::proxy::route::{rewrite_path, Router};
use http::{HeaderMap, HeaderValue, Version};

const DEMO: &str = include_str!("../../config/demo.toml");

/// A config with `n` registries, each with two routes (a prefix and a
/// host), to see how the ordered scan behaves as registries grow.
fn many_registries(n: usize) -> String {
    let mut text = String::from("[server]\nlisten = \"127.0.0.1:18080\"\n");
    for i in 0..n {
        text.push_str(&format!(
            "[registries.r{i}]\nroutes = [{{ prefix = \"/registry{i}/\", strip_prefix = true }}, {{ host = \"r{i}.example\" }}]\nsites.home.backends = [\"127.0.0.1:{}\"]\n",
            20000 + i
        ));
    }
    text
}

fn route(c: &mut Criterion) {
    let demo = Router::new(&config::from_toml(DEMO).expect("demo config compiles"));
    let large = Router::new(&config::from_toml(&many_registries(50)).expect("generated config compiles"));
    let mut g = c.benchmark_group("route");
    g.bench_function("demo_prefix_hit", |b| {
        b.iter(|| {
            demo.route(black_box(Some("127.0.0.1")), black_box("/population/people/48001082717")).is_some()
        })
    });
    g.bench_function("demo_host_hit", |b| {
        b.iter(|| demo.route(black_box(Some("gazette.localhost")), black_box("/acts/112032026004")).is_some())
    });
    g.bench_function("demo_miss", |b| {
        b.iter(|| demo.route(black_box(None), black_box("/nowhere")).is_none())
    });
    g.bench_function("50_registries_last", |b| {
        b.iter(|| large.route(black_box(None), black_box("/registry49/items/1")).is_some())
    });
    g.bench_function("50_registries_miss", |b| {
        b.iter(|| large.route(black_box(None), black_box("/zzz")).is_none())
    });
    let routed = demo.route(Some("127.0.0.1"), "/population/people/48001082717").expect("routes");
    g.bench_function("rewrite_strip_prefix", |b| {
        b.iter(|| rewrite_path(black_box(routed.route), black_box("/population/people/48001082717")))
    });
    g.finish();
}

/// A browser-like request head: what the gateway sees from a citizen.
fn request_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "www.eesti.example"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
        ("accept", "application/json"),
        ("accept-language", "et,en;q=0.8"),
        ("accept-encoding", "gzip, deflate, br"),
        ("cookie", "session=abc123; lang=et"),
        ("connection", "keep-alive"),
        ("x-forwarded-for", "198.51.100.7"),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    h
}

fn rewrite_headers(c: &mut Criterion) {
    let base = request_headers();
    let mut hop = base.clone();
    hop.insert("connection", HeaderValue::from_static("keep-alive, x-trace"));
    hop.insert("x-trace", HeaderValue::from_static("1"));
    hop.insert("te", HeaderValue::from_static("trailers"));
    let peer: SocketAddr = "203.0.113.9:51234".parse().expect("valid address");
    let from = ForwardedFor::new(peer, "http");
    let trusted = ["10.0.0.0/8".parse().expect("valid net")];
    let via = ViaValues::new("data-embassy-gateway");
    let mut g = c.benchmark_group("headers");
    g.bench_function("strip_hop_by_hop_typical", |b| {
        b.iter_batched_ref(|| base.clone(), headers::strip_hop_by_hop, criterion::BatchSize::SmallInput)
    });
    g.bench_function("strip_hop_by_hop_connection_named", |b| {
        b.iter_batched_ref(|| hop.clone(), headers::strip_hop_by_hop, criterion::BatchSize::SmallInput)
    });
    g.bench_function("set_forwarded_untrusted_peer", |b| {
        b.iter_batched_ref(
            || base.clone(),
            |h| headers::set_forwarded(h, &from, &trusted),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("via_append", |b| {
        b.iter_batched_ref(
            || base.clone(),
            |h| h.append(http::header::VIA, via.for_version(Version::HTTP_11)),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("request_id_keep_or_make", |b| b.iter(|| headers::request_id(black_box(&base))));
    g.finish();
}

fn compile_config(c: &mut Criterion) {
    c.bench_function("config/compile_demo", |b| b.iter(|| config::from_toml(black_box(DEMO)).is_ok()));
}

criterion_group!(benches, route, rewrite_headers, compile_config);
criterion_main!(benches);
