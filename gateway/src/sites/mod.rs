//! Sites: where a registry is served from, and which backend of a site takes
//! the next request. Health checks and the continuity state machine build on
//! this (issue 3); for now every request goes to `home`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::uri::Authority;

use crate::config::{Registry, SiteSpec};

/// Live state of one registry's sites.
#[derive(Debug)]
pub struct RegistrySites {
    pub registry: Arc<Registry>,
    pools: Vec<SitePool>,
}

/// A site's backends with a round-robin cursor.
#[derive(Debug)]
pub struct SitePool {
    pub spec: SiteSpec,
    next: AtomicUsize,
}

/// The site and backend chosen for one attempt.
#[derive(Debug, Clone, Copy)]
pub struct Target<'a> {
    pub site: &'a SiteSpec,
    pub backend: &'a Authority,
}

impl RegistrySites {
    pub fn new(registry: Arc<Registry>) -> RegistrySites {
        let pools = registry
            .sites
            .iter()
            .map(|spec| SitePool {
                spec: spec.clone(),
                next: AtomicUsize::new(0),
            })
            .collect();
        RegistrySites { registry, pools }
    }

    /// The site that serves while home is the whole story.
    pub fn home(&self) -> &SitePool {
        &self.pools[0]
    }
}

impl SitePool {
    /// Next backend, round-robin. Relaxed is enough: fairness, not ordering,
    /// is what matters, and a lost race only repeats one backend.
    pub fn next_target(&self) -> Target<'_> {
        let n = self.spec.backends.len();
        let i = if n == 1 {
            0
        } else {
            self.next.fetch_add(1, Ordering::Relaxed) % n
        };
        Target {
            site: &self.spec,
            backend: &self.spec.backends[i],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SiteKind;

    #[test]
    fn backends_take_turns() {
        let spec = SiteSpec {
            name: "home".into(),
            kind: SiteKind::Home,
            priority: 0,
            backends: vec![
                "127.0.0.1:1".parse().unwrap(),
                "127.0.0.1:2".parse().unwrap(),
            ],
            tls: None,
        };
        let pool = SitePool {
            spec,
            next: AtomicUsize::new(0),
        };
        let picks: Vec<_> = (0..4)
            .map(|_| pool.next_target().backend.port_u16().unwrap())
            .collect();
        assert_eq!(picks, vec![1, 2, 1, 2]);
    }
}
