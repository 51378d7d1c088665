//! misbehave: a test-only plugin that does one bad thing, chosen by
//! `config.mode`, in on-request. The gateway must contain every one of them:
//!
//! - `loop`: spins forever (the epoch deadline stops it)
//! - `memory`: allocates until the memory limit refuses
//! - `trap`: executes `unreachable`
//! - `panic`: Rust panic (an abort, so a trap)
//! - `recursion`: recurses until the stack overflows
//! - `oversize`: answers with a body of `bytes` bytes (over the output cap)
//! - `ungranted`: calls every host capability and reports what it got back
//! - `remember`: answers with the `x-secret` of the previous request this
//!   instance saw (must always be none with a fresh instance per request)
//! - `body`: answers with the size of the request body it was given (it
//!   declares `request_body`, so the gateway buffers bodies up to its cap)

use std::sync::Mutex;

use gateway_plugin_sdk::bindings::embassy::gateway as wit;
use gateway_plugin_sdk::host::{self, Level};
use gateway_plugin_sdk::{export_plugin, json, Manifest, Plugin, Request, RequestAction, Response, Value};

static LAST_SECRET: Mutex<Option<String>> = Mutex::new(None);

struct Misbehave;

impl Plugin for Misbehave {
    fn manifest() -> Manifest {
        Manifest { on_request: true, request_body: true, ..Manifest::none() }
    }

    fn on_request(req: Request) -> RequestAction {
        let config: Value = host::config().unwrap_or(Value::Null);
        let mode = req.header("x-mode").or(config["mode"].as_str()).unwrap_or("trap").to_string();
        match mode.as_str() {
            "loop" => spin(),
            "memory" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    std::hint::black_box(&hoard);
                }
            }
            "panic" => panic!("misbehave: panic on purpose"),
            "recursion" => {
                let depth = recurse(std::hint::black_box(1));
                RequestAction::Respond(Response::json(200, &json!({ "depth": depth })))
            }
            "oversize" => {
                let bytes = config["bytes"].as_u64().unwrap_or(4 << 20) as usize;
                RequestAction::Respond(Response { status: 200, headers: vec![], body: vec![b'x'; bytes] })
            }
            "ungranted" => RequestAction::Respond(Response::json(200, &ungranted())),
            "remember" => {
                let mut last = LAST_SECRET.lock().unwrap_or_else(|p| p.into_inner());
                let previous = last.replace(req.header("x-secret").unwrap_or("").to_string());
                RequestAction::Respond(Response::json(200, &json!({ "previous": previous })))
            }
            "body" => {
                let bytes = req.body.as_ref().map(Vec::len);
                RequestAction::Respond(Response::json(200, &json!({ "bytes": bytes })))
            }
            _ => core::arch::wasm32::unreachable(),
        }
    }
}

fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

#[inline(never)]
fn recurse(n: u64) -> u64 {
    let frame = std::hint::black_box([n; 64]);
    if frame[0] == 0 {
        return 0;
    }
    1 + recurse(std::hint::black_box(n + 1)) + frame[63] % 2
}

/// Every capability once, and what it answered: `ok` or the error text.
fn ungranted() -> Value {
    let show = |r: Result<(), wit::types::HostError>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("{e:?}"),
    };
    json!({
        "log": show(wit::log::write(Level::Info, "hello")),
        "metrics": show(wit::metrics::counter_add("tries", 1)),
        "kv": show(wit::kv::get("k").map(|_| ())),
        "clock": show(wit::clock::now_ms().map(|_| ())),
        "config": show(wit::config::get().map(|_| ())),
    })
}

export_plugin!(Misbehave);
