//! Scenario files: what load to offer, to which targets, with which request
//! mix and which timed events (a site going down, coming back).
//!
//! Two layers, as in the gateway's config: serde file structs with
//! `deny_unknown_fields`, then one `compile` that validates everything and
//! names the key path of every error (`load.stages[1].rate: must be > 0`), so
//! a typo in a rehearsal file fails before any traffic is sent.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, Method};
use serde::Deserialize;

use crate::duration::parse_duration;
use crate::schedule::{Schedule, Stage};
use crate::target::parse_header;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileScenario {
    name: Option<String>,
    description: Option<String>,
    /// Base URL the class paths are appended to.
    target: Option<String>,
    /// Several named base URLs, run one after the other (side by side).
    #[serde(default)]
    targets: toml::Table,
    /// Which target the others are compared with.
    baseline: Option<String>,
    #[serde(default)]
    h2: bool,
    timeout: Option<String>,
    /// Response header naming the site that served (the gateway's
    /// `x-served-by`, or a header the backend stamps).
    site_header: Option<String>,
    load: FileLoad,
    #[serde(default)]
    classes: Vec<FileClass>,
    #[serde(default)]
    events: Vec<FileEvent>,
    failover: Option<FileFailover>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileLoad {
    mode: String,
    connections: Option<u32>,
    /// Closed loop only.
    duration: Option<String>,
    /// Open loop only.
    #[serde(default)]
    stages: Vec<FileStage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStage {
    duration: String,
    rate: f64,
    /// Ramp linearly from `rate` to `to` over the stage.
    to: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileClass {
    name: String,
    #[serde(default = "one")]
    weight: u32,
    method: Option<String>,
    paths: Vec<String>,
    body: Option<String>,
    #[serde(default)]
    headers: Vec<String>,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEvent {
    name: Option<String>,
    at: String,
    method: Option<String>,
    url: String,
    body: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFailover {
    home_site: String,
    down_event: String,
    up_event: Option<String>,
}

/// A validated scenario, ready to run.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// (name, base URL) in run order; never empty.
    pub targets: Vec<(String, String)>,
    pub baseline: Option<String>,
    pub h2: bool,
    pub timeout: Duration,
    pub site_header: Option<HeaderName>,
    pub load: Load,
    pub classes: Vec<Class>,
    pub events: Vec<Event>,
    pub failover: Option<Failover>,
}

#[derive(Clone, Debug)]
pub enum Load {
    Open { connections: usize, schedule: Schedule },
    Closed { connections: usize, duration: Duration },
}

impl Load {
    pub fn duration(&self) -> Duration {
        match self {
            Load::Open { schedule, .. } => schedule.duration(),
            Load::Closed { duration, .. } => *duration,
        }
    }
}

#[derive(Clone, Debug)]
pub struct Class {
    pub name: String,
    pub weight: u32,
    pub method: Method,
    pub paths: Vec<String>,
    pub body: Bytes,
    pub headers: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct Event {
    pub name: String,
    pub at: Duration,
    pub method: Method,
    pub url: String,
    pub body: Bytes,
}

#[derive(Clone, Debug)]
pub struct Failover {
    pub home_site: String,
    pub down_event: String,
    pub up_event: Option<String>,
}

/// Every problem found, each naming its key path.
#[derive(Debug)]
pub struct ScenarioErrors(pub Vec<String>);

impl std::fmt::Display for ScenarioErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("\n"))
    }
}

impl std::error::Error for ScenarioErrors {}

/// Parses and validates a scenario file's text.
pub fn parse(text: &str) -> Result<Scenario, ScenarioErrors> {
    // serde_path_to_error turns "missing field `paths`" into
    // "classes[2]: missing field `paths`": the key path is the useful part.
    let file: FileScenario =
        serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.message().to_string();
            ScenarioErrors(vec![if path == "." { message } else { format!("{path}: {message}") }])
        })?;
    compile(file)
}

