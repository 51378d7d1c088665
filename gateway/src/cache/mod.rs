//! Response cache of one registry, for GET and HEAD.
//!
//! The HTTP rules (max-age, s-maxage, no-store, private, no-cache, Vary,
//! Age, Authorization) are http-cache-semantics' `CachePolicy`, used as a
//! shared cache. Entries live in moka, weighed in bytes. Keys are method +
//! host + path and query; a response with `Vary` is stored under the
//! values of the headers it varies on, and the names are remembered per
//! primary key so the next request can build the same key.
//!
//! RFC 5861: `stale-while-revalidate` serves a stale entry at once and
//! refreshes it in the background; `stale-if-error` serves it when every
//! site fails. Defaults come from config; the response's own directives win.
//!
//! - [`coalesce`]: many identical concurrent misses make one upstream fetch.

pub mod coalesce;

use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body_util::BodyExt;
use http_cache_semantics::{BeforeRequest, CacheOptions, CachePolicy};
use moka::sync::Cache as Moka;
use moka::Expiry;

use crate::config::cache::CacheSettings;
use crate::proxy::body::{self, ProxyBody};

/// The request as the cache sees it: method, URI and headers.
pub type RequestParts = http::request::Parts;

pub struct Entry {
    policy: CachePolicy,
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
    /// Fresh until then; stale after.
    fresh_until: SystemTime,
    swr: Duration,
    sie: Duration,
    /// No reuse without revalidation (no-cache, must-revalidate): never
    /// served stale.
    strict: bool,
}

/// What the cache holds for a request.
pub enum Lookup {
    Fresh(Response<ProxyBody>),
    /// Stale but inside stale-while-revalidate: serve it, refresh behind.
    Revalidate(Arc<Entry>),
    /// Nothing usable now; `stale` is kept for stale-if-error.
    Miss {
        stale: Option<Arc<Entry>>,
    },
}

pub struct Cache {
    settings: CacheSettings,
    vary: Moka<String, Arc<Vec<HeaderName>>>,
    entries: Moka<String, Arc<Entry>>,
    pub inflight: coalesce::InFlight,
}

impl std::fmt::Debug for Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").field("entries", &self.entries.entry_count()).finish_non_exhaustive()
    }
}

/// Keeps each entry until its stale windows close.
struct UntilStaleWindowsClose;

impl Expiry<String, Arc<Entry>> for UntilStaleWindowsClose {
    fn expire_after_create(&self, _: &String, e: &Arc<Entry>, _: StdInstant) -> Option<Duration> {
        let fresh = e.fresh_until.duration_since(SystemTime::now()).unwrap_or_default();
        Some(fresh + e.swr.max(e.sie))
    }
}

/// Only these are worth a lookup: safe, bodiless reads.
pub fn applies(method: &Method) -> bool {
    method == Method::GET || method == Method::HEAD
}

impl Cache {
    pub fn new(settings: &CacheSettings) -> Cache {
        let weigh = |k: &String, e: &Arc<Entry>| -> u32 {
            let headers: usize = e.headers.iter().map(|(n, v)| n.as_str().len() + v.len()).sum();
            (k.len() + headers + e.body.len() + 256).min(u32::MAX as usize) as u32
        };
        Cache {
            settings: settings.clone(),
            vary: Moka::builder().max_capacity(100_000).time_to_idle(Duration::from_secs(3600)).build(),
            entries: Moka::builder()
                .max_capacity(settings.max_bytes)
                .weigher(weigh)
                .expire_after(UntilStaleWindowsClose)
                .build(),
            inflight: coalesce::InFlight::default(),
        }
    }

    pub fn coalesce_timeout(&self) -> Duration {
        self.settings.coalesce_timeout
    }

    fn primary(req: &RequestParts) -> String {
        let host = req.headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        let pq = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
        format!("{} {host}{pq}", req.method)
    }

    fn full_key(primary: String, names: &[HeaderName], headers: &HeaderMap) -> String {
        let mut key = primary;
        for name in names {
            key.push('\n');
            key.push_str(name.as_str());
            key.push('=');
            for v in headers.get_all(name) {
                key.push_str(&String::from_utf8_lossy(v.as_bytes()));
                key.push(',');
            }
        }
        key
    }

    /// The key this request's entry has (or would have, once stored).
    pub fn key(&self, req: &RequestParts) -> String {
        let primary = Self::primary(req);
        match self.vary.get(&primary) {
            Some(names) => Self::full_key(primary, &names, &req.headers),
            None => primary,
        }
    }

    pub fn lookup(&self, req: &RequestParts, served_by: Option<&HeaderName>) -> Lookup {
        let Some(entry) = self.entries.get(&self.key(req)) else { return Lookup::Miss { stale: None } };
        let now = SystemTime::now();
        match entry.policy.before_request(req, now) {
            BeforeRequest::Fresh(parts) => {
                Lookup::Fresh(respond(parts.status, parts.headers, &entry.body, req, served_by))
            }
            BeforeRequest::Stale { matches: false, .. } => Lookup::Miss { stale: None },
            BeforeRequest::Stale { .. } => {
                let client_insists = req
                    .headers
                    .get_all(header::CACHE_CONTROL)
                    .iter()
                    .any(|v| v.to_str().is_ok_and(|v| v.contains("no-cache") || v.contains("max-age=0")));
                if !entry.strict && !client_insists && now < entry.fresh_until + entry.swr {
                    Lookup::Revalidate(entry)
                } else {
                    Lookup::Miss { stale: Some(entry) }
                }
            }
        }
    }

