//! Reload on a changed plugin file: the plugin files of the serving
//! configuration are polled (modification time and size); a change reloads
//! the whole configuration file, exactly as SIGHUP does, so the same checks
//! apply and a file that fails to load leaves the old chain serving.
//!
//! Polling rather than inotify: a handful of `stat` calls a second costs
//! nothing, needs no extra dependency, and works on every filesystem.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::proxy::Gateway;

type Stamps = Vec<(PathBuf, Option<(SystemTime, u64)>)>;

fn stamps(gateway: &Gateway) -> Stamps {
    let config = gateway.config();
    let paths = config.registries.iter().flat_map(|r| r.plugins.plugins.iter().map(|p| p.spec.path.clone()));
    paths
        .map(|path| {
            let stamp = std::fs::metadata(&path).ok().and_then(|m| Some((m.modified().ok()?, m.len())));
            (path, stamp)
        })
        .collect()
}

/// Runs until the runtime ends; checks every `every`.
pub async fn watch(gateway: Arc<Gateway>, every: Duration) {
    let mut seen = stamps(&gateway);
    loop {
        tokio::time::sleep(every).await;
        let now = stamps(&gateway);
        // A reload can change the set of files too: compare like with like.
        let changed: Vec<_> = now.iter().filter(|s| seen.iter().any(|o| o.0 == s.0 && o.1 != s.1)).collect();
        if !changed.is_empty() {
            let files: Vec<_> = changed.iter().map(|(p, _)| p.display().to_string()).collect();
            tracing::info!(?files, "plugin file changed: reloading the configuration");
            // Refused reloads are logged and counted by the gateway.
            let _ = gateway.reload_source();
        }
        seen = stamps(&gateway);
    }
}
