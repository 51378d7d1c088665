//! The compiled, validated configuration: what the gateway runs on.
//!
//! Built only by [`super::compile`]; never deserialized directly, so every
//! value here has passed its checks. Immutable: live state (round-robin
//! cursors, connection pools, health) lives beside it, not in it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::uri::Authority;
use ipnet::IpNet;

#[derive(Debug, Clone)]
pub struct Config {
    pub server: ServerSettings,
    /// In file order of names (sorted), each with an index routes refer to.
    pub registries: Vec<Arc<Registry>>,
    pub routes: Vec<Route>,
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
    pub edge: super::edge::EdgeLimits,
    /// `None`: plain HTTP.
    pub tls: Option<super::tls::ServerTls>,
}

#[derive(Debug, Clone)]
pub struct Registry {
    pub name: Arc<str>,
    /// `home` first, then embassies by priority (then name).
    pub sites: Vec<SiteSpec>,
    pub limits: Limits,
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

#[derive(Debug, Clone)]
pub struct SiteSpec {
    pub name: Arc<str>,
    pub kind: SiteKind,
    pub priority: u32,
    pub backends: Vec<Authority>,
    /// `None`: plain HTTP to this site.
    pub tls: Option<Arc<super::tls::UpstreamTls>>,
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
