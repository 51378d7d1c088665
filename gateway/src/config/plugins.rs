//! `[[registries.NAME.plugins]]`: a registry's plugin chain, in order.
//! Compiling a plugin entry also loads the plugin (compile or compile
//! cache, link, a trial instantiation), so `gateway check` and a reload
//! refuse a plugin that cannot run, naming its key path.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::error::Errors;
use super::file::SizeFile;
use super::parse;
use crate::plugin::{Capabilities, Chain, FailPolicy, InstanceMode, LoadedPlugin, OverCap, PluginSpec};

/// One plugin in a registry's chain.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginFile {
    /// Unique in the registry; default: the file name without `.wasm`.
    pub name: Option<String>,
    /// The component (.wasm), relative to the working directory.
    pub path: String,
    /// Handed to the plugin as JSON (capability `config`).
    pub config: Option<toml::Table>,
    /// Host capabilities granted: `log`, `metrics`, `kv`, `clock`, `config`.
    #[serde(default)]
    pub capabilities: Vec<String>,
    /// `open` (skip the plugin on failure) or `closed` (fail the request; default).
    pub fail: Option<String>,
    /// `per-request` (default) or `shared` (only for stateless plugins on public data).
    pub instance: Option<String>,
    /// Per hook call, e.g. `"20ms"` (default 50ms).
    pub timeout: Option<String>,
    /// Linear memory cap, e.g. `"16MiB"` (default).
    pub max_memory: Option<SizeFile>,
    /// Body buffering cap and largest body the plugin may return (default 1MiB).
    pub max_body: Option<SizeFile>,
    /// Body over `max_body`: `skip` the plugin (default) or `reject` (413 / 5xx).
    pub over_cap: Option<String>,
}

fn choice<T: Copy>(
    path: &str,
    value: Option<&str>,
    default: T,
    options: &[(&str, T)],
    errors: &mut Errors,
) -> T {
    let Some(text) = value else { return default };
    match options.iter().find(|(name, _)| *name == text) {
        Some((_, v)) => *v,
        None => {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            errors.push(path, format!("unknown value \"{text}\": expected one of {}", names.join(", ")));
            default
        }
    }
}

/// Compiles and loads every plugin of `registry`; errors name
/// `registries.NAME.plugins[i].KEY`.
pub(crate) fn compile_chain(registry: &str, files: &[PluginFile], path: &str, errors: &mut Errors) -> Chain {
    let mut plugins = Vec::new();
    let mut names = HashSet::new();
    for (i, file) in files.iter().enumerate() {
        let path = format!("{path}.plugins[{i}]");
        let Some(spec) = compile_spec(registry, file, &path, errors) else { continue };
        if !names.insert(spec.name.clone()) {
            errors.push(
                format!("{path}.name"),
                format!("duplicate plugin name \"{}\" in this registry", spec.name),
            );
            continue;
        }
        match LoadedPlugin::load(spec) {
            Ok(p) => plugins.push(p),
            Err(reason) => errors.push(format!("{path}.path"), reason),
        }
    }
    Chain { plugins }
}

fn compile_spec(registry: &str, file: &PluginFile, path: &str, errors: &mut Errors) -> Option<PluginSpec> {
    let key = |k: &str| format!("{path}.{k}");
    let file_path = PathBuf::from(&file.path);
    let default_name =
        file_path.file_stem().map(|s| s.to_string_lossy().replace('_', "-")).unwrap_or_default();
    let name = file.name.clone().unwrap_or(default_name);
    let name_ok = !name.is_empty()
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !name_ok {
        errors.push(
            key("name"),
            format!("invalid plugin name \"{name}\": use lower-case letters, digits, - and _"),
        );
    }
    let mut capabilities = Capabilities::default();
    for (j, cap) in file.capabilities.iter().enumerate() {
        if !capabilities.grant(cap) {
            let known = Capabilities::NAMES.join(", ");
            errors.push(
                format!("{path}.capabilities[{j}]"),
                format!("unknown capability \"{cap}\": expected one of {known}"),
            );
        }
    }
    let config_json = match &file.config {
        Some(table) => serde_json::to_string(table).unwrap_or_else(|_| "{}".into()),
        None => "{}".into(),
    };
    let fail = choice(
        &key("fail"),
        file.fail.as_deref(),
        FailPolicy::Closed,
        &[("open", FailPolicy::Open), ("closed", FailPolicy::Closed)],
        errors,
    );
    let instance = choice(
        &key("instance"),
        file.instance.as_deref(),
        InstanceMode::PerRequest,
        &[("per-request", InstanceMode::PerRequest), ("shared", InstanceMode::Shared)],
        errors,
    );
    let over_cap = choice(
        &key("over_cap"),
        file.over_cap.as_deref(),
        OverCap::Skip,
        &[("skip", OverCap::Skip), ("reject", OverCap::Reject)],
        errors,
    );
    let timeout = file.timeout.as_deref().and_then(|t| errors.check(&key("timeout"), parse::duration(t)));
    let timeout = timeout.unwrap_or(Duration::from_millis(50));
    if timeout.is_zero() || timeout > Duration::from_secs(10) {
        errors.push(key("timeout"), "must be between 1ms and 10s");
    }
    let max_memory = size(file.max_memory.as_ref(), &key("max_memory"), 16 << 20, errors);
    if max_memory > crate::plugin::engine::MAX_MEMORY {
        errors.push(key("max_memory"), format!("at most {} MiB", crate::plugin::engine::MAX_MEMORY >> 20));
    }
    let max_body = size(file.max_body.as_ref(), &key("max_body"), 1 << 20, errors);
    name_ok.then(|| PluginSpec {
        name,
        registry: registry.to_string(),
        path: file_path,
        config_json,
        capabilities,
        fail,
        instance,
        timeout,
        max_memory,
        max_body,
        over_cap,
    })
}

fn size(value: Option<&SizeFile>, path: &str, default: usize, errors: &mut Errors) -> usize {
    value
        .and_then(|v| errors.check(path, parse::size(v)))
        .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        .unwrap_or(default)
}
