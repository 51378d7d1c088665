//! Configuration: TOML file structs ([`file`]) are compiled once
//! ([`compile()`]) into the runtime form ([`runtime`]). Every error names the
//! key path and the reason; all errors are reported together.

pub mod burst;
pub mod cache;
mod compile;
pub mod continuity;
pub mod edge;
mod error;
pub mod file;
pub mod log;
mod parse;
pub mod plugins;
pub mod runtime;
pub mod tls;

use std::path::Path;

pub use compile::{compile, HOME};
pub use error::{ConfigError, ConfigErrors};
pub use runtime::{
    AdminSettings, Config, ContinuitySettings, Freshness, HealthCheck, Limits, Outlier, Registry, Rewrite,
    Route, ServerSettings, SiteKind, SiteSpec, SnapshotSource, TokenSource, WritePolicy,
};

/// Parses and compiles configuration text.
pub fn from_toml(text: &str) -> Result<Config, ConfigErrors> {
    let deserializer = toml::Deserializer::new(text);
    let file: file::FileConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let line = inner.span().map(|s| text[..s.start.min(text.len())].lines().count().max(1));
        let mut reason = inner.message().to_string();
        if let Some(line) = line {
            reason.push_str(&format!(" (line {line})"));
        }
        let path = if path == "." { String::new() } else { path };
        ConfigErrors(vec![ConfigError { path, reason }])
    })?;
    compile(file)
}

/// Reads, parses and compiles a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            path: String::new(),
            reason: format!("cannot read {}: {e}", path.display()),
        }])
    })?;
    from_toml(&text)
}
