//! A small humantime-like duration parser for the command line.
//!
//! Hand-written rather than `humantime` so the accepted grammar is exactly
//! what the benchmark scripts use, and so an over-long run is refused up
//! front instead of silently tying up a shared machine.

use std::time::Duration;

/// Longest run or warmup accepted: longer runs add no precision to a
/// loopback benchmark and would only starve the other jobs on the machine.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 60);

/// Parses "500ms", "10s", "2m", decimals ("1.5s") and sums ("1m30s").
///
/// A unit is required: a bare "10" is ambiguous between seconds and
/// milliseconds, and guessing wrong makes a run 1000x too long or short.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let text = input.trim();
    if text.is_empty() {
        return Err("empty duration (expected e.g. 500ms, 10s, 2m)".into());
    }
    let mut rest = text;
    let mut micros: f64 = 0.0;
    while !rest.is_empty() {
        let (value, after_number) =
            split_number(rest).ok_or_else(|| format!("{input:?}: expected a number at {rest:?}"))?;
        let unit_len =
            after_number.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after_number.len());
        let (unit, next) = after_number.split_at(unit_len);
        micros += value
            * unit_micros(unit.trim())
                .ok_or_else(|| format!("{input:?}: unknown unit {unit:?} (use ms, s or m)"))?;
        rest = next.trim_start();
    }
    // Compare before converting: Duration::from_secs_f64 panics on huge input.
    if micros > MAX_DURATION.as_micros() as f64 {
        return Err(format!("{input:?}: longer than the 10m maximum"));
    }
    Ok(Duration::from_micros(micros.round() as u64))
}

fn split_number(text: &str) -> Option<(f64, &str)> {
    let end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, rest) = text.split_at(end);
    let value: f64 = number.parse().ok()?;
    value.is_finite().then_some((value, rest))
}

fn unit_micros(unit: &str) -> Option<f64> {
    match unit {
        "us" | "µs" => Some(1.0),
        "ms" => Some(1_000.0),
        "s" | "sec" | "secs" => Some(1_000_000.0),
        "m" | "min" | "mins" => Some(60_000_000.0),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration(" 1s "), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn parses_decimals_and_sums() {
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("0.3s"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1s 250ms"), Ok(Duration::from_millis(1250)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn caps_at_ten_minutes() {
        assert_eq!(parse_duration("10m"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("600s"), Ok(MAX_DURATION));
        assert!(parse_duration("601s").is_err());
        assert!(parse_duration("10m1ms").is_err());
        assert!(parse_duration("99999999999999999999999m").is_err());
    }

    #[test]
    fn rejects_malformed_input() {
        for bad in ["", "10", "s", "10h", "ten s", "1..5s", "-1s", "5 parsecs"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }
}
