//! The configuration file as operators write it (TOML).
//!
//! These structs mirror the file one to one and do no validation beyond
//! shape: every value that can be wrong in a way worth explaining (addresses,
//! durations, sizes, prefixes) is kept as text here and checked by
//! [`super::compile`], which names the key path of each error and reports all
//! of them at once. The runtime never reads these structs.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub server: ServerFile,
    /// Limits every registry inherits unless it sets its own.
    #[serde(default)]
    pub defaults: LimitsFile,
    #[serde(default)]
    pub registries: BTreeMap<String, RegistryFile>,
    /// The operators' listener; absent: no admin API.
    pub admin: Option<super::continuity::AdminFile>,
    #[serde(default)]
    pub log: super::log::LogFile,
}

/// `[server]`: the public listener and what holds for every request on it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// `host:port` to listen on, e.g. `127.0.0.1:18080`.
    pub listen: String,
    /// Peers (CIDR or bare IP) whose X-Forwarded-* / Forwarded headers are trusted.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// Pseudonym used in `Via` and `Proxy-Status`; an RFC 9110 token.
    pub name: Option<String>,
    /// Largest request head (request line + headers) accepted, e.g. `"16KiB"`.
    pub max_header_bytes: Option<SizeFile>,
    /// Most request header fields accepted.
    pub max_headers: Option<u64>,
    /// How long an idle keep-alive connection (or one still sending its head) is kept.
    pub client_idle_timeout: Option<String>,
    /// How long in-flight requests may run on after SIGINT / SIGTERM.
    pub shutdown_grace: Option<String>,
    /// Worker threads; default: one per available core.
    pub workers: Option<u64>,
    /// Response header naming the site that served; `""` turns it off.
    pub served_by_header: Option<String>,
    /// Response header stating the lag or as-of time of a non-live copy.
    pub freshness_header: Option<String>,
    /// Open client connections, all clients together (default 10000).
    pub max_connections: Option<u64>,
    /// Open client connections from one IP address (default 256).
    pub max_connections_per_client: Option<u64>,
    /// Concurrent HTTP/2 streams per client connection (default 128).
    pub http2_max_concurrent_streams: Option<u64>,
    /// TLS termination; plain HTTP without it.
    pub tls: Option<super::tls::ServerTlsFile>,
}

/// Timeouts and body limits; `[defaults]` and `[registries.NAME.limits]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    pub connect_timeout: Option<String>,
    /// From sending the request until the upstream's response head arrives.
    pub response_header_timeout: Option<String>,
    /// Whole exchange, including streaming the response body.
    pub request_timeout: Option<String>,
    pub max_request_body: Option<SizeFile>,
}

/// A size: a byte count or text such as `"64KiB"` / `"10 MB"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SizeFile {
    Bytes(u64),
    Text(String),
}

/// `[registries.NAME]`: one e-service and where it is served from.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryFile {
    pub routes: Vec<RouteFile>,
    #[serde(default)]
    pub sites: BTreeMap<String, SiteFile>,
    #[serde(default)]
    pub limits: LimitsFile,
    /// Failover, failback, retries and writes.
    #[serde(default)]
    pub continuity: super::continuity::ContinuityFile,
    /// Rate limits, priorities, concurrency limit and spill-over.
    pub burst: Option<super::burst::BurstFile>,
    /// Response cache for GET and HEAD.
    pub cache: Option<super::cache::CacheFile>,
    /// The plugin chain, in the order it runs (see `super::plugins`).
    #[serde(default)]
    pub plugins: Vec<super::plugins::PluginFile>,
}

/// One way a request reaches a registry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    /// Host to match (without port), case-insensitive; none matches any host.
    pub host: Option<String>,
    /// Path prefix, matched on whole segments; default `/`.
    pub prefix: Option<String>,
    /// Remove the prefix before forwarding.
    #[serde(default)]
    pub strip_prefix: bool,
    /// Replace the prefix with this path before forwarding.
    pub rewrite_prefix: Option<String>,
}

/// `[registries.NAME.sites.SITE]`: `home` or an embassy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteFile {
    /// `host:port` addresses, used round-robin.
    pub backends: Vec<String>,
    /// Order among embassies; lower is preferred.
    pub priority: Option<u32>,
    /// `live` (default), `replica` (with `max_lag`) or `snapshot` (with one
    /// of `as_of`, `as_of_file`, `as_of_path`).
    pub freshness: Option<String>,
    pub max_lag: Option<String>,
    /// RFC 3339 time the snapshot was taken.
    pub as_of: Option<String>,
    /// A file holding the RFC 3339 time, re-read at every health interval.
    pub as_of_file: Option<String>,
    /// A path on the site's backends answering the RFC 3339 time (text or
    /// JSON `{"as_of": ...}`), fetched with each health check.
    pub as_of_path: Option<String>,
    pub health_check: Option<super::continuity::HealthCheckFile>,
    #[serde(default)]
    pub outlier: super::continuity::OutlierFile,
    /// Reach this site over TLS (mTLS with a client certificate).
    pub tls: Option<super::tls::SiteTlsFile>,
}
