//! One step from the file form to the runtime form: validates everything,
//! names the key path of every error, collects them all, never panics.

use std::collections::HashMap;
use std::sync::Arc;

use super::continuity;
use super::error::{ConfigErrors, Errors};
use super::file::{FileConfig, LimitsFile, RegistryFile, RouteFile, ServerFile, SiteFile};
use super::parse;
use super::runtime::{
    Config, Freshness, Limits, Registry, Rewrite, Route, ServerSettings, SiteKind, SiteSpec, WritePolicy,
};

pub const HOME: &str = "home";
const DEFAULT_NAME: &str = "data-embassy-gateway";

pub fn compile(file: FileConfig) -> Result<Config, ConfigErrors> {
    let mut errors = Errors::default();
    let server = compile_server(&file.server, &mut errors);
    let defaults = compile_limits(&file.defaults, &Limits::default(), "defaults", &mut errors);

    let mut registries = Vec::new();
    let mut routes = Vec::new();
    for (name, reg) in &file.registries {
        let path = format!("registries.{name}");
        if let Some(registry) = compile_registry(name, reg, &defaults, &path, &mut errors) {
            let index = registries.len();
            for (i, route) in reg.routes.iter().enumerate() {
                let rpath = format!("{path}.routes[{i}]");
                if let Some(r) = compile_route(route, index, &rpath, &mut errors) {
                    routes.push((rpath, r));
                }
            }
            registries.push(Arc::new(registry));
        }
    }
    if file.registries.is_empty() {
        errors.push("registries", "no registry configured: the gateway would route nothing");
    }
    reject_duplicate_routes(&routes, &mut errors);

    let routes = routes.into_iter().map(|(_, r)| r).collect();
    let admin = file.admin.as_ref().and_then(|a| continuity::compile_admin(a, &mut errors));
    let log = super::log::compile_log(&file.log, &mut errors);
    errors.finish(())?;
    // compile_server records an error whenever it returns None, so this
    // branch is unreachable; it stays an error rather than a panic.
    let server = server.ok_or_else(|| {
        ConfigErrors(vec![super::ConfigError { path: "server".into(), reason: "invalid".into() }])
    })?;
    Ok(Config { server, registries, routes, admin, log })
}

fn compile_server(file: &ServerFile, errors: &mut Errors) -> Option<ServerSettings> {
    let listen = errors.check("server.listen", parse::listen_addr(&file.listen));
    let mut trusted_proxies = Vec::new();
    for (i, text) in file.trusted_proxies.iter().enumerate() {
        let path = format!("server.trusted_proxies[{i}]");
        trusted_proxies.extend(errors.check(&path, parse::trusted_net(text)));
    }
    let name = match &file.name {
        Some(n) => errors.check("server.name", parse::token(n)),
        None => Some(DEFAULT_NAME.to_string()),
    };
    let max_header_bytes =
        opt(errors, "server.max_header_bytes", file.max_header_bytes.as_ref(), parse::size)
            .unwrap_or(16 << 10);
    let max_headers = match file.max_headers {
        Some(0) => errors.check("server.max_headers", Err("must be greater than zero".into())),
        Some(n) => Some(n),
        None => Some(64),
    };
    let client_idle_timeout =
        opt(errors, "server.client_idle_timeout", file.client_idle_timeout.as_deref(), parse::duration)
            .unwrap_or(std::time::Duration::from_secs(30));
    let shutdown_grace =
        opt(errors, "server.shutdown_grace", file.shutdown_grace.as_deref(), parse::duration)
            .unwrap_or(std::time::Duration::from_secs(30));
    let served_by_header =
        header_name(errors, "server.served_by_header", file.served_by_header.as_deref(), "x-served-by");
    let freshness_header =
        header_name(errors, "server.freshness_header", file.freshness_header.as_deref(), "x-data-freshness");
    let edge = super::edge::compile(file, errors);
    // Err: `[server.tls]` is present but invalid (its errors are recorded).
    let tls = match &file.tls {
        None => Ok(None),
        Some(t) => super::tls::compile_server(t, errors).map(Some).ok_or(()),
    };
    let workers = match file.workers {
        Some(0) => errors.check("server.workers", Err("must be at least 1".into())),
        other => other,
    };
    Some(ServerSettings {
        listen: listen?,
        trusted_proxies,
        name: name?,
        max_header_bytes: usize::try_from(max_header_bytes).unwrap_or(usize::MAX),
        max_headers: usize::try_from(max_headers?).unwrap_or(usize::MAX),
        client_idle_timeout,
        shutdown_grace,
        workers: workers.map(|w| w as usize),
        served_by_header: served_by_header?,
        freshness_header: freshness_header?,
        edge,
        tls: tls.ok()?,
    })
}

