//! TLS with rustls (ring provider): termination on the public listener
//! ([`terminate`]) and the link to sites, mTLS to embassies ([`upstream`]).
//!
//! Only TLS 1.3 and 1.2 with ring's default suites: ECDHE key exchange and
//! AEAD ciphers (AES-GCM, ChaCha20-Poly1305). No CBC, no RSA key exchange.

pub mod terminate;
pub mod upstream;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{Config, ConfigError, ConfigErrors};

pub use terminate::Terminator;

/// A TLS setting that cannot be put to use. Always the operator's to fix:
/// it names the config key, the file and what is wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {problem}")]
pub struct TlsError {
    /// Key path in the config, e.g. `server.tls.certificates[0].key`.
    pub key: String,
    pub problem: TlsProblem,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsProblem {
    #[error("cannot read {}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{} holds no {what} in PEM form", path.display())]
    NoPem { path: PathBuf, what: &'static str },
    #[error("{} is not usable: {reason}", path.display())]
    Invalid { path: PathBuf, reason: String },
    #[error("the private key in {} does not belong to the certificate in {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("{0}")]
    Setup(String),
}

impl TlsError {
    pub fn new(key: impl Into<String>, problem: TlsProblem) -> TlsError {
        TlsError { key: key.into(), problem }
    }

    /// The same problem as a keyed config error, for `gateway check`.
    pub fn into_config_error(self) -> ConfigError {
        ConfigError { path: self.key, reason: self.problem.to_string() }
    }
}

/// The one crypto provider the gateway uses, on both sides.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Protocol versions offered and accepted: TLS 1.3 and 1.2 only.
pub static VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

/// Loads every PEM file the config names (server certificates and keys,
/// client CA, site CAs and client certificates) so that `gateway check` and
/// start-up report unusable files before serving, each under its key path.
pub fn preflight(config: &Config) -> Result<(), ConfigErrors> {
    let mut errors = Vec::new();
    if let Some(tls) = &config.server.tls {
        if let Err(e) = terminate::build_config(tls, None) {
            errors.push(e.into_config_error());
        }
    }
    for registry in &config.registries {
        for site in &registry.sites {
            if let Some(tls) = &site.tls {
                if let Err(e) = upstream::client_config(tls) {
                    errors.push(e.into_config_error());
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

fn read(key: &str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| {
        TlsError::new(key, TlsProblem::Unreadable { path: path.to_path_buf(), reason: e.to_string() })
    })
}

fn invalid(key: &str, path: &Path, reason: String) -> TlsError {
    TlsError::new(key, TlsProblem::Invalid { path: path.to_path_buf(), reason })
}

fn no_pem(key: &str, path: &Path, what: &'static str) -> TlsError {
    TlsError::new(key, TlsProblem::NoPem { path: path.to_path_buf(), what })
}

/// Every certificate in a PEM file, in order; at least one.
pub fn load_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(key, path, format!("bad PEM: {e}")))?;
    if certs.is_empty() {
        return Err(no_pem(key, path, "certificate"));
    }
    Ok(certs)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(key: &str, path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(key, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => no_pem(key, path, "private key"),
        other => invalid(key, path, format!("bad PEM: {other}")),
    })
}

/// A CA bundle as trust anchors; every certificate in it must parse.
pub fn load_roots(key: &str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for cert in load_certs(key, path)? {
        roots.add(cert).map_err(|e| invalid(key, path, format!("not a usable CA certificate: {e}")))?;
    }
    Ok(roots)
}

/// A certificate chain with its key, checked to belong together.
pub fn load_certified_key(
    key_path: &str,
    cert: &Path,
    key: &Path,
) -> Result<rustls::sign::CertifiedKey, TlsError> {
    let cert_key = format!("{key_path}.cert");
    let key_key = format!("{key_path}.key");
    let chain = load_certs(&cert_key, cert)?;
    let private = load_key(&key_key, key)?;
    let signing = provider()
        .key_provider
        .load_private_key(private)
        .map_err(|e| invalid(&key_key, key, format!("unsupported private key: {e}")))?;
    let certified = rustls::sign::CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Err(TlsError::new(
            key_path,
            TlsProblem::KeyMismatch { cert: cert.to_path_buf(), key: key.to_path_buf() },
        )),
        Err(e) => Err(invalid(&cert_key, cert, format!("the certificate cannot be parsed: {e}"))),
    }
}