fn compile(file: FileScenario) -> Result<Scenario, ScenarioErrors> {
    let mut errors = Vec::new();
    let timeout = file.timeout.as_deref().map_or(Ok(Duration::from_secs(10)), parse_duration);
    let timeout = report(&mut errors, "timeout", timeout.and_then(non_zero)).unwrap_or_default();
    let site_header = file.site_header.as_deref().and_then(|h| {
        report(&mut errors, "site_header", HeaderName::from_bytes(h.as_bytes()).map_err(|e| e.to_string()))
    });
    let targets = compile_targets(&mut errors, file.target, &file.targets);
    if let Some(base) = &file.baseline {
        if !targets.iter().any(|(n, _)| n == base) {
            errors.push(format!("baseline: {base:?} is not one of the targets"));
        }
    }
    let load = compile_load(&mut errors, &file.load);
    let classes = compile_classes(&mut errors, &file.classes);
    let events = compile_events(&mut errors, &file.events);
    if let Some(f) = &file.failover {
        for (key, name) in [("down_event", Some(&f.down_event)), ("up_event", f.up_event.as_ref())] {
            if let Some(name) = name {
                if !events.iter().any(|e| &e.name == name) {
                    errors.push(format!("failover.{key}: no event is named {name:?}"));
                }
            }
        }
        if site_header.is_none() {
            errors.push("failover: needs site_header to tell which site served".into());
        }
    }
    if !errors.is_empty() {
        return Err(ScenarioErrors(errors));
    }
    Ok(Scenario {
        name: file.name.unwrap_or_else(|| "scenario".into()),
        description: file.description.unwrap_or_default(),
        targets,
        baseline: file.baseline,
        h2: file.h2,
        timeout,
        site_header,
        load: load.expect("no errors means the load compiled"),
        classes,
        events,
        failover: file.failover.map(|f| Failover {
            home_site: f.home_site,
            down_event: f.down_event,
            up_event: f.up_event,
        }),
    })
}

fn report<T>(errors: &mut Vec<String>, key: &str, result: Result<T, String>) -> Option<T> {
    result.map_err(|e| errors.push(format!("{key}: {e}"))).ok()
}

fn non_zero(d: Duration) -> Result<Duration, String> {
    if d.is_zero() {
        Err("must be greater than zero".into())
    } else {
        Ok(d)
    }
}

fn compile_targets(
    errors: &mut Vec<String>,
    one: Option<String>,
    many: &toml::Table,
) -> Vec<(String, String)> {
    let mut targets = Vec::new();
    for (name, value) in many {
        match value.as_str() {
            Some(url) => targets.push((name.clone(), url.to_string())),
            None => errors.push(format!("targets.{name}: expected a URL string")),
        }
    }
    if let Some(url) = one {
        if targets.is_empty() {
            targets.push(("target".into(), url));
        }
    }
    if targets.is_empty() && errors.is_empty() {
        errors.push("target: missing (give `target`, a [targets] table or --target)".into());
    }
    for (name, url) in &targets {
        if !url.starts_with("http://") {
            errors.push(format!("targets.{name}: {url:?} is not an http:// URL"));
        }
    }
    targets
}

fn compile_load(errors: &mut Vec<String>, load: &FileLoad) -> Option<Load> {
    let before = errors.len();
    let connections = load.connections.unwrap_or(32) as usize;
    if connections == 0 || connections > 100_000 {
        errors.push("load.connections: must be between 1 and 100000".into());
    }
    let result = match load.mode.as_str() {
        "open" => {
            if load.duration.is_some() {
                errors.push("load.duration: open loop takes its length from load.stages".into());
            }
            compile_stages(errors, &load.stages).map(|schedule| Load::Open { connections, schedule })
        }
        "closed" => {
            if !load.stages.is_empty() {
                errors.push("load.stages: only for mode = \"open\"".into());
            }
            let duration = match &load.duration {
                Some(d) => report(errors, "load.duration", parse_duration(d).and_then(non_zero)),
                None => {
                    errors.push("load.duration: missing (closed loop needs a duration)".into());
                    None
                }
            };
            duration.map(|duration| Load::Closed { connections, duration })
        }
        other => {
            errors.push(format!("load.mode: {other:?} is neither \"open\" nor \"closed\""));
            None
        }
    };
    result.filter(|_| errors.len() == before)
}

