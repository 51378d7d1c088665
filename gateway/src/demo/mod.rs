//! `gateway demo`: simulated home and embassy sites for several registries,
//! and the gateway in front of them, from the embedded `config/demo.toml`.
//! The config is the source of truth: a simulated site is started on every
//! backend address it names.

mod backend;
mod control;
pub mod data;

use std::collections::HashMap;
use std::net::SocketAddr;

use crate::config::{self, Config};
use backend::{SimulatedSite, SiteSwitch};
pub use control::start_control;

/// The embedded demo configuration.
pub const DEMO_CONFIG: &str = include_str!("../../../config/demo.toml");

/// Compiles the embedded config, optionally with another listen address.
/// Plugin paths in it are relative to the repository root; run from
/// elsewhere, they are looked up beside the crate this binary was built from.
pub fn config(listen: Option<SocketAddr>) -> Result<Config, config::ConfigErrors> {
    let text = if std::path::Path::new(PLUGIN_DIR).is_dir() {
        DEMO_CONFIG.to_string()
    } else {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../");
        DEMO_CONFIG.replace(&format!("\"{PLUGIN_DIR}"), &format!("\"{root}{PLUGIN_DIR}"))
    };
    let mut config = config::from_toml(&text)?;
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    Ok(config)
}

/// Where `scripts/build-plugins` puts the plugins, from the repository root.
const PLUGIN_DIR: &str = "plugins/target/wasm32-wasip2/release";

/// The demo's admin token: it is in config/demo.toml for all to read, so
/// it protects nothing; real deployments use `token_env`.
pub const ADMIN_TOKEN: &str = "demo-admin-token-not-a-secret";

/// Where the demo's site switches listen.
pub const CONTROL: &str = "127.0.0.1:18100";

/// Every simulated site's switches, by `registry/site`.
pub type Switches = HashMap<String, Vec<SiteSwitch>>;

/// Starts a simulated site on every backend address of `config`.
pub async fn start_sites(config: &Config) -> anyhow::Result<Switches> {
    let mut switches = Switches::new();
    for registry in &config.registries {
        for site in &registry.sites {
            for backend in &site.backends {
                let addr: SocketAddr = backend.as_str().parse()?;
                let sim = SimulatedSite { registry: registry.name.to_string(), site: site.name.to_string() };
                let switch = sim.start(addr).await.map_err(|e| {
                    anyhow::anyhow!(
                        "cannot start simulated site {}/{} on {addr}: {e}",
                        registry.name,
                        site.name
                    )
                })?;
                switches.entry(format!("{}/{}", registry.name, site.name)).or_default().push(switch);
            }
        }
    }
    Ok(switches)
}

/// The URLs a newcomer should try, for the gateway at `addr`.
pub fn urls_to_try(addr: SocketAddr) -> Vec<String> {
    let people = data::people();
    let id = people[0]["id"].as_str().unwrap_or_default().to_string();
    let base = format!("http://{addr}");
    vec![
        format!("{base}/population/people"),
        format!("{base}/population/people/{id}"),
        format!("{base}/tax/declarations/{id}/2025"),
        format!("{base}/business/companies/10137319"),
        format!("{base}/gazette/acts/112032026004"),
        format!("{base}/nowhere   (404 with Proxy-Status)"),
    ]
}