/// A configurable response header: `""` turns it off (`Some(None)`).
fn header_name(
    errors: &mut Errors,
    path: &str,
    value: Option<&str>,
    default: &str,
) -> Option<Option<http::HeaderName>> {
    match value.unwrap_or(default) {
        "" => Some(None),
        name => errors
            .check(
                path,
                http::HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| format!("invalid header name \"{name}\"")),
            )
            .map(Some),
    }
}

/// Parses an optional value, recording its error; `None` when absent or bad.
fn opt<V: ?Sized, T>(
    errors: &mut Errors,
    path: &str,
    value: Option<&V>,
    parse: impl Fn(&V) -> Result<T, String>,
) -> Option<T> {
    value.and_then(|v| errors.check(path, parse(v)))
}

fn compile_limits(file: &LimitsFile, base: &Limits, path: &str, errors: &mut Errors) -> Limits {
    let key = |k: &str| format!("{path}.{k}");
    let connect_timeout =
        opt(errors, &key("connect_timeout"), file.connect_timeout.as_deref(), parse::duration);
    let response_header_timeout = opt(
        errors,
        &key("response_header_timeout"),
        file.response_header_timeout.as_deref(),
        parse::duration,
    );
    let request_timeout =
        opt(errors, &key("request_timeout"), file.request_timeout.as_deref(), parse::duration);
    let max_request_body = opt(errors, &key("max_request_body"), file.max_request_body.as_ref(), parse::size);
    Limits {
        connect_timeout: connect_timeout.unwrap_or(base.connect_timeout),
        response_header_timeout: response_header_timeout.unwrap_or(base.response_header_timeout),
        request_timeout: request_timeout.unwrap_or(base.request_timeout),
        max_request_body: max_request_body.unwrap_or(base.max_request_body),
    }
}

fn compile_registry(
    name: &str,
    file: &RegistryFile,
    defaults: &Limits,
    path: &str,
    errors: &mut Errors,
) -> Option<Registry> {
    let name_ok = errors.check(path, registry_name(name)).is_some();
    if file.routes.is_empty() {
        errors.push(format!("{path}.routes"), "at least one route is needed");
    }
    let limits = compile_limits(&file.limits, defaults, &format!("{path}.limits"), errors);
    let mut sites = Vec::new();
    for (site_name, site) in &file.sites {
        sites.extend(compile_site(site_name, site, &format!("{path}.sites.{site_name}"), errors));
    }
    if !file.sites.contains_key(HOME) {
        errors.push(format!("{path}.sites"), "missing the `home` site: every registry needs one");
        return None;
    }
    sites.sort_by(|a, b| {
        (a.kind != SiteKind::Home, a.priority, &a.name).cmp(&(b.kind != SiteKind::Home, b.priority, &b.name))
    });
    let continuity = continuity::compile_continuity(&file.continuity, &format!("{path}.continuity"), errors);
    let live_embassy = sites.iter().any(|s| s.kind == SiteKind::Embassy && s.freshness == Freshness::Live);
    if continuity.write_policy == WritePolicy::Forward && !live_embassy {
        errors.push(
            format!("{path}.continuity.write_policy"),
            "forward needs an embassy site with freshness = \"live\" to take the writes",
        );
    }
    let burst =
        file.burst.as_ref().map(|b| Arc::new(super::burst::compile(b, &format!("{path}.burst"), errors)));
    let cache = file.cache.as_ref().map(|c| super::cache::compile(c, &format!("{path}.cache"), errors));
    let plugins = super::plugins::compile_chain(name, &file.plugins, path, errors);
    name_ok.then(|| Registry { name: name.into(), sites, limits, continuity, burst, cache, plugins })
}

