//! Connection limits (overall and per client address) and the accept
//! back-off that keeps a listener out of file descriptors from spinning.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::config::edge::EdgeLimits;

/// Why a connection was turned away at accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `server.max_connections` are open.
    Full,
    /// This address has `server.max_connections_per_client` open.
    ClientFull,
}

#[derive(Debug)]
pub struct ConnLimiter {
    max_total: usize,
    max_per_client: usize,
    open: Mutex<Open>,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    per_client: HashMap<IpAddr, usize>,
}

/// Holds one connection's place; dropping it frees the place.
#[derive(Debug)]
pub struct ConnPermit {
    limiter: Arc<ConnLimiter>,
    client: IpAddr,
}

impl ConnLimiter {
    pub fn new(limits: &EdgeLimits) -> Arc<ConnLimiter> {
        Arc::new(ConnLimiter {
            max_total: limits.max_connections,
            max_per_client: limits.max_connections_per_client,
            open: Mutex::new(Open::default()),
        })
    }

    /// Takes a place for a connection from `client`, or says why not.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<ConnPermit, Refusal> {
        // An IPv4 client on a dual-stack socket counts as itself.
        let client = client.to_canonical();
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.total >= self.max_total {
            return Err(Refusal::Full);
        }
        let mine = open.per_client.entry(client).or_insert(0);
        if *mine >= self.max_per_client {
            return Err(Refusal::ClientFull);
        }
        *mine += 1;
        open.total += 1;
        Ok(ConnPermit { limiter: self.clone(), client })
    }

    pub fn open(&self) -> usize {
        self.open.lock().map(|o| o.total).unwrap_or(0)
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut open = self.limiter.open.lock().unwrap_or_else(|p| p.into_inner());
        open.total = open.total.saturating_sub(1);
        if let Some(n) = open.per_client.get_mut(&self.client) {
            *n -= 1;
            if *n == 0 {
                open.per_client.remove(&self.client);
            }
        }
    }
}

/// Accept errors: per-connection ones are skipped at once; running out of
/// descriptors or memory backs off, doubling up to a second, so the loop
/// sleeps instead of spinning while connections drain.
#[derive(Debug, Default)]
pub struct AcceptBackoff {
    delay: Option<Duration>,
}

impl AcceptBackoff {
    const FIRST: Duration = Duration::from_millis(10);
    const MAX: Duration = Duration::from_secs(1);

    pub fn succeeded(&mut self) {
        self.delay = None;
    }

    pub async fn failed(&mut self, e: io::Error) {
        if !is_resource_exhaustion(&e) {
            tracing::debug!(error = %e, "accept failed for one connection");
            return;
        }
        let delay = self.delay.map_or(Self::FIRST, |d| (d * 2).min(Self::MAX));
        if self.delay.is_none() || delay == Self::MAX {
            tracing::warn!(error = %e, backoff = ?delay, "cannot accept: out of resources; backing off");
        }
        self.delay = Some(delay);
        tokio::time::sleep(delay).await;
    }
}

/// EMFILE, ENFILE, ENOBUFS, ENOMEM: the process or system is out of
/// something that only closing connections gives back.
fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12)) || e.kind() == io::ErrorKind::OutOfMemory
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(total: usize, per: usize) -> Arc<ConnLimiter> {
        ConnLimiter::new(&EdgeLimits {
            max_connections: total,
            max_connections_per_client: per,
            ..EdgeLimits::default()
        })
    }

    #[test]
    fn a_client_over_its_share_is_refused_and_others_still_admitted() {
        let l = limiter(3, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let p1 = l.admit(a).unwrap();
        let _p2 = l.admit(a).unwrap();
        assert_eq!(l.admit(a).unwrap_err(), Refusal::ClientFull);
        let _p3 = l.admit(b).unwrap();
        assert_eq!(l.admit(b).unwrap_err(), Refusal::Full);
        drop(p1);
        assert!(l.admit(a).is_ok());
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_the_ipv4_client() {
        let l = limiter(10, 1);
        let _p = l.admit("127.0.0.1".parse().unwrap()).unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(l.admit(mapped).unwrap_err(), Refusal::ClientFull);
    }

    #[test]
    fn out_of_descriptors_counts_as_exhaustion_but_a_reset_does_not() {
        assert!(is_resource_exhaustion(&io::Error::from_raw_os_error(24)));
        assert!(!is_resource_exhaustion(&io::Error::from(io::ErrorKind::ConnectionAborted)));
    }
}
