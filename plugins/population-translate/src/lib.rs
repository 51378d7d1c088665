//! population-translate: the embassy copy of the population registry speaks
//! the legacy schema (Estonian field names, DD.MM.YYYY dates, a nested
//! `isik` / `elukoht` shape). This plugin rewrites embassy answers into the
//! home schema, so clients see one API whichever site answers.

mod schema;

use gateway_plugin_sdk::host::{self, metrics};
use gateway_plugin_sdk::{
    export_plugin, Manifest, Plugin, Request, ResponseChanges, ServedBy, SiteKind, UpstreamResponse, Value,
};
use serde::Deserialize;

/// `config` in the gateway config; every field optional.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Config {
    /// Translate answers from these sites only; empty: every embassy site.
    sites: Vec<String>,
}

struct Translate;

impl Plugin for Translate {
    fn manifest() -> Manifest {
        Manifest { on_response: true, response_body: true, ..Manifest::none() }
    }

    fn on_response(_req: Request, served: ServedBy, resp: UpstreamResponse) -> Option<ResponseChanges> {
        let config: Config = host::config().unwrap_or_default();
        let wanted = if config.sites.is_empty() {
            served.kind == SiteKind::Embassy
        } else {
            config.sites.contains(&served.site)
        };
        if !wanted || !resp.is_json() || resp.header("content-encoding").is_some() {
            return None;
        }
        let legacy: Value = resp.json().ok()?;
        let home = schema::to_home(&legacy)?;
        let _ = metrics::count("translated", 1);
        Some(ResponseChanges::none().json_body(&home).set_header("x-schema-translated", "legacy-to-home"))
    }
}

export_plugin!(Translate);
