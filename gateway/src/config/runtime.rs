//! The compiled, validated configuration: what the gateway runs on.
//!
//! Built only by [`super::compile`]; never deserialized directly, so every
//! value here has passed its checks. Immutable: live state (round-robin
//! cursors, connection pools, health) lives beside it, not in it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::uri::Authority;
use http::HeaderName;
use ipnet::IpNet;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerSettings,
    /// In file order of names (sorted), each with an index routes refer to.
    pub registries: Vec<Arc<Registry>>,
    pub routes: Vec<Route>,
    pub admin: Option<AdminSettings>,
    pub log: super::log::LogSettings,
}

#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub listen: SocketAddr,
    pub token: TokenSource,
}

/// Where the admin bearer token comes from.
#[derive(Clone)]
pub enum TokenSource {
    Literal(String),
    /// Read when the admin listener starts.
    Env(String),
}

impl TokenSource {
    pub fn resolve(&self) -> Result<String, String> {
        match self {
            TokenSource::Literal(t) => Ok(t.clone()),
            TokenSource::Env(var) => match std::env::var(var) {
                Ok(t) if t.len() >= 16 => Ok(t),
                Ok(_) => Err(format!("the admin token in ${var} must be at least 16 characters")),
                Err(_) => Err(format!("admin.token_env: environment variable {var} is not set")),
            },
        }
    }
}

impl std::fmt::Debug for TokenSource {
    // The token never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::Literal(_) => f.write_str("Literal(<redacted>)"),
            TokenSource::Env(var) => write!(f, "Env({var})"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    pub trusted_proxies: Vec<IpNet>,
    /// RFC 9110 token used in `Via` and `Proxy-Status`.
    pub name: String,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub client_idle_timeout: Duration,
    pub shutdown_grace: Duration,
    /// `None`: one worker per available core.
    pub workers: Option<usize>,
    pub served_by_header: Option<HeaderName>,
    pub freshness_header: Option<HeaderName>,
    pub edge: super::edge::EdgeLimits,
    /// `None`: plain HTTP.
    pub tls: Option<super::tls::ServerTls>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Registry {
    pub name: Arc<str>,
    /// `home` first, then embassies by priority (then name).
    pub sites: Vec<SiteSpec>,
    pub limits: Limits,
    pub continuity: ContinuitySettings,
    pub burst: Option<Arc<super::burst::BurstSettings>>,
    pub cache: Option<super::cache::CacheSettings>,
    /// Loaded plugins, in chain order; equal when files and settings are.
    pub plugins: crate::plugin::Chain,
}

impl Registry {
    pub fn home(&self) -> &SiteSpec {
        // compile guarantees a home site, sorted first.
        &self.sites[0]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiteKind {
    Home,
    Embassy,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SiteSpec {
    pub name: Arc<str>,
    pub kind: SiteKind,
    pub priority: u32,
    pub backends: Vec<Authority>,
    pub freshness: Freshness,
    pub health_check: Option<HealthCheck>,
    pub outlier: Outlier,
    /// `None`: plain HTTP to this site.
    pub tls: Option<Arc<super::tls::UpstreamTls>>,
}

/// What a site's copy of the data promises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    Live,
    Replica { max_lag: Duration },
    Snapshot(SnapshotSource),
}

/// Where a snapshot's as-of time comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotSource {
    Fixed(SystemTime),
    File(PathBuf),
    /// A path on the site's backends, fetched with each health check.
    Endpoint(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct HealthCheck {
    pub path: String,
    pub interval: Duration,
    pub timeout: Duration,
    pub expect: Vec<u16>,
    pub rise: u32,
    pub fall: u32,
    pub jitter: f64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outlier {
    pub consecutive_5xx: u32,
    pub consecutive_failures: u32,
    pub base_ejection: Duration,
    pub max_ejection: Duration,
}

impl Default for Outlier {
    fn default() -> Self {
        Outlier {
            consecutive_5xx: 5,
            consecutive_failures: 1,
            base_ejection: Duration::from_secs(10),
            max_ejection: Duration::from_secs(300),
        }
    }
}

/// What a write (a non-idempotent request) does when home cannot take it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WritePolicy {
    /// 503 with Retry-After; nothing is forwarded.
    Reject,
    /// The embassy copy is live and takes writes.
    Forward,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContinuitySettings {
    pub failback_hold: Duration,
    pub write_policy: WritePolicy,
    pub retry_on_status: Vec<u16>,
    pub retry_budget: f32,
    pub retry_min_per_second: u32,
    pub replay_buffer: u64,
    pub retry_after: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub connect_timeout: Duration,
    pub response_header_timeout: Duration,
    pub request_timeout: Duration,
    pub max_request_body: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connect_timeout: Duration::from_secs(2),
            response_header_timeout: Duration::from_secs(30),
            request_timeout: Duration::from_secs(120),
            max_request_body: 10 << 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Index into [`Config::registries`].
    pub registry: usize,
    /// Lower-case host without port; `None` matches any host.
    pub host: Option<String>,
    /// Normalised: starts with `/`, no trailing `/` unless it is just `/`.
    pub prefix: String,
    pub rewrite: Rewrite,
}

/// What happens to the matched prefix before the request goes upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rewrite {
    Keep,
    Strip,
    Replace(String),
}
