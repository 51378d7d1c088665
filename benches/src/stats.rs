//! Per-task measurement state, merged once at the end of a run.
//!
//! Each connection task owns its own `Stats` so the hot path never touches a
//! lock or a shared cache line; the cost of merging is paid once.

use std::time::Duration;

use hdrhistogram::Histogram;
use http::StatusCode;
use serde::Serialize;

/// Why a request produced no response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// TCP connect or protocol handshake failed.
    Connect,
    /// The connection broke while sending or reading a response.
    Io,
    /// No complete response within the per-request timeout.
    Timeout,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Errors {
    pub connect: u64,
    pub io: u64,
    pub timeout: u64,
}

impl Errors {
    pub fn total(&self) -> u64 {
        self.connect + self.io + self.timeout
    }

    fn add(&mut self, kind: ErrorKind) {
        match kind {
            ErrorKind::Connect => self.connect += 1,
            ErrorKind::Io => self.io += 1,
            ErrorKind::Timeout => self.timeout += 1,
        }
    }

    fn merge(&mut self, other: &Errors) {
        self.connect += other.connect;
        self.io += other.io;
        self.timeout += other.timeout;
    }
}

/// Responses by status class. `other` catches codes outside 200-599 so the
/// classes always add up to the request count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StatusClasses {
    #[serde(rename = "2xx")]
    pub s2xx: u64,
    #[serde(rename = "3xx")]
    pub s3xx: u64,
    #[serde(rename = "4xx")]
    pub s4xx: u64,
    #[serde(rename = "5xx")]
    pub s5xx: u64,
    pub other: u64,
}

impl StatusClasses {
    fn add(&mut self, status: StatusCode) {
        match status.as_u16() / 100 {
            2 => self.s2xx += 1,
            3 => self.s3xx += 1,
            4 => self.s4xx += 1,
            5 => self.s5xx += 1,
            _ => self.other += 1,
        }
    }

    fn merge(&mut self, other: &StatusClasses) {
        self.s2xx += other.s2xx;
        self.s3xx += other.s3xx;
        self.s4xx += other.s4xx;
        self.s5xx += other.s5xx;
        self.other += other.other;
    }

    pub fn total(&self) -> u64 {
        self.s2xx + self.s3xx + self.s4xx + self.s5xx + self.other
    }
}

#[derive(Clone, Debug)]
pub struct Stats {
    /// Latency in microseconds. Auto-resizing, so one pathological outlier
    /// (an open-loop backlog of seconds) is still recorded exactly rather
    /// than clamped to an arbitrary ceiling.
    pub latency_us: Histogram<u64>,
    pub status: StatusClasses,
    pub errors: Errors,
    /// Connections replaced after the peer closed them or they failed.
    pub reconnects: u64,
    /// Open loop only: requests that fell due but were not sent by the end
    /// of the run because the target could not keep up with the rate.
    pub unsent: u64,
    pub body_bytes: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    pub fn new() -> Self {
        Self {
            // Three significant digits: 0.1% error, the usual HdrHistogram choice.
            latency_us: Histogram::new(3).expect("3 significant digits is a valid precision"),
            status: StatusClasses::default(),
            errors: Errors::default(),
            reconnects: 0,
            unsent: 0,
            body_bytes: 0,
        }
    }

    pub fn record_response(&mut self, status: StatusCode, latency: Duration, body_bytes: u64) {
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        if self.latency_us.record(micros).is_err() {
            self.latency_us.saturating_record(micros);
        }
        self.status.add(status);
        self.body_bytes += body_bytes;
    }

    pub fn record_error(&mut self, kind: ErrorKind) {
        self.errors.add(kind);
    }

    pub fn requests(&self) -> u64 {
        self.latency_us.len()
    }

    pub fn merge(&mut self, other: &Stats) -> anyhow::Result<()> {
        self.latency_us
            .add(&other.latency_us)
            .map_err(|e| anyhow::anyhow!("merging latency histograms: {e:?}"))?;
        self.status.merge(&other.status);
        self.errors.merge(&other.errors);
        self.reconnects += other.reconnects;
        self.unsent += other.unsent;
        self.body_bytes += other.body_bytes;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_add_up_to_requests() {
        let mut stats = Stats::new();
        for code in [200, 204, 301, 404, 429, 500, 503, 102] {
            let status = StatusCode::from_u16(code).unwrap();
            stats.record_response(status, Duration::from_micros(10), 5);
        }
        let s = stats.status;
        assert_eq!((s.s2xx, s.s3xx, s.s4xx, s.s5xx, s.other), (2, 1, 2, 2, 1));
        assert_eq!(s.total(), stats.requests());
        assert_eq!(stats.body_bytes, 40);
    }

    #[test]
    fn merge_combines_everything() {
        let mut a = Stats::new();
        let mut b = Stats::new();
        a.record_response(StatusCode::OK, Duration::from_millis(1), 10);
        b.record_response(StatusCode::OK, Duration::from_secs(30), 10);
        b.record_error(ErrorKind::Timeout);
        b.record_error(ErrorKind::Connect);
        b.reconnects = 2;
        a.merge(&b).unwrap();
        assert_eq!(a.requests(), 2);
        assert_eq!(a.status.s2xx, 2);
        assert_eq!(a.errors.total(), 2);
        assert_eq!(a.errors.timeout, 1);
        assert_eq!(a.reconnects, 2);
        // The auto-resized histogram keeps the 30 s outlier to within 0.1%.
        let max = a.latency_us.max();
        assert!(max.abs_diff(30_000_000) <= 30_000, "max {max}");
    }
}
