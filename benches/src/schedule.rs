//! The open-loop arrival schedule: when the n-th request is *due*.
//!
//! Arrivals are a pure function of `n`, computed by inverting the cumulative
//! request count of a piecewise-linear rate (constant stages and ramps). The
//! load loop measures latency from this intended time, never from when a
//! busy connection got round to sending, so a stall cannot hide itself by
//! slowing the client down (coordinated omission).

use std::time::Duration;

/// One stage: the rate goes linearly from `from` to `to` req/s over
/// `duration` (equal for a constant rate).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stage {
    pub duration: Duration,
    pub from: f64,
    pub to: f64,
}

impl Stage {
    /// Requests due within the first `t` seconds of the stage.
    fn count_at(&self, t: f64) -> f64 {
        let d = self.duration.as_secs_f64();
        let slope = (self.to - self.from) / d;
        self.from * t + slope * t * t / 2.0
    }

    /// Inverse of `count_at`: the time in the stage the `k`-th request
    /// (fractional) falls due. `k` must be below the stage's total.
    fn time_of(&self, k: f64) -> f64 {
        let d = self.duration.as_secs_f64();
        let slope = (self.to - self.from) / d;
        if slope.abs() < 1e-12 {
            return k / self.from;
        }
        // slope/2 t^2 + from t - k = 0; the root in [0, d].
        let disc = (self.from * self.from + 2.0 * slope * k).max(0.0);
        ((disc.sqrt() - self.from) / slope).clamp(0.0, d)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Schedule {
    stages: Vec<Stage>,
    /// Cumulative requests at the start of each stage, plus the total.
    starts: Vec<f64>,
}

impl Schedule {
    pub fn new(stages: Vec<Stage>) -> Self {
        let mut starts = vec![0.0];
        for s in &stages {
            let last = *starts.last().expect("starts with 0");
            starts.push(last + s.count_at(s.duration.as_secs_f64()));
        }
        Self { stages, starts }
    }

    /// A single constant-rate stage.
    pub fn constant(rate: f64, duration: Duration) -> Self {
        Self::new(vec![Stage { duration, from: rate, to: rate }])
    }

    pub fn duration(&self) -> Duration {
        self.stages.iter().map(|s| s.duration).sum()
    }

    /// Every request the schedule holds (rounded down).
    pub fn total(&self) -> u64 {
        *self.starts.last().expect("never empty") as u64
    }

    /// When request `n` (0-based) is due, as an offset from the start, or
    /// `None` past the end. Request 0 is due at once.
    pub fn due(&self, n: u64) -> Option<Duration> {
        let k = n as f64;
        let mut offset = Duration::ZERO;
        for (i, stage) in self.stages.iter().enumerate() {
            if k < self.starts[i + 1] {
                let t = stage.time_of(k - self.starts[i]);
                return Some(offset + Duration::from_secs_f64(t));
            }
            offset += stage.duration;
        }
        None
    }

    /// Requests due strictly before `t` (for counting the unsent).
    pub fn due_before(&self, t: Duration) -> u64 {
        let mut left = t.as_secs_f64();
        for (i, stage) in self.stages.iter().enumerate() {
            let d = stage.duration.as_secs_f64();
            if left <= d {
                return (self.starts[i] + stage.count_at(left)).ceil() as u64;
            }
            left -= d;
        }
        self.total()
    }

    /// The intended rate at offset `t` (0 past the end), for the plot.
    pub fn rate_at(&self, t: Duration) -> f64 {
        let mut left = t.as_secs_f64();
        for stage in &self.stages {
            let d = stage.duration.as_secs_f64();
            if left < d {
                return stage.from + (stage.to - stage.from) * left / d;
            }
            left -= d;
        }
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    #[test]
    fn constant_rate_is_evenly_spaced() {
        let s = Schedule::constant(100.0, secs(2.0));
        assert_eq!(s.total(), 200);
        assert_eq!(s.due(0), Some(Duration::ZERO));
        assert_eq!(s.due(1), Some(secs(0.01)));
        assert!(s.due(150).unwrap().abs_diff(secs(1.5)) < Duration::from_micros(1));
        assert_eq!(s.due(200), None);
        assert_eq!(s.due_before(secs(1.0)), 100);
    }

    #[test]
    fn ramp_puts_more_requests_at_the_high_end() {
        // 0 -> 200 req/s over 2 s: 200 requests, a quarter in the first second.
        let s = Schedule::new(vec![Stage { duration: secs(2.0), from: 0.0, to: 200.0 }]);
        assert_eq!(s.total(), 200);
        assert_eq!(s.due_before(secs(1.0)), 50);
        // The 50th request falls due at 1 s: 100 t^2 / 2 = 50.
        assert!(s.due(50).unwrap().abs_diff(secs(1.0)) < Duration::from_micros(10));
        assert!((s.rate_at(secs(0.5)) - 50.0).abs() < 1e-9);
    }

    #[test]
    fn stages_chain_and_arrivals_never_go_backwards() {
        let s = Schedule::new(vec![
            Stage { duration: secs(1.0), from: 10.0, to: 10.0 },
            Stage { duration: secs(2.0), from: 10.0, to: 50.0 },
            Stage { duration: secs(1.0), from: 50.0, to: 5.0 },
        ]);
        assert_eq!(s.duration(), secs(4.0));
        // 10 + (10+50)/2*2 + (50+5)/2 = 10 + 60 + 27.5
        assert_eq!(s.total(), 97);
        let mut last = Duration::ZERO;
        for n in 0..s.total() {
            let due = s.due(n).unwrap();
            assert!(due >= last, "request {n} due before {}", n - 1);
            last = due;
        }
        assert!(last < secs(4.0));
        assert_eq!(s.due_before(secs(1.0)), 10);
        assert_eq!(s.due_before(secs(3.0)), 70);
    }
}
