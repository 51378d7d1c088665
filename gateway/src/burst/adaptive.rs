//! An adaptive concurrency limit in the manner of Netflix's Gradient2:
//! compare the recent latency with a slowly moving long-term average. While
//! the site keeps up, latency stays near the average and the limit grows by
//! a small queue allowance (sqrt of the limit); once requests start to
//! queue inside the site, recent latency rises above `tolerance` times the
//! average and the limit shrinks in proportion.

use std::time::Duration;

use crate::config::burst::Adaptive;

#[derive(Debug)]
pub struct Gradient2 {
    limit: f64,
    min: f64,
    max: f64,
    tolerance: f64,
    smoothing: f64,
    /// Exponentially weighted latency, seconds: fast and slow.
    short: f64,
    long: f64,
    samples: u64,
}

/// Weights of the short and long averages (about 10 and 200 samples).
const SHORT_WEIGHT: f64 = 0.1;
const LONG_WEIGHT: f64 = 0.005;

impl Gradient2 {
    pub fn new(cfg: &Adaptive, start: u32) -> Gradient2 {
        let (min, max) = (f64::from(cfg.min_limit), f64::from(cfg.max_limit));
        Gradient2 {
            limit: f64::from(start).clamp(min, max),
            min,
            max,
            tolerance: cfg.tolerance,
            smoothing: cfg.smoothing,
            short: 0.0,
            long: 0.0,
            samples: 0,
        }
    }

    /// Feeds one completed request's latency, with how many requests were in
    /// flight when it completed; returns the new limit.
    pub fn sample(&mut self, rtt: Duration, in_flight: usize) -> usize {
        let rtt = rtt.as_secs_f64().max(1e-6);
        self.samples += 1;
        if self.samples == 1 {
            (self.short, self.long) = (rtt, rtt);
        } else {
            self.short += (rtt - self.short) * SHORT_WEIGHT;
            self.long += (rtt - self.long) * LONG_WEIGHT;
        }
        // A long-lasting rise would drag the average up with it and hide the
        // queueing; let the average fall back faster than it rises.
        if self.long / self.short > 2.0 {
            self.long *= 0.95;
        }
        // Too little traffic to learn anything about the limit.
        if (in_flight as f64) < self.limit / 2.0 {
            return self.current();
        }
        let gradient = (self.tolerance * self.long / self.short).clamp(0.5, 1.0);
        let next = self.limit * gradient + self.limit.sqrt();
        self.limit = (self.limit * (1.0 - self.smoothing) + next * self.smoothing).clamp(self.min, self.max);
        self.current()
    }

    pub fn current(&self) -> usize {
        self.limit.round() as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g() -> Gradient2 {
        Gradient2::new(&Adaptive { min_limit: 2, max_limit: 100, tolerance: 1.5, smoothing: 0.2 }, 10)
    }

    #[test]
    fn grows_while_latency_holds_and_shrinks_when_it_climbs() {
        let mut g = g();
        for _ in 0..200 {
            g.sample(Duration::from_millis(10), g.current());
        }
        let grown = g.current();
        assert!(grown > 10, "limit grew to {grown}");
        for _ in 0..50 {
            g.sample(Duration::from_millis(60), g.current());
        }
        assert!(g.current() < grown, "limit shrank from {grown} to {}", g.current());
    }

    #[test]
    fn does_not_grow_without_traffic() {
        let mut g = g();
        for _ in 0..100 {
            g.sample(Duration::from_millis(10), 1);
        }
        assert_eq!(g.current(), 10);
    }
}
