//! Timed events beside the load: plain HTTP requests at given offsets, such
//! as the demo switchboard's `POST /sites/population/home/down`.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::conn::Conn;
use crate::scenario::Event;
use crate::target::Target;

#[derive(Clone, Debug, Serialize)]
pub struct EventResult {
    pub name: String,
    /// Planned offset from the start of the run, ms.
    pub at_ms: u64,
    /// When the request was actually sent, ms from the start.
    pub sent_ms: Option<u64>,
    /// The response status, or why there was none.
    pub outcome: String,
}

/// Fires each event at its offset, one at a time in time order, on a fresh
/// connection. An event due after `end` is not sent (and says so).
pub async fn fire_events(
    mut events: Vec<Event>,
    start: Instant,
    end: Instant,
    timeout: Duration,
) -> Vec<EventResult> {
    events.sort_by_key(|e| e.at);
    let mut results = Vec::new();
    for event in events {
        let at_ms = event.at.as_millis() as u64;
        let due = start + event.at;
        if due >= end {
            results.push(EventResult {
                name: event.name,
                at_ms,
                sent_ms: None,
                outcome: "not sent: after the end of the run".into(),
            });
            continue;
        }
        tokio::time::sleep_until(due.into()).await;
        let sent_ms = Some(start.elapsed().as_millis() as u64);
        let outcome = match send(&event, timeout).await {
            Ok(status) => status,
            Err(e) => format!("failed: {e:#}"),
        };
        results.push(EventResult { name: event.name, at_ms, sent_ms, outcome });
    }
    results
}

async fn send(event: &Event, timeout: Duration) -> anyhow::Result<String> {
    let target = Target::new(&event.url, event.method.as_str(), &[], false)?.with_body(event.body.clone());
    let mut conn = Conn::open(&target, timeout).await.map_err(|k| anyhow::anyhow!("{k:?}"))?;
    let done = tokio::time::timeout(timeout, conn.exchange(target.request()))
        .await
        .map_err(|_| anyhow::anyhow!("timed out"))?
        .map_err(|k| anyhow::anyhow!("{k:?}"))?;
    Ok(done.status.as_u16().to_string())
}
