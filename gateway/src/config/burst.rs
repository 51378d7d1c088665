//! `[registries.NAME.burst]`: rate limits, priority classes, the per-site
//! concurrency limit with its bounded queue, the adaptive limit and
//! spill-over. File structs, their compile step and the runtime form.

use std::time::Duration;

use http::{HeaderName, Method};
use serde::Deserialize;

use super::error::Errors;
use super::parse;

/// `[registries.NAME.burst]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BurstFile {
    /// Whole-registry token bucket.
    pub rate: Option<RateFile>,
    /// Token bucket per client identity (see `client_key`).
    pub client_rate: Option<RateFile>,
    /// Who a client is: `"ip"` (default), `"header:NAME"` or `"cookie:NAME"`.
    pub client_key: Option<String>,
    /// Requests in flight per site; absent: no concurrency limit.
    pub max_in_flight: Option<u32>,
    /// Requests that may wait for a slot, per site (default 4 x max_in_flight).
    pub queue: Option<u32>,
    /// Longest wait for a slot before 503 (default 1s).
    pub queue_timeout: Option<String>,
    /// Seconds sent in Retry-After when shedding (default 1).
    pub retry_after: Option<u32>,
    /// Find the limit from latency (Gradient2); `max_in_flight` is the start.
    pub adaptive: Option<AdaptiveFile>,
    /// Overflow reads to a healthy, fresh-enough embassy.
    pub spill: Option<SpillFile>,
    /// Highest priority first; a request takes the first class that matches.
    #[serde(default)]
    pub classes: Vec<ClassFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateFile {
    pub per_second: u32,
    /// Requests allowed at once above the steady rate (default = per_second).
    pub burst: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveFile {
    pub min_limit: Option<u32>,
    pub max_limit: Option<u32>,
    /// How much latency may grow over the long-term average before the
    /// limit shrinks (Gradient2's rtt tolerance; default 1.5).
    pub tolerance: Option<f64>,
    /// Weight of each new estimate (default 0.2).
    pub smoothing: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpillFile {
    /// Home counts as saturated when this many requests wait (default 1).
    pub queue_depth: Option<u32>,
    /// ... or when its recent latency is above this.
    pub latency: Option<String>,
    /// A replica embassy is fresh enough when its max lag is within this;
    /// absent: only live embassies take overflow. Snapshots never do.
    pub max_lag: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassFile {
    pub name: String,
    /// Share of each site's slots kept for this class (0..1).
    pub share: Option<f64>,
    /// Methods that match (any when empty).
    #[serde(default)]
    pub methods: Vec<String>,
    /// Path prefixes as clients send them (any when empty).
    #[serde(default)]
    pub prefixes: Vec<String>,
}

/// Compiled burst policy of one registry.
#[derive(Debug, Clone, PartialEq)]
pub struct BurstSettings {
    pub rate: Option<Rate>,
    pub client_rate: Option<Rate>,
    pub client_key: ClientKey,
    pub concurrency: Option<Concurrency>,
    pub retry_after: u32,
    pub spill: Option<Spill>,
    /// Never empty: a catch-all `default` class ends the list.
    pub classes: Vec<Class>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub per_second: u32,
    pub burst: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientKey {
    Ip,
    Header(HeaderName),
    Cookie(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Concurrency {
    pub max_in_flight: u32,
    pub queue: u32,
    pub queue_timeout: Duration,
    pub adaptive: Option<Adaptive>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Adaptive {
    pub min_limit: u32,
    pub max_limit: u32,
    pub tolerance: f64,
    pub smoothing: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Spill {
    pub queue_depth: u32,
    pub latency: Option<Duration>,
    pub max_lag: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Class {
    pub name: String,
    pub share: f64,
    pub methods: Vec<Method>,
    pub prefixes: Vec<String>,
}

pub(crate) fn compile(file: &BurstFile, path: &str, errors: &mut Errors) -> BurstSettings {
    let key = |k: &str| format!("{path}.{k}");
    let rate = file.rate.as_ref().and_then(|r| compile_rate(r, &key("rate"), errors));
    let client_rate = file.client_rate.as_ref().and_then(|r| compile_rate(r, &key("client_rate"), errors));
    let client_key = errors
        .check(&key("client_key"), client_key(file.client_key.as_deref().unwrap_or("ip")))
        .unwrap_or(ClientKey::Ip);
    let concurrency = compile_concurrency(file, path, errors);
    let spill = file.spill.as_ref().map(|s| compile_spill(s, &key("spill"), errors));
    if spill.is_some() && concurrency.is_none() {
        errors.push(key("spill"), "spill-over needs max_in_flight to know when home is saturated");
    }
    let mut classes: Vec<Class> = file
        .classes
        .iter()
        .enumerate()
        .map(|(i, c)| compile_class(c, &format!("{path}.classes[{i}]"), errors))
        .collect();
    let total: f64 = classes.iter().map(|c| c.share).sum();
    if total > 1.0 {
        errors.push(key("classes"), format!("reserved shares add up to {total:.2}: must be at most 1"));
    }
    if !classes.iter().any(|c| c.methods.is_empty() && c.prefixes.is_empty()) {
        classes.push(Class { name: "default".into(), share: 0.0, methods: vec![], prefixes: vec![] });
    }
    BurstSettings {
        rate,
        client_rate,
        client_key,
        concurrency,
        retry_after: file.retry_after.unwrap_or(1),
        spill,
        classes,
    }
}

fn compile_rate(file: &RateFile, path: &str, errors: &mut Errors) -> Option<Rate> {
    if file.per_second == 0 {
        errors.push(format!("{path}.per_second"), "must be at least 1");
        return None;
    }
    let burst = file.burst.unwrap_or(file.per_second);
    if burst == 0 {
        errors.push(format!("{path}.burst"), "must be at least 1");
        return None;
    }
    Some(Rate { per_second: file.per_second, burst })
}

fn client_key(text: &str) -> Result<ClientKey, String> {
    let bad = || format!("invalid client key \"{text}\": use ip, header:NAME or cookie:NAME");
    match text.split_once(':') {
        None if text == "ip" => Ok(ClientKey::Ip),
        Some(("header", name)) => {
            HeaderName::from_bytes(name.as_bytes()).map(ClientKey::Header).map_err(|_| bad())
        }
        Some(("cookie", name)) if !name.is_empty() && !name.contains([';', '=', ' ']) => {
            Ok(ClientKey::Cookie(name.to_string()))
        }
        _ => Err(bad()),
    }
}

fn compile_concurrency(file: &BurstFile, path: &str, errors: &mut Errors) -> Option<Concurrency> {
    let key = |k: &str| format!("{path}.{k}");
    let Some(max) = file.max_in_flight else {
        for (k, set) in [("queue", file.queue.is_some()), ("queue_timeout", file.queue_timeout.is_some())] {
            if set {
                errors.push(key(k), "needs max_in_flight");
            }
        }
        if file.adaptive.is_some() {
            errors.push(key("adaptive"), "needs max_in_flight (the starting limit)");
        }
        return None;
    };
    if max == 0 {
        errors.push(key("max_in_flight"), "must be at least 1");
    }
    let queue_timeout = file
        .queue_timeout
        .as_deref()
        .and_then(|t| errors.check(&key("queue_timeout"), parse::duration(t)))
        .unwrap_or(Duration::from_secs(1));
    let adaptive = file.adaptive.as_ref().map(|a| compile_adaptive(a, max, &key("adaptive"), errors));
    Some(Concurrency {
        max_in_flight: max.max(1),
        queue: file.queue.unwrap_or(max.saturating_mul(4)),
        queue_timeout,
        adaptive,
    })
}

fn compile_adaptive(file: &AdaptiveFile, start: u32, path: &str, errors: &mut Errors) -> Adaptive {
    let min_limit = file.min_limit.unwrap_or(1).max(1);
    let max_limit = file.max_limit.unwrap_or(start.saturating_mul(4).max(min_limit));
    if max_limit < min_limit {
        errors.push(format!("{path}.max_limit"), "must not be below min_limit");
    }
    let tolerance = file.tolerance.unwrap_or(1.5);
    if !(1.0..=10.0).contains(&tolerance) {
        errors.push(
            format!("{path}.tolerance"),
            format!("invalid tolerance {tolerance}: must be between 1 and 10"),
        );
    }
    let smoothing = file.smoothing.unwrap_or(0.2);
    if !(smoothing > 0.0 && smoothing <= 1.0) {
        errors.push(format!("{path}.smoothing"), format!("invalid smoothing {smoothing}: must be in (0, 1]"));
    }
    Adaptive { min_limit, max_limit, tolerance, smoothing }
}

fn compile_spill(file: &SpillFile, path: &str, errors: &mut Errors) -> Spill {
    let d = |errors: &mut Errors, k: &str, v: &Option<String>| {
        v.as_deref().and_then(|t| errors.check(&format!("{path}.{k}"), parse::duration(t)))
    };
    Spill {
        queue_depth: file.queue_depth.unwrap_or(1),
        latency: d(errors, "latency", &file.latency),
        max_lag: d(errors, "max_lag", &file.max_lag),
    }
}

fn compile_class(file: &ClassFile, path: &str, errors: &mut Errors) -> Class {
    let share = file.share.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&share) {
        errors.push(format!("{path}.share"), "must be between 0 and 1");
    }
    if file.name.is_empty() {
        errors.push(format!("{path}.name"), "a class needs a name");
    }
    let mut methods = Vec::new();
    for (i, m) in file.methods.iter().enumerate() {
        let parsed = Method::from_bytes(m.to_ascii_uppercase().as_bytes())
            .map_err(|_| format!("invalid method \"{m}\""));
        methods.extend(errors.check(&format!("{path}.methods[{i}]"), parsed));
    }
    for (i, p) in file.prefixes.iter().enumerate() {
        if !p.starts_with('/') {
            errors
                .push(format!("{path}.prefixes[{i}]"), format!("invalid prefix \"{p}\": must start with /"));
        }
    }
    Class { name: file.name.clone(), share: share.clamp(0.0, 1.0), methods, prefixes: file.prefixes.clone() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_key_path_of_each_class() {
        let file: BurstFile = toml::from_str(
            "max_in_flight = 4\nclasses = [{ name = \"submit\", share = 0.5 }, { name = \"browse\", share = 1.5 }]",
        )
        .unwrap();
        let mut errors = Errors::default();
        compile(&file, "registries.tax.burst", &mut errors);
        let text = errors.finish(()).unwrap_err().to_string();
        assert!(text.contains("registries.tax.burst.classes[1].share: must be between 0 and 1"), "{text}");
    }

    #[test]
    fn a_catch_all_class_ends_the_list() {
        let file: BurstFile =
            toml::from_str("classes = [{ name = \"submit\", methods = [\"post\"] }]").unwrap();
        let mut errors = Errors::default();
        let b = compile(&file, "b", &mut errors);
        assert_eq!(b.classes.len(), 2);
        assert_eq!(b.classes[0].methods, vec![Method::POST]);
        assert_eq!(b.classes[1].name, "default");
    }
}
