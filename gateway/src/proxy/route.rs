//! Route phase: host + path prefix -> registry, longest prefix wins.

use std::sync::Arc;

use crate::config::{Config, Registry, Rewrite, Route};

/// Routes in match order: longest prefix first, host-specific before
/// host-less at equal length. Registries are few (tens), so an ordered scan
/// beats a trie on constant factors; `benches/` measures it.
#[derive(Debug)]
pub struct Router {
    routes: Vec<Route>,
    registries: Vec<Arc<Registry>>,
}

/// The outcome of routing one request.
#[derive(Debug)]
pub struct Routed<'a> {
    pub registry: &'a Arc<Registry>,
    pub route: &'a Route,
}

impl Router {
    pub fn new(config: &Config) -> Router {
        let mut routes = config.routes.clone();
        routes.sort_by(|a, b| {
            b.prefix.len().cmp(&a.prefix.len()).then_with(|| b.host.is_some().cmp(&a.host.is_some()))
        });
        Router { routes, registries: config.registries.clone() }
    }

    /// `host` is the request's host without port, any case.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<Routed<'_>> {
        self.routes
            .iter()
            .find(|r| host_matches(r, host) && prefix_matches(&r.prefix, path))
            .map(|route| Routed { registry: &self.registries[route.registry], route })
    }

    pub fn registries(&self) -> &[Arc<Registry>] {
        &self.registries
    }
}

fn host_matches(route: &Route, host: Option<&str>) -> bool {
    match (&route.host, host) {
        (None, _) => true,
        (Some(want), Some(got)) => want.eq_ignore_ascii_case(got),
        (Some(_), None) => false,
    }
}

/// Whole-segment match: `/tax` matches `/tax` and `/tax/x`, not `/taxes`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if prefix == "/" {
        return true;
    }
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The path to send upstream. `path` has already matched `route`.
pub fn rewrite_path(route: &Route, path: &str) -> String {
    let rest = if route.prefix == "/" { path } else { &path[route.prefix.len()..] };
    match &route.rewrite {
        Rewrite::Keep => path.to_string(),
        Rewrite::Strip if rest.is_empty() => "/".to_string(),
        Rewrite::Strip => rest.to_string(),
        Rewrite::Replace(to) => {
            let base = to.trim_end_matches('/');
            if rest.is_empty() {
                if to == "/" {
                    "/".into()
                } else {
                    base.to_string()
                }
            } else {
                format!("{base}{rest}")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, rewrite: Rewrite) -> Route {
        Route { registry: 0, host: None, prefix: prefix.into(), rewrite }
    }

    #[test]
    fn prefixes_match_whole_segments_only() {
        assert!(prefix_matches("/tax", "/tax"));
        assert!(prefix_matches("/tax", "/tax/returns/1"));
        assert!(!prefix_matches("/tax", "/taxes"));
        assert!(prefix_matches("/", "/anything"));
    }

    #[test]
    fn strip_and_replace_keep_the_rest_of_the_path() {
        let strip = route("/population", Rewrite::Strip);
        assert_eq!(rewrite_path(&strip, "/population/people/1"), "/people/1");
        assert_eq!(rewrite_path(&strip, "/population"), "/");
        let replace = route("/population", Rewrite::Replace("/v2/rahvastik".into()));
        assert_eq!(rewrite_path(&replace, "/population/people/1"), "/v2/rahvastik/people/1");
        assert_eq!(rewrite_path(&replace, "/population"), "/v2/rahvastik");
        let keep = route("/population", Rewrite::Keep);
        assert_eq!(rewrite_path(&keep, "/population/x"), "/population/x");
        let root = route("/", Rewrite::Replace("/api".into()));
        assert_eq!(rewrite_path(&root, "/x"), "/api/x");
    }
}
