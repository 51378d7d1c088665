//! File structs and compile steps for continuity: health checks, outlier
//! detection, freshness, failover and write policy, and the admin listener.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::error::Errors;
use super::file::SiteFile;
use super::parse;
use super::runtime::{
    AdminSettings, ContinuitySettings, Freshness, HealthCheck, Outlier, SnapshotSource, TokenSource,
    WritePolicy,
};

/// `[registries.NAME.sites.SITE.health_check]`: active checks, run whether or
/// not traffic flows.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthCheckFile {
    pub path: String,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    /// Statuses that count as healthy; default 200-299.
    pub expect: Option<Vec<u16>>,
    /// Successes in a row before an unhealthy backend is healthy again.
    pub rise: Option<u32>,
    /// Failures in a row before a healthy backend is unhealthy.
    pub fall: Option<u32>,
    /// Random spread added to each interval, as a fraction (0.1 = up to 10%).
    pub jitter: Option<f64>,
}

/// `[registries.NAME.sites.SITE.outlier]`: passive detection from real traffic.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutlierFile {
    /// 5xx answers in a row that eject a backend.
    pub consecutive_5xx: Option<u32>,
    /// Connection failures (refused, reset, timeout) in a row that eject it.
    pub consecutive_failures: Option<u32>,
    /// First ejection; each repeated ejection doubles it, up to `max_ejection`.
    pub base_ejection: Option<String>,
    pub max_ejection: Option<String>,
}

/// `[registries.NAME.continuity]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContinuityFile {
    /// How long home must stay healthy before traffic returns to it.
    pub failback_hold: Option<String>,
    /// `reject` (default) or `forward`: what a write does when home cannot take it.
    pub write_policy: Option<String>,
    /// Statuses that make an idempotent request try the next site.
    pub retry_on_status: Option<Vec<u16>>,
    /// Retries allowed as a share of requests (0.2 = 20%), over ten seconds.
    pub retry_budget: Option<f64>,
    /// Retries always allowed per second, whatever the share.
    pub retry_min_per_second: Option<u32>,
    /// Request bodies up to this size are kept so they can be replayed.
    pub replay_buffer: Option<super::file::SizeFile>,
    /// Seconds a rejected write asks the client to wait (Retry-After).
    pub retry_after: Option<u32>,
}

/// `[admin]`: the operators' API, on its own (loopback) listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    pub listen: String,
    /// The bearer token itself; prefer `token_env`.
    pub token: Option<String>,
    /// Environment variable holding the bearer token.
    pub token_env: Option<String>,
}

pub(crate) fn compile_health(file: &HealthCheckFile, path: &str, errors: &mut Errors) -> Option<HealthCheck> {
    let key = |k: &str| format!("{path}.{k}");
    if !file.path.starts_with('/') {
        errors.push(key("path"), format!("invalid path \"{}\": must start with /", file.path));
    }
    let interval = dur(errors, &key("interval"), file.interval.as_deref(), Duration::from_secs(2));
    let timeout = dur(errors, &key("timeout"), file.timeout.as_deref(), Duration::from_secs(1));
    let expect = file.expect.clone().unwrap_or_else(|| (200..300).collect());
    if expect.is_empty() || expect.iter().any(|s| !(100..600).contains(s)) {
        errors.push(key("expect"), "expected statuses must be 100..599");
    }
    let rise = positive(errors, &key("rise"), file.rise, 2);
    let fall = positive(errors, &key("fall"), file.fall, 2);
    let jitter = file.jitter.unwrap_or(0.1);
    if !(0.0..=1.0).contains(&jitter) {
        errors.push(key("jitter"), format!("invalid jitter {jitter}: must be between 0 and 1"));
    }
    file.path.starts_with('/').then(|| HealthCheck {
        path: file.path.clone(),
        interval,
        timeout,
        expect,
        rise,
        fall,
        jitter,
    })
}

pub(crate) fn compile_outlier(file: &OutlierFile, path: &str, errors: &mut Errors) -> Outlier {
    let key = |k: &str| format!("{path}.{k}");
    let base = dur(errors, &key("base_ejection"), file.base_ejection.as_deref(), Duration::from_secs(10));
    let max = dur(errors, &key("max_ejection"), file.max_ejection.as_deref(), Duration::from_secs(300));
    if max < base {
        errors.push(key("max_ejection"), "must not be shorter than base_ejection");
    }
    Outlier {
        consecutive_5xx: positive(errors, &key("consecutive_5xx"), file.consecutive_5xx, 5),
        consecutive_failures: positive(errors, &key("consecutive_failures"), file.consecutive_failures, 1),
        base_ejection: base,
        max_ejection: max,
    }
}

pub(crate) fn compile_freshness(file: &SiteFile, path: &str, errors: &mut Errors) -> Freshness {
    let key = |k: &str| format!("{path}.{k}");
    let kind = file.freshness.as_deref().unwrap_or("live");
    let sources = [&file.as_of, &file.as_of_file, &file.as_of_path].iter().filter(|s| s.is_some()).count();
    match kind {
        "live" | "replica" if sources > 0 => {
            errors.push(path, "as_of, as_of_file and as_of_path belong to freshness = \"snapshot\"");
            Freshness::Live
        }
        "live" if file.max_lag.is_some() => {
            errors.push(key("max_lag"), "a live site has no lag: use freshness = \"replica\"");
            Freshness::Live
        }
        "live" => Freshness::Live,
        "replica" => match &file.max_lag {
            Some(text) => errors
                .check(&key("max_lag"), parse::duration(text))
                .map_or(Freshness::Live, |max_lag| Freshness::Replica { max_lag }),
            None => {
                errors.push(key("max_lag"), "a replica must state its maximum lag, e.g. max_lag = \"30s\"");
                Freshness::Live
            }
        },
        "snapshot" => compile_snapshot(file, path, sources, errors),
        other => {
            errors.push(
                key("freshness"),
                format!("unknown freshness \"{other}\": use live, replica or snapshot"),
            );
            Freshness::Live
        }
    }
}

