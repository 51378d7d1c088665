//! Request coalescing: the first miss for a key fetches; identical misses
//! that arrive meanwhile wait for it (bounded) and then read the cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

#[derive(Default)]
pub struct InFlight {
    map: Arc<Mutex<HashMap<String, watch::Receiver<()>>>>,
}

/// Whether this request fetches or waits for another that does.
pub enum Join {
    Leader(Leader),
    Follower(watch::Receiver<()>),
}

/// Held by the fetching request; dropping it (stored, failed, or
/// cancelled) lets the followers go on.
pub struct Leader {
    map: Arc<Mutex<HashMap<String, watch::Receiver<()>>>>,
    key: String,
    _done: watch::Sender<()>,
}

impl Drop for Leader {
    fn drop(&mut self) {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
    }
}

impl InFlight {
    pub fn join(&self, key: &str) -> Join {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = map.get(key) {
            return Join::Follower(rx.clone());
        }
        let (tx, rx) = watch::channel(());
        map.insert(key.to_string(), rx);
        Join::Leader(Leader { map: self.map.clone(), key: key.to_string(), _done: tx })
    }

    /// True when a fetch for `key` is already running.
    pub fn busy(&self, key: &str) -> bool {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).contains_key(key)
    }
}

/// Waits until the leader is done (its sender dropped) or `timeout`.
pub async fn wait(mut rx: watch::Receiver<()>, timeout: Duration) {
    // changed() errs once the sender is gone: that is the signal.
    let _ = tokio::time::timeout(timeout, async { while rx.changed().await.is_ok() {} }).await;
}
