//! `[registries.NAME.cache]`: the response cache for GET and HEAD.

use std::time::Duration;

use serde::Deserialize;

use super::error::Errors;
use super::file::SizeFile;
use super::parse;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheFile {
    /// Total bytes of cached responses (bodies plus headers), e.g. "64MiB".
    pub max_bytes: SizeFile,
    /// Larger responses are not cached (default 1MiB).
    pub max_entry_bytes: Option<SizeFile>,
    /// RFC 5861 defaults for responses that do not state their own.
    pub stale_while_revalidate: Option<String>,
    pub stale_if_error: Option<String>,
    /// How long identical misses wait for the first one's answer (default 5s).
    pub coalesce_timeout: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSettings {
    pub max_bytes: u64,
    pub max_entry_bytes: u64,
    pub stale_while_revalidate: Duration,
    pub stale_if_error: Duration,
    pub coalesce_timeout: Duration,
}

pub(crate) fn compile(file: &CacheFile, path: &str, errors: &mut Errors) -> CacheSettings {
    let key = |k: &str| format!("{path}.{k}");
    let max_bytes = errors.check(&key("max_bytes"), parse::size(&file.max_bytes)).unwrap_or(0);
    if max_bytes == 0 {
        errors.push(key("max_bytes"), "must be greater than zero");
    }
    let max_entry_bytes = file
        .max_entry_bytes
        .as_ref()
        .and_then(|s| errors.check(&key("max_entry_bytes"), parse::size(s)))
        .unwrap_or(1 << 20);
    if max_entry_bytes > max_bytes && max_bytes > 0 {
        errors.push(key("max_entry_bytes"), "must not exceed max_bytes");
    }
    let mut d = |k: &str, v: &Option<String>, default: Duration| {
        v.as_deref().and_then(|t| errors.check(&key(k), parse::duration(t))).unwrap_or(default)
    };
    CacheSettings {
        max_bytes,
        max_entry_bytes,
        stale_while_revalidate: d("stale_while_revalidate", &file.stale_while_revalidate, Duration::ZERO),
        stale_if_error: d("stale_if_error", &file.stale_if_error, Duration::ZERO),
        coalesce_timeout: d("coalesce_timeout", &file.coalesce_timeout, Duration::from_secs(5)),
    }
}
