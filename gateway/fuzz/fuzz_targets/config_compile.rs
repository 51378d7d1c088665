//! The config compiler on arbitrary text: it must answer Ok or keyed
//! errors, never panic. TLS sections are compiled too (files are only read
//! by `gateway::tls`, which this target does not call).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(errors) = gateway::config::from_toml(text) {
            // Rendering every error is part of the contract too.
            let _ = errors.to_string();
        }
    }
});
