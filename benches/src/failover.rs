//! Failover figures from the timeline: how long after the home site went
//! down the first response came from another site, how many requests failed
//! meanwhile, and how long until failures stopped.
//!
//! Times come from 1 ms slots of completion time, so they are exact to one
//! slot. The clock starts when the "down" event's request was *sent*.

use serde::Serialize;

use crate::events::EventResult;
use crate::scenario::Failover;
use crate::timeline::{Timeline, SLOT};

#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct FailoverReport {
    pub down_at_ms: u64,
    /// Home down -> first response served by another site.
    pub first_other_site_ms: Option<u64>,
    /// Failed requests (errors or 5xx) from home down to that first response.
    pub failed_until_other_site: u64,
    /// Failed requests from home down until it came back (or the end).
    pub failed_while_down: u64,
    /// Home down -> the first response from another site after the last
    /// failure while home was down (or after the down, if nothing failed):
    /// how long citizens waited for service, stalls included.
    pub recovered_ms: Option<u64>,
    /// Failed requests before home went down (should be 0).
    pub failed_before_down: u64,
    pub up_at_ms: Option<u64>,
    /// Home up -> first response served by home again.
    pub back_home_ms: Option<u64>,
}

fn sent(events: &[EventResult], name: &str) -> Option<u64> {
    events.iter().find(|e| e.name == name).and_then(|e| e.sent_ms)
}

pub fn analyse(spec: &Failover, events: &[EventResult], t: &Timeline) -> Option<FailoverReport> {
    let slot_ms = SLOT.as_millis() as u64;
    let down_at_ms = sent(events, &spec.down_event)?;
    let up_at_ms = spec.up_event.as_deref().and_then(|n| sent(events, n));
    let down = (down_at_ms / slot_ms) as usize;
    let end = t.slots();
    let up = up_at_ms.map_or(end, |u| (u / slot_ms) as usize);
    let since_down = |slot: usize| (slot as u64 * slot_ms).saturating_sub(down_at_ms);
    let first_other = (down..end).find(|&s| t.other_sites_at(&spec.home_site, s) > 0);
    let failed = |from: usize, to: usize| (from..to).map(|s| u64::from(t.failed_at(s))).sum::<u64>();
    let last_failure = (down..up.min(end)).rev().find(|&s| t.failed_at(s) > 0);
    // A success still from home in the instant before the cut is no recovery:
    // recovered means another site answering with no failure after it.
    let recovered =
        (last_failure.map_or(down, |s| s + 1)..end).find(|&s| t.other_sites_at(&spec.home_site, s) > 0);
    let back_home = up_at_ms.and_then(|u| {
        let up_slot = (u / slot_ms) as usize;
        (up_slot..end)
            .find(|&s| t.site_at(&spec.home_site, s) > 0)
            .map(|s| (s as u64 * slot_ms).saturating_sub(u))
    });
    Some(FailoverReport {
        down_at_ms,
        first_other_site_ms: first_other.map(since_down),
        failed_until_other_site: failed(down, first_other.map_or(end, |s| s + 1)),
        failed_while_down: failed(down, up.min(end)),
        recovered_ms: recovered.map(since_down),
        failed_before_down: failed(0, down),
        up_at_ms,
        back_home_ms: back_home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timeline::Sample;
    use std::time::Duration;

    fn record(t: &mut Timeline, ms: u64, failed: bool, site: Option<&str>) {
        t.record(&Sample { at: Duration::from_millis(ms), class: 0, failed, latency: None, site });
    }

    fn event(name: &str, ms: u64) -> EventResult {
        EventResult { name: name.into(), at_ms: ms, sent_ms: Some(ms), outcome: "200".into() }
    }

    #[test]
    fn measures_failover_failures_and_failback() {
        let mut t = Timeline::new(1);
        for ms in (0..1000).step_by(20) {
            record(&mut t, ms, false, Some("home"));
        }
        // Down at 1000 ms: three failures, embassy from 1250 ms, home back at 3000.
        for ms in [1005, 1100, 1200] {
            record(&mut t, ms, true, None);
        }
        for ms in (1250..3100).step_by(50) {
            record(&mut t, ms, false, Some("embassy-lu"));
        }
        record(&mut t, 3120, false, Some("home"));
        let spec =
            Failover { home_site: "home".into(), down_event: "down".into(), up_event: Some("up".into()) };
        let r = analyse(&spec, &[event("down", 1000), event("up", 3000)], &t).unwrap();
        assert_eq!(r.first_other_site_ms, Some(250));
        assert_eq!(r.failed_until_other_site, 3);
        assert_eq!(r.failed_while_down, 3);
        assert_eq!(r.recovered_ms, Some(250));
        assert_eq!(r.failed_before_down, 0);
        assert_eq!(r.back_home_ms, Some(120));
    }

    #[test]
    fn no_analysis_when_the_down_event_was_not_sent() {
        let spec = Failover { home_site: "home".into(), down_event: "down".into(), up_event: None };
        assert_eq!(analyse(&spec, &[], &Timeline::new(1)), None);
    }
}
