//! route-canary: a routing plugin (choose-site). A request carrying the
//! configured header (e.g. `x-canary: embassy-lu`) or whose cohort falls in
//! the canary percentage goes to the canary site; otherwise, with
//! `prefer_fastest`, the healthy eligible site with the lowest latency.

use gateway_plugin_sdk::host;
use gateway_plugin_sdk::{export_plugin, Health, Manifest, Plugin, Request, SiteInfo};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(default)]
struct Config {
    /// A request with this header names its site in the value.
    header: String,
    /// The site the canary cohort goes to.
    canary_site: Option<String>,
    /// Percent of clients (by a hash of `cohort_header`, else client IP).
    canary_percent: u32,
    cohort_header: String,
    /// Otherwise pick the healthy eligible site with the lowest latency.
    prefer_fastest: bool,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            header: "x-route-to".into(),
            canary_site: None,
            canary_percent: 0,
            cohort_header: "x-client-id".into(),
            prefer_fastest: false,
        }
    }
}

struct Canary;

impl Plugin for Canary {
    fn manifest() -> gateway_plugin_sdk::Manifest {
        Manifest { choose_site: true, ..Manifest::none() }
    }

    fn choose_site(req: Request, sites: Vec<SiteInfo>) -> Option<String> {
        let config: Config = host::config().unwrap_or_default();
        let usable =
            |name: &str| sites.iter().any(|s| s.name == name && s.eligible && s.health != Health::Down);
        if let Some(site) = req.header(&config.header).filter(|s| usable(s)) {
            return Some(site.to_string());
        }
        if let Some(site) = config.canary_site.as_deref().filter(|s| usable(s)) {
            let who = req.header(&config.cohort_header).unwrap_or(&req.client_ip);
            if cohort(who) < config.canary_percent {
                return Some(site.to_string());
            }
        }
        if config.prefer_fastest {
            return sites
                .iter()
                .filter(|s| s.eligible && s.health == Health::Healthy)
                // A site never timed sorts first: it gets one request and
                // with it a latency, instead of never being tried.
                .min_by_key(|s| s.latency_ms.map_or(0, |ms| ms.saturating_add(1)))
                .map(|s| s.name.clone());
        }
        None
    }
}

/// A stable bucket 0..100 for a client (FNV-1a).
fn cohort(who: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in who.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    h % 100
}

export_plugin!(Canary);