fn compile_stages(errors: &mut Vec<String>, stages: &[FileStage]) -> Option<Schedule> {
    if stages.is_empty() {
        errors.push("load.stages: open loop needs at least one stage".into());
        return None;
    }
    let mut compiled = Vec::new();
    for (i, s) in stages.iter().enumerate() {
        let key = format!("load.stages[{i}]");
        let duration =
            report(errors, &format!("{key}.duration"), parse_duration(&s.duration).and_then(non_zero));
        let to = s.to.unwrap_or(s.rate);
        for (field, rate) in [("rate", s.rate), ("to", to)] {
            if !rate.is_finite() || !(0.0..=1_000_000.0).contains(&rate) {
                errors.push(format!("{key}.{field}: must be between 0 and 1000000 req/s"));
            }
        }
        if s.rate == 0.0 && to == 0.0 {
            errors.push(format!("{key}: rate and to are both 0, nothing would be sent"));
        }
        if let Some(duration) = duration {
            compiled.push(Stage { duration, from: s.rate, to });
        }
    }
    let schedule = Schedule::new(compiled);
    if schedule.duration() > crate::duration::MAX_DURATION {
        errors.push("load.stages: longer than the 10m maximum in total".into());
    }
    Some(schedule)
}

fn compile_method(errors: &mut Vec<String>, key: &str, method: Option<&str>) -> Method {
    let text = method.unwrap_or("GET");
    Method::from_bytes(text.as_bytes()).unwrap_or_else(|_| {
        errors.push(format!("{key}: invalid method {text:?}"));
        Method::GET
    })
}

fn compile_classes(errors: &mut Vec<String>, classes: &[FileClass]) -> Vec<Class> {
    if classes.is_empty() {
        errors.push("classes: at least one [[classes]] entry is needed".into());
    }
    let mut out: Vec<Class> = Vec::new();
    for (i, c) in classes.iter().enumerate() {
        let key = format!("classes[{i}]");
        if out.iter().any(|o| o.name == c.name) {
            errors.push(format!("{key}.name: {:?} is used twice", c.name));
        }
        if c.weight == 0 {
            errors.push(format!("{key}.weight: must be at least 1"));
        }
        if c.paths.is_empty() {
            errors.push(format!("{key}.paths: needs at least one path"));
        }
        for (j, p) in c.paths.iter().enumerate() {
            if !p.starts_with('/') {
                errors.push(format!("{key}.paths[{j}]: {p:?} must start with /"));
            }
        }
        for (j, h) in c.headers.iter().enumerate() {
            if let Err(e) = parse_header(h) {
                errors.push(format!("{key}.headers[{j}]: {e}"));
            }
        }
        out.push(Class {
            name: c.name.clone(),
            weight: c.weight,
            method: compile_method(errors, &format!("{key}.method"), c.method.as_deref()),
            paths: c.paths.clone(),
            body: Bytes::from(c.body.clone().unwrap_or_default()),
            headers: c.headers.clone(),
        });
    }
    out
}

fn compile_events(errors: &mut Vec<String>, events: &[FileEvent]) -> Vec<Event> {
    let mut out = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let key = format!("events[{i}]");
        let at = report(errors, &format!("{key}.at"), parse_duration(&e.at)).unwrap_or_default();
        if !e.url.starts_with("http://") {
            errors.push(format!("{key}.url: {:?} is not an http:// URL", e.url));
        }
        out.push(Event {
            name: e.name.clone().unwrap_or_else(|| format!("event{i}")),
            at,
            method: compile_method(errors, &format!("{key}.method"), e.method.as_deref()),
            url: e.url.clone(),
            body: Bytes::from(e.body.clone().unwrap_or_default()),
        });
    }
    out
}

/// Applies `--target` flags: `name=url` or a bare URL (named "target").
/// Replaces the file's targets entirely, so a scenario written for the demo
/// can be pointed at a bench setup without editing it.
pub fn override_targets(scenario: &mut Scenario, flags: &[String]) -> Result<(), String> {
    if flags.is_empty() {
        return Ok(());
    }
    let mut targets = Vec::new();
    for flag in flags {
        let (name, url) = match flag.split_once('=') {
            Some((n, u)) if !n.contains('/') => (n.to_string(), u.to_string()),
            _ => ("target".to_string(), flag.clone()),
        };
        if !url.starts_with("http://") {
            return Err(format!("--target {flag:?}: not an http:// URL"));
        }
        if targets.iter().any(|(n, _): &(String, String)| n == &name) {
            return Err(format!("--target {flag:?}: the name {name:?} is used twice"));
        }
        targets.push((name, url));
    }
    scenario.targets = targets;
    if let Some(b) = &scenario.baseline {
        if !scenario.targets.iter().any(|(n, _)| n == b) {
            scenario.baseline = None;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "scenario_tests.rs"]
mod tests;
