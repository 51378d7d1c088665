//! The live progress line on stderr, once a second: what the last full
//! second looked like, so an operator rehearsing a peak sees a failover or a
//! saturation as it happens.

use std::sync::Arc;
use std::time::Duration;

use crate::runner::{lock, Shared};
use crate::scenario::Scenario;

pub async fn run(shared: Arc<Shared>, scenario: Scenario) {
    let mut tick =
        tokio::time::interval_at((shared.start + Duration::from_secs(1)).into(), Duration::from_secs(1));
    loop {
        tick.tick().await;
        let elapsed = shared.start.elapsed().as_secs() as usize;
        let Some(second) = elapsed.checked_sub(1) else { continue };
        let row = lock(&shared).seconds(elapsed).swap_remove(second);
        let sites: Vec<String> =
            row.by_site.iter().filter(|(_, n)| *n > 0).map(|(s, n)| format!("{s}={n}")).collect();
        eprintln!(
            "[{:>4}s/{}s] {:>7} done  {:>5} failed  p50 {:>8.3} ms  p99 {:>8.3} ms  {}",
            elapsed,
            scenario.load.duration().as_secs(),
            row.completed,
            row.failed,
            row.p50_us as f64 / 1000.0,
            row.p99_us as f64 / 1000.0,
            sites.join(" ")
        );
    }
}
