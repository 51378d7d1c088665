//! The shared key-value store behind the `kv` capability: one bounded moka
//! cache for the process, namespaced by registry (plugins of one registry
//! share keys; another registry's are out of reach). Survives reloads.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use moka::ops::compute::Op;
use moka::sync::Cache;
use moka::Expiry;

use super::bindings::wit::HostError;

const MAX_KEY: usize = 512;
const MAX_VALUE: usize = 256 << 10;
const MAX_TTL_MS: u64 = 24 * 3600 * 1000;
/// Total bytes of values kept, all registries together.
const CAPACITY_BYTES: u64 = 64 << 20;

#[derive(Clone, Debug)]
enum Value {
    Bytes(Arc<Vec<u8>>),
    Counter(i64),
}

#[derive(Clone, Debug)]
struct Entry {
    value: Value,
    ttl: Duration,
}

struct PerEntryTtl;

impl Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, e: &Entry, _: Instant) -> Option<Duration> {
        Some(e.ttl)
    }
    /// A counter keeps its first deadline (a fixed window); a `set` restarts it.
    fn expire_after_update(
        &self,
        _: &String,
        e: &Entry,
        _: Instant,
        left: Option<Duration>,
    ) -> Option<Duration> {
        match e.value {
            Value::Counter(_) => left,
            Value::Bytes(_) => Some(e.ttl),
        }
    }
}

pub struct Store {
    cache: Cache<String, Entry>,
}

pub fn store() -> &'static Store {
    static STORE: OnceLock<Store> = OnceLock::new();
    STORE.get_or_init(|| Store {
        cache: Cache::builder()
            .max_capacity(CAPACITY_BYTES)
            .weigher(|k: &String, e: &Entry| {
                let v = match &e.value {
                    Value::Bytes(b) => b.len(),
                    Value::Counter(_) => 8,
                };
                u32::try_from(k.len() + v + 32).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryTtl)
            .build(),
    })
}

fn key(registry: &str, key: &str) -> Result<String, HostError> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(HostError::Invalid(format!("keys are 1..={MAX_KEY} bytes")));
    }
    Ok(format!("{registry}\u{0}{key}"))
}

fn ttl(ms: u64) -> Result<Duration, HostError> {
    if ms == 0 || ms > MAX_TTL_MS {
        return Err(HostError::Invalid(format!("ttl-ms must be 1..={MAX_TTL_MS}")));
    }
    Ok(Duration::from_millis(ms))
}

impl Store {
    pub fn get(&self, registry: &str, k: &str) -> Result<Option<Vec<u8>>, HostError> {
        Ok(self.cache.get(&key(registry, k)?).map(|e| match e.value {
            Value::Bytes(b) => b.as_ref().clone(),
            Value::Counter(n) => n.to_string().into_bytes(),
        }))
    }

    pub fn set(&self, registry: &str, k: &str, value: Vec<u8>, ttl_ms: u64) -> Result<(), HostError> {
        if value.len() > MAX_VALUE {
            return Err(HostError::Invalid(format!("values are at most {MAX_VALUE} bytes")));
        }
        let entry = Entry { value: Value::Bytes(Arc::new(value)), ttl: ttl(ttl_ms)? };
        self.cache.insert(key(registry, k)?, entry);
        Ok(())
    }

    pub fn incr(&self, registry: &str, k: &str, delta: i64, ttl_ms: u64) -> Result<i64, HostError> {
        let ttl = ttl(ttl_ms)?;
        let mut result = 0;
        // Atomic per key: concurrent requests never lose an increment.
        self.cache.entry(key(registry, k)?).and_compute_with(|old| {
            let before = match old.map(|e| e.into_value().value) {
                Some(Value::Counter(n)) => n,
                _ => 0,
            };
            result = before.saturating_add(delta);
            Op::Put(Entry { value: Value::Counter(result), ttl })
        });
        Ok(result)
    }

    pub fn delete(&self, registry: &str, k: &str) -> Result<(), HostError> {
        self.cache.invalidate(&key(registry, k)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_do_not_see_each_others_keys_and_counters_add_up() {
        let s = store();
        s.set("population", "k", b"v".to_vec(), 60_000).unwrap();
        assert_eq!(s.get("tax", "k").unwrap(), None);
        assert_eq!(s.get("population", "k").unwrap(), Some(b"v".to_vec()));
        assert_eq!(s.incr("tax", "n", 2, 60_000).unwrap(), 2);
        assert_eq!(s.incr("tax", "n", 3, 60_000).unwrap(), 5);
        assert!(matches!(s.set("tax", "", vec![], 10), Err(HostError::Invalid(_))));
    }
}