fn compile_snapshot(file: &SiteFile, path: &str, sources: usize, errors: &mut Errors) -> Freshness {
    if sources != 1 {
        errors.push(path, "a snapshot needs exactly one of as_of, as_of_file, as_of_path");
        return Freshness::Live;
    }
    let source = if let Some(text) = &file.as_of {
        match errors.check(&format!("{path}.as_of"), rfc3339(text)) {
            Some(t) => SnapshotSource::Fixed(t),
            None => return Freshness::Live,
        }
    } else if let Some(f) = &file.as_of_file {
        SnapshotSource::File(PathBuf::from(f))
    } else {
        let p = file.as_of_path.clone().unwrap_or_default();
        if !p.starts_with('/') {
            errors.push(format!("{path}.as_of_path"), format!("invalid path \"{p}\": must start with /"));
        }
        SnapshotSource::Endpoint(p)
    };
    Freshness::Snapshot(source)
}

pub fn rfc3339(text: &str) -> Result<SystemTime, String> {
    humantime::parse_rfc3339_weak(text.trim())
        .map_err(|e| format!("invalid time \"{text}\": {e} (write RFC 3339, e.g. 2026-11-20T03:00:00Z)"))
}

pub(crate) fn compile_continuity(
    file: &ContinuityFile,
    path: &str,
    errors: &mut Errors,
) -> ContinuitySettings {
    let key = |k: &str| format!("{path}.{k}");
    let write_policy = match file.write_policy.as_deref().unwrap_or("reject") {
        "reject" => WritePolicy::Reject,
        "forward" => WritePolicy::Forward,
        "journal" => {
            errors.push(key("write_policy"), "journal is not available yet: use reject or forward");
            WritePolicy::Reject
        }
        other => {
            errors.push(
                key("write_policy"),
                format!("unknown write policy \"{other}\": use reject or forward"),
            );
            WritePolicy::Reject
        }
    };
    let retry_on_status = file.retry_on_status.clone().unwrap_or_else(|| vec![502, 503, 504]);
    if retry_on_status.iter().any(|s| !(500..600).contains(s)) {
        errors.push(key("retry_on_status"), "only 5xx statuses can trigger a retry");
    }
    let retry_budget = file.retry_budget.unwrap_or(0.2);
    if !(0.0..=1.0).contains(&retry_budget) {
        errors.push(key("retry_budget"), format!("invalid share {retry_budget}: must be between 0 and 1"));
    }
    let replay_buffer = match &file.replay_buffer {
        Some(v) => errors.check(&key("replay_buffer"), parse::size(v)).unwrap_or(64 << 10),
        None => 64 << 10,
    };
    ContinuitySettings {
        failback_hold: dur(
            errors,
            &key("failback_hold"),
            file.failback_hold.as_deref(),
            Duration::from_secs(30),
        ),
        write_policy,
        retry_on_status,
        retry_budget: retry_budget.clamp(0.0, 1.0) as f32,
        retry_min_per_second: file.retry_min_per_second.unwrap_or(10).min(1_000_000),
        replay_buffer,
        retry_after: file.retry_after.unwrap_or(5),
    }
}

pub(crate) fn compile_admin(file: &AdminFile, errors: &mut Errors) -> Option<AdminSettings> {
    let listen = errors.check("admin.listen", parse::listen_addr(&file.listen));
    if let Some(addr) = listen {
        if !addr.ip().is_loopback() {
            tracing::warn!(%addr, "the admin API listens beyond loopback: keep it on a private network");
        }
    }
    let token = match (&file.token, &file.token_env) {
        (Some(_), Some(_)) => {
            errors.push("admin", "set either token or token_env, not both");
            None
        }
        (Some(t), None) if t.len() < 16 => {
            errors.push("admin.token", "the bearer token must be at least 16 characters");
            None
        }
        (Some(t), None) => Some(TokenSource::Literal(t.clone())),
        (None, Some(var)) if var.is_empty() => {
            errors.push("admin.token_env", "name the environment variable that holds the token");
            None
        }
        // Read at startup, not here: `gateway check` runs where secrets are not.
        (None, Some(var)) => Some(TokenSource::Env(var.clone())),
        (None, None) => {
            errors.push("admin", "a bearer token is required: set token_env (or token)");
            None
        }
    };
    Some(AdminSettings { listen: listen?, token: token? })
}

fn dur(errors: &mut Errors, path: &str, text: Option<&str>, default: Duration) -> Duration {
    text.and_then(|t| errors.check(path, parse::duration(t))).unwrap_or(default)
}

fn positive(errors: &mut Errors, path: &str, value: Option<u32>, default: u32) -> u32 {
    match value {
        Some(0) => {
            errors.push(path, "must be at least 1");
            default
        }
        Some(v) => v,
        None => default,
    }
}
