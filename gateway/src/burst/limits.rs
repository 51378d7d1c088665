//! Token-bucket rate limits (governor's GCRA): one for the whole registry
//! and one per client identity (IP, a header or a cookie).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use http::HeaderMap;

use crate::config::burst::{ClientKey, Rate};

/// Which bucket said no, and how long until it would say yes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub scope: &'static str,
    pub wait: Duration,
}

pub struct RateLimits {
    registry: Option<DefaultDirectRateLimiter>,
    clients: Option<DefaultKeyedRateLimiter<String>>,
    key: ClientKey,
    checks: AtomicU64,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits").field("key", &self.key).finish_non_exhaustive()
    }
}

fn quota(rate: Rate) -> Quota {
    let nz = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(nz(rate.per_second)).allow_burst(nz(rate.burst))
}

/// Forgotten client buckets are swept every this many checks, so a flood
/// of one-off identities cannot grow the map without bound.
const SWEEP_EVERY: u64 = 4096;

impl RateLimits {
    pub fn new(registry: Option<Rate>, client: Option<Rate>, key: ClientKey) -> Option<RateLimits> {
        (registry.is_some() || client.is_some()).then(|| RateLimits {
            registry: registry.map(|r| governor::RateLimiter::direct(quota(r))),
            clients: client.map(|r| governor::RateLimiter::keyed(quota(r))),
            key,
            checks: AtomicU64::new(0),
        })
    }

    /// Takes one token from the client's bucket, then the registry's. The
    /// client bucket goes first so that one greedy client is refused
    /// without draining the tokens everyone shares.
    pub fn check(&self, peer: IpAddr, headers: &HeaderMap) -> Result<(), Limited> {
        let clock = DefaultClock::default();
        if let Some(clients) = &self.clients {
            let id = identity(&self.key, peer, headers);
            clients
                .check_key(&id)
                .map_err(|n| Limited { scope: "client", wait: n.wait_time_from(clock.now()) })?;
            if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
                clients.retain_recent();
                clients.shrink_to_fit();
            }
        }
        if let Some(registry) = &self.registry {
            registry
                .check()
                .map_err(|n| Limited { scope: "registry", wait: n.wait_time_from(clock.now()) })?;
        }
        Ok(())
    }
}

/// Who the client is. Without the configured header or cookie the client
/// is its IP address, so leaving the field out does not escape the limit.
pub fn identity(key: &ClientKey, peer: IpAddr, headers: &HeaderMap) -> String {
    let found = match key {
        ClientKey::Ip => None,
        ClientKey::Header(name) => headers.get(name).and_then(|v| v.to_str().ok()).map(|v| format!("h:{v}")),
        ClientKey::Cookie(name) => cookie(headers, name).map(|v| format!("c:{v}")),
    };
    found.unwrap_or_else(|| peer.to_string())
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_key_reads_a_cookie_and_falls_back_to_the_ip() {
        let mut h = HeaderMap::new();
        h.insert(http::header::COOKIE, "a=1; session=xyz".parse().unwrap());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(identity(&ClientKey::Cookie("session".into()), ip, &h), "c:xyz");
        assert_eq!(identity(&ClientKey::Cookie("other".into()), ip, &h), "10.0.0.1");
    }

    #[test]
    fn a_burst_is_allowed_then_refused_with_a_wait() {
        let r = RateLimits::new(None, Some(Rate { per_second: 1, burst: 2 }), ClientKey::Ip).unwrap();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let h = HeaderMap::new();
        assert!(r.check(ip, &h).is_ok());
        assert!(r.check(ip, &h).is_ok());
        let err = r.check(ip, &h).unwrap_err();
        assert_eq!(err.scope, "client");
        assert!(err.wait > Duration::ZERO && err.wait <= Duration::from_secs(1));
        assert!(r.check("10.0.0.2".parse().unwrap(), &h).is_ok(), "another client has its own bucket");
    }
}