fn registry_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!("invalid registry name \"{name}\": use lower-case letters, digits, - and _"))
    }
}

fn compile_site(name: &str, file: &SiteFile, path: &str, errors: &mut Errors) -> Option<SiteSpec> {
    let name_ok =
        errors.check(path, registry_name(name).map_err(|e| e.replace("registry", "site"))).is_some();
    if file.backends.is_empty() {
        errors.push(format!("{path}.backends"), "at least one backend address is needed");
    }
    let mut backends = Vec::new();
    for (i, text) in file.backends.iter().enumerate() {
        backends.extend(errors.check(&format!("{path}.backends[{i}]"), parse::backend_addr(text)));
    }
    let kind = if name == HOME { SiteKind::Home } else { SiteKind::Embassy };
    let freshness = continuity::compile_freshness(file, path, errors);
    let health_check = file
        .health_check
        .as_ref()
        .and_then(|h| continuity::compile_health(h, &format!("{path}.health_check"), errors));
    let outlier = continuity::compile_outlier(&file.outlier, &format!("{path}.outlier"), errors);
    let tls = match &file.tls {
        None => None,
        Some(t) => Some(Arc::new(super::tls::compile_site(t, &format!("{path}.tls"), errors)?)),
    };
    (name_ok && backends.len() == file.backends.len() && !backends.is_empty()).then(|| SiteSpec {
        name: name.into(),
        kind,
        priority: file.priority.unwrap_or(100),
        backends,
        freshness,
        health_check,
        outlier,
        tls,
    })
}

fn compile_route(file: &RouteFile, registry: usize, path: &str, errors: &mut Errors) -> Option<Route> {
    let host = match &file.host {
        Some(h) => errors.check(&format!("{path}.host"), route_host(h)).map(Some)?,
        None => None,
    };
    let prefix =
        errors.check(&format!("{path}.prefix"), normalise_prefix(file.prefix.as_deref().unwrap_or("/")))?;
    let rewrite = match (&file.rewrite_prefix, file.strip_prefix) {
        (Some(_), true) => {
            errors.push(path, "set either strip_prefix or rewrite_prefix, not both");
            return None;
        }
        (Some(r), false) => {
            Rewrite::Replace(errors.check(&format!("{path}.rewrite_prefix"), normalise_prefix(r))?)
        }
        (None, true) => Rewrite::Strip,
        (None, false) => Rewrite::Keep,
    };
    Some(Route { registry, host, prefix, rewrite })
}

fn route_host(host: &str) -> Result<String, String> {
    let ok = !host.is_empty()
        && !host.contains(':')
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    if ok {
        Ok(host.to_ascii_lowercase())
    } else {
        Err(format!("invalid host \"{host}\": expected a DNS name without port"))
    }
}

/// `/population/` and `/population` are the same prefix: matching is by whole
/// path segments, so the trailing slash carries no meaning.
fn normalise_prefix(prefix: &str) -> Result<String, String> {
    if !prefix.starts_with('/') {
        return Err(format!("invalid prefix \"{prefix}\": must start with /"));
    }
    if prefix.contains(['?', '#', ' ']) || prefix.contains("//") {
        return Err(format!("invalid prefix \"{prefix}\": must be a plain path without ?, #, spaces or //"));
    }
    let trimmed = prefix.trim_end_matches('/');
    Ok(if trimmed.is_empty() { "/".into() } else { trimmed.into() })
}

fn reject_duplicate_routes(routes: &[(String, Route)], errors: &mut Errors) {
    let mut seen: HashMap<(&Option<String>, &str), &str> = HashMap::new();
    for (path, route) in routes {
        if let Some(first) = seen.insert((&route.host, &route.prefix), path) {
            let host = route.host.as_deref().unwrap_or("any host");
            errors.push(
                path.as_str(),
                format!("duplicate route: prefix \"{}\" on {host} is already taken by {first}", route.prefix),
            );
        }
    }
}
