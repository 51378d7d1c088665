//! Request heads the gateway owns the handling of: the byte-level framing
//! scan (fed in pieces whose size the input chooses) and `check_head` on
//! whatever httparse (hyper's parser) accepts. Neither may panic, and the
//! scan must not depend on how the bytes were split.
#![no_main]

use std::sync::OnceLock;

use gateway::config::Config;
use gateway::proxy::headers::ViaValues;
use gateway::server::framing::Scanner;
use libfuzzer_sys::fuzz_target;

fn config() -> &'static Config {
    static CONFIG: OnceLock<Config> = OnceLock::new();
    CONFIG.get_or_init(|| {
        gateway::config::from_toml(
            "[server]\nlisten = \"127.0.0.1:0\"\nmax_headers = 16\nmax_header_bytes = 2048\n\
             [registries.population]\nroutes = [{ prefix = \"/\" }]\nsites.home.backends = [\"127.0.0.1:1\"]\n",
        )
        .expect("fuzz config is valid")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else {
        return;
    };
    let whole = Scanner::default().feed(bytes);
    let mut pieces = Scanner::default();
    let mut tripped = false;
    for chunk in bytes.chunks(usize::from(split).max(1)) {
        tripped |= pieces.feed(chunk);
    }
    assert_eq!(whole, tripped, "the scan depends on how bytes arrive");

    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = parsed.parse(bytes) else {
        return;
    };
    let mut req = http::Request::builder()
        .method(parsed.method.unwrap_or("GET"))
        .uri(parsed.path.unwrap_or("/"));
    if parsed.version == Some(0) {
        req = req.version(http::Version::HTTP_10);
    }
    for h in parsed.headers.iter() {
        req = req.header(h.name, h.value);
    }
    let Ok(req) = req.body(()) else {
        return;
    };
    let config = config();
    let via = ViaValues::new(&config.server.name);
    let _ = gateway::proxy::check_head(&req, &config.server, &via);
});
