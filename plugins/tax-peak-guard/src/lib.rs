//! tax-peak-guard: keeps the tax registry standing in the first days of
//! filing. Submissions (any method but GET / HEAD) always pass. Status polls
//! (`GET .../declarations/{id}/{year}`) are counted per citizen. A poll is
//! answered from the shared store when an answer younger than `fresh_ms` is
//! there (that costs the registry nothing). Otherwise, while the registry is
//! under pressure (more than `pressure_rps` requests in the current second,
//! all clients together), a citizen's polls beyond `polls_per_window` get 429
//! with Retry-After; the rest go on to the registry.

use gateway_plugin_sdk::host::{self, clock, kv, metrics};
use gateway_plugin_sdk::{
    export_plugin, json, Manifest, Plugin, Request, RequestAction, RequestChanges, Response, ResponseChanges,
    ServedBy, UpstreamResponse,
};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(default)]
struct Config {
    /// Requests per second (all clients) above which the registry counts as
    /// under pressure; 0: always.
    pressure_rps: i64,
    /// Polls one citizen may make per window while under pressure.
    polls_per_window: i64,
    window_ms: u64,
    /// How old a stored poll answer may be and still be served.
    fresh_ms: u64,
    /// Seconds in Retry-After.
    retry_after: u32,
    /// When set, a citizen's polls beyond `polls_per_window` that are not
    /// shed (no pressure yet) go on in this burst priority class (e.g.
    /// "browse"), so they are the first the queue sheds if pressure builds.
    demote_to: Option<String>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            pressure_rps: 200,
            polls_per_window: 3,
            window_ms: 10_000,
            fresh_ms: 5_000,
            retry_after: 10,
            demote_to: None,
        }
    }
}

/// The citizen and year a status poll is about, if `req` is one.
fn poll(req: &Request) -> Option<(String, String)> {
    if req.method != "GET" && req.method != "HEAD" {
        return None;
    }
    let segs = req.segments();
    let at = segs.iter().position(|s| *s == "declarations")?;
    match segs.get(at + 1..) {
        Some([id, year]) => Some((id.to_string(), year.to_string())),
        _ => None,
    }
}

struct Guard;

impl Plugin for Guard {
    fn manifest() -> Manifest {
        Manifest { on_request: true, on_response: true, response_body: true, ..Manifest::none() }
    }

    fn on_request(req: Request) -> RequestAction {
        let go = RequestAction::Continue(RequestChanges::none());
        let config: Config = host::config().unwrap_or_default();
        let now = clock::now_ms().unwrap_or(0);
        let load = kv::incr(&format!("rps:{}", now / 1000), 1, 2_000).unwrap_or(0);
        let Some((id, year)) = poll(&req) else { return go };
        let window = now / config.window_ms.max(1);
        let polls = kv::incr(&format!("polls:{id}:{window}"), 1, config.window_ms).unwrap_or(0);
        // A fresh stored answer costs the registry nothing: serve it first.
        if let Ok(Some(stored)) = kv::get(&format!("status:{id}:{year}")) {
            let _ = metrics::count("served_from_store", 1);
            let mut resp = Response::json(200, &());
            resp.body = stored;
            return RequestAction::Respond(resp.with_header("x-served-from", "tax-peak-guard"));
        }
        if load > config.pressure_rps && polls > config.polls_per_window {
            let _ = metrics::count("shed", 1);
            let body = json!({"error": "too_many_polls", "message": "the tax registry is busy; your declaration is safe, ask again later"});
            return RequestAction::Respond(
                Response::json(429, &body).with_header("retry-after", &config.retry_after.to_string()),
            );
        }
        if let Some(class) = config.demote_to.as_deref().filter(|_| polls > config.polls_per_window) {
            let _ = metrics::count("demoted", 1);
            return RequestAction::Continue(RequestChanges::none().priority(class));
        }
        go
    }

    fn on_response(req: Request, _served: ServedBy, resp: UpstreamResponse) -> Option<ResponseChanges> {
        let (id, year) = poll(&req)?;
        if resp.status == 200 && resp.is_json() {
            let config: Config = host::config().unwrap_or_default();
            let _ = kv::set(&format!("status:{id}:{year}"), resp.body.as_deref()?, config.fresh_ms);
        }
        None
    }
}

export_plugin!(Guard);
