//! `GET /v1/plugins`: the plugin chains serving now, so operators can see
//! which version (content hash) of each plugin a reload put in place.

use serde_json::{json, Value};

use crate::plugin::{FailPolicy, InstanceMode};
use crate::proxy::Gateway;

pub fn list(gateway: &Gateway) -> Value {
    let generation = gateway.current();
    let registries: Vec<Value> = generation
        .config
        .registries
        .iter()
        .map(|r| {
            let plugins: Vec<Value> = r
                .plugins
                .plugins
                .iter()
                .map(|p| {
                    let m = &p.manifest;
                    let hooks: Vec<&str> = [(m.on_request, "on_request"), (m.choose_site, "choose_site"), (m.on_response, "on_response")]
                        .into_iter()
                        .filter_map(|(on, name)| on.then_some(name))
                        .collect();
                    json!({
                        "name": p.spec.name,
                        "path": p.spec.path.display().to_string(),
                        "sha256": p.hash,
                        "hooks": hooks,
                        "fail": if p.spec.fail == FailPolicy::Open { "open" } else { "closed" },
                        "instance": if p.spec.instance == InstanceMode::Shared { "shared" } else { "per-request" },
                        "timeout_ms": p.spec.timeout.as_millis() as u64,
                        "max_memory": p.spec.max_memory,
                        "max_body": p.spec.max_body,
                    })
                })
                .collect();
            json!({"registry": &*r.name, "plugins": plugins})
        })
        .collect();
    json!({"generation": generation.number, "registries": registries})
}
