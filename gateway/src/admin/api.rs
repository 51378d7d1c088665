//! What the admin endpoints read and do.

use http::StatusCode;
use serde_json::{json, Value};

use crate::config::Freshness;
use crate::proxy::Gateway;
use crate::sites::backend::now_ms;
use crate::sites::RegistrySites;

pub fn status(gateway: &Gateway) -> Value {
    let registries: Vec<Value> = gateway.all_sites().iter().map(|s| registry_status(s)).collect();
    json!({ "registries": registries })
}

pub fn registry_status(sites: &RegistrySites) -> Value {
    let decision = sites.continuity.decision();
    let now = now_ms();
    let site_list: Vec<Value> = sites
        .pools
        .iter()
        .enumerate()
        .map(|(i, pool)| {
            let backends: Vec<Value> = pool
                .backends
                .iter()
                .map(|b| {
                    json!({
                        "address": b.addr.to_string(),
                        "healthy": b.healthy(),
                        "usable": b.usable(now),
                        "ejected_for_ms": b.ejected_for(now).map(|d| d.as_millis() as u64),
                        "in_flight": b.in_flight.load(std::sync::atomic::Ordering::Relaxed),
                        "latency_ms": b.latency().map(|d| d.as_secs_f64() * 1000.0),
                    })
                })
                .collect();
            json!({
                "name": &*pool.spec.name,
                "kind": format!("{:?}", pool.spec.kind).to_lowercase(),
                "priority": pool.spec.priority,
                "freshness": freshness(&pool.spec.freshness, sites.as_of(i)),
                "draining": decision.draining[i],
                "backends": backends,
            })
        })
        .collect();
    json!({
        "name": &*sites.registry.name,
        "state": sites.state_label(),
        "sites": site_list,
    })
}

fn freshness(f: &Freshness, as_of: Option<std::time::SystemTime>) -> Value {
    match f {
        Freshness::Live => json!({"kind": "live"}),
        Freshness::Replica { max_lag } => json!({"kind": "replica", "max_lag_seconds": max_lag.as_secs()}),
        Freshness::Snapshot(_) => {
            json!({"kind": "snapshot", "as_of": as_of.map(|t| humantime::format_rfc3339_seconds(t).to_string())})
        }
    }
}

/// `force/{site}`, `drain/{site}` or `automatic` on one registry.
pub fn act(
    gateway: &Gateway,
    registry: &str,
    action: &[&str],
    who: &str,
) -> Result<Value, (StatusCode, String)> {
    let sites = gateway
        .sites(registry)
        .ok_or_else(|| (StatusCode::NOT_FOUND, format!("no registry named {registry}")))?;
    let site = |name: &str| {
        sites
            .site_index(name)
            .ok_or_else(|| (StatusCode::NOT_FOUND, format!("registry {registry} has no site {name}")))
    };
    match action {
        ["force", name] => sites.continuity.force(site(name)?, who),
        ["drain", name] => sites.continuity.drain(site(name)?, who),
        ["automatic"] => sites.continuity.automatic(who),
        _ => return Err((StatusCode::NOT_FOUND, "use force/{site}, drain/{site} or automatic".into())),
    }
    Ok(registry_status(&sites))
}