    /// The stale entry as a response, if still inside its stale-if-error window.
    pub fn stale_if_error(
        &self,
        entry: &Entry,
        req: &RequestParts,
        served_by: Option<&HeaderName>,
    ) -> Option<Response<ProxyBody>> {
        let now = SystemTime::now();
        (!entry.strict && now < entry.fresh_until + entry.sie).then(|| stale(entry, now, req, served_by))
    }

    pub fn serve_stale(
        &self,
        entry: &Entry,
        req: &RequestParts,
        served_by: Option<&HeaderName>,
    ) -> Response<ProxyBody> {
        stale(entry, SystemTime::now(), req, served_by)
    }

    /// Stores `resp` when the rules allow and it is small enough (its length
    /// must be declared: a body is buffered only when known to fit). Returns
    /// the response to send, and whether it was stored.
    pub async fn store(
        &self,
        req: &RequestParts,
        resp: Response<ProxyBody>,
        deadline: tokio::time::Instant,
    ) -> (Response<ProxyBody>, bool) {
        let now = SystemTime::now();
        let (parts, body) = resp.into_parts();
        let policy = CachePolicy::new_options(req, &parts, now, CacheOptions::default());
        let length = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
        let fits = length.is_some_and(|n| n <= self.settings.max_entry_bytes);
        if !policy.is_storable() || !fits || parts.status.is_server_error() {
            return (Response::from_parts(parts, body), false);
        }
        let bytes = match tokio::time::timeout_at(deadline, body.collect()).await {
            Ok(Ok(c)) => c.to_bytes(),
            Ok(Err(e)) => return (Response::from_parts(parts, failed(e)), false),
            Err(_) => return (Response::from_parts(parts, failed("response body timed out".into())), false),
        };
        let entry = self.entry(policy, &parts, bytes.clone(), now);
        let primary = Self::primary(req);
        let names = vary_names(&parts.headers);
        let key = Self::full_key(primary.clone(), &names, &req.headers);
        if names.is_empty() {
            self.vary.invalidate(&primary);
        } else {
            self.vary.insert(primary, Arc::new(names));
        }
        self.entries.insert(key, Arc::new(entry));
        (Response::from_parts(parts, body::full(bytes)), true)
    }

    fn entry(
        &self,
        policy: CachePolicy,
        parts: &http::response::Parts,
        body: Bytes,
        now: SystemTime,
    ) -> Entry {
        let cc = directives(&parts.headers);
        let secs = |name: &str| {
            cc.iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.as_ref()?.parse::<u64>().ok())
                .map(Duration::from_secs)
        };
        let strict =
            cc.iter().any(|(k, _)| k == "no-cache" || k == "must-revalidate" || k == "proxy-revalidate");
        Entry {
            fresh_until: now + policy.time_to_live(now),
            swr: secs("stale-while-revalidate").unwrap_or(self.settings.stale_while_revalidate),
            sie: secs("stale-if-error").unwrap_or(self.settings.stale_if_error),
            strict,
            policy,
            status: parts.status,
            headers: parts.headers.clone(),
            body,
        }
    }

    pub fn entry_count(&self) -> u64 {
        self.entries.run_pending_tasks();
        self.entries.entry_count()
    }
}

/// Header names a response varies on (`Vary: *` never matches and is
/// left to the policy, which refuses to reuse it).
fn vary_names(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names
}

/// Cache-Control directives, lower-cased, with their values.
fn directives(headers: &HeaderMap) -> Vec<(String, Option<String>)> {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| match d.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim().trim_matches('"').to_string())),
            None => (d.trim().to_ascii_lowercase(), None),
        })
        .collect()
}

fn stale(
    entry: &Entry,
    now: SystemTime,
    req: &RequestParts,
    served_by: Option<&HeaderName>,
) -> Response<ProxyBody> {
    let mut headers = entry.headers.clone();
    headers.insert(header::AGE, HeaderValue::from(entry.policy.age(now).as_secs()));
    // RFC 9111 5.5: Warning is obsolete; the age says how old it is and
    // Proxy-Status-like detail is not defined for hits, so none is added.
    respond(entry.status, headers, &entry.body, req, served_by)
}

/// A body that fails at once: the upstream body broke while buffering.
struct Failed(Option<body::BoxError>);

impl http_body::Body for Failed {
    type Data = Bytes;
    type Error = body::BoxError;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Bytes>, body::BoxError>>> {
        std::task::Poll::Ready(self.get_mut().0.take().map(Err))
    }
}

fn failed(e: body::BoxError) -> ProxyBody {
    Failed(Some(e)).boxed()
}

static CACHE: HeaderValue = HeaderValue::from_static("cache");

fn respond(
    status: StatusCode,
    mut headers: HeaderMap,
    body: &Bytes,
    req: &RequestParts,
    served_by: Option<&HeaderName>,
) -> Response<ProxyBody> {
    if let Some(name) = served_by {
        headers.insert(name.clone(), CACHE.clone());
    }
    let body = if req.method == Method::HEAD { body::empty() } else { body::full(body.clone()) };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}
