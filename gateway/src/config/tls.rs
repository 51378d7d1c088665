//! TLS settings: `[server.tls]` (termination) and
//! `[registries.R.sites.S.tls]` (the link to a site, mTLS to embassies).
//!
//! Compile checks shape only (paths present, names valid, pins decodable);
//! reading and parsing the PEM files happens in [`crate::tls`], at start and
//! on every reload, so this stays pure and cheap to fuzz.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use rustls_pki_types::ServerName;
use serde::Deserialize;

use super::error::Errors;
use super::parse;

/// `[server.tls]`: terminate TLS on the public listener.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsFile {
    /// One or more certificates; the first also serves clients that send no
    /// (or an unknown) server name.
    pub certificates: Vec<CertificateFile>,
    /// PEM bundle of CAs whose client certificates are accepted.
    pub client_ca: Option<String>,
    /// Refuse handshakes without a client certificate (needs `client_ca`).
    #[serde(default)]
    pub require_client_cert: bool,
    /// How long a client may take to complete the TLS handshake.
    pub handshake_timeout: Option<String>,
    /// How often the PEM files are checked for changes; `"off"` disables
    /// polling (SIGHUP still reloads).
    pub reload_check: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateFile {
    /// PEM: the end-entity certificate first, then intermediates.
    pub cert: String,
    /// PEM: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: String,
    /// SNI names this certificate answers; `*.example.org` matches one label.
    #[serde(default)]
    pub server_names: Vec<String>,
}

/// `[registries.R.sites.S.tls]`: speak TLS to this site's backends.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteTlsFile {
    /// PEM bundle of the CAs that may sign the site's certificate. Required:
    /// an embassy link trusts its own PKI, not the public web's.
    pub ca: Option<String>,
    /// Client certificate (PEM chain) presented to the site: mTLS.
    pub client_cert: Option<String>,
    pub client_key: Option<String>,
    /// Name to verify the site's certificate against (and send as SNI)
    /// instead of the host in `backends`.
    pub server_name: Option<String>,
    /// base64 SHA-256 of acceptable SubjectPublicKeyInfo; checked after the
    /// normal chain verification.
    #[serde(default)]
    pub pin_sha256: Vec<String>,
    /// Offer HTTP/2 by ALPN (the site may still choose HTTP/1.1).
    #[serde(default)]
    pub http2: bool,
}

/// Compiled `[server.tls]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTls {
    pub certificates: Vec<CertificatePaths>,
    pub client_ca: Option<PathBuf>,
    pub require_client_cert: bool,
    pub handshake_timeout: Duration,
    /// `None`: no polling, SIGHUP only.
    pub reload_check: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificatePaths {
    /// Key path in the config (`server.tls.certificates[0]`), for errors.
    pub key_path: String,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Lower-case; a leading `*.` marks a wildcard.
    pub server_names: Vec<String>,
}

/// Compiled `[registries.R.sites.S.tls]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTls {
    /// Key path in the config, for errors.
    pub key_path: String,
    pub ca: PathBuf,
    pub client_cert: Option<(PathBuf, PathBuf)>,
    pub server_name: Option<ServerName<'static>>,
    pub pins: Vec<[u8; 32]>,
    pub http2: bool,
}

pub(crate) fn compile_server(file: &ServerTlsFile, errors: &mut Errors) -> Option<ServerTls> {
    let key = |k: &str| format!("server.tls.{k}");
    if file.certificates.is_empty() {
        errors.push(key("certificates"), "at least one certificate is needed");
    }
    let mut certificates = Vec::new();
    for (i, c) in file.certificates.iter().enumerate() {
        certificates.extend(compile_certificate(c, &key(&format!("certificates[{i}]")), errors));
    }
    let client_ca = file.client_ca.as_deref().and_then(|p| errors.check(&key("client_ca"), path(p)));
    if file.require_client_cert && file.client_ca.is_none() {
        errors.push(
            key("require_client_cert"),
            "needs client_ca: without it no client certificate can be verified",
        );
    }
    // Each value is checked even when an earlier one failed: all errors
    // are reported together.
    let handshake_timeout = match &file.handshake_timeout {
        Some(t) => errors.check(&key("handshake_timeout"), parse::duration(t)),
        None => Some(Duration::from_secs(10)),
    };
    let reload_check = match file.reload_check.as_deref() {
        Some("off") => Some(None),
        Some(t) => errors.check(&key("reload_check"), parse::duration(t)).map(Some),
        None => Some(Some(Duration::from_secs(5))),
    };
    let (handshake_timeout, reload_check) = (handshake_timeout?, reload_check?);
    (certificates.len() == file.certificates.len()).then_some(ServerTls {
        certificates,
        client_ca,
        require_client_cert: file.require_client_cert,
        handshake_timeout,
        reload_check,
    })
}

fn compile_certificate(
    file: &CertificateFile,
    key_path: &str,
    errors: &mut Errors,
) -> Option<CertificatePaths> {
    let cert = errors.check(&format!("{key_path}.cert"), path(&file.cert));
    let key = errors.check(&format!("{key_path}.key"), path(&file.key));
    let mut server_names = Vec::new();
    for (i, name) in file.server_names.iter().enumerate() {
        server_names.extend(errors.check(&format!("{key_path}.server_names[{i}]"), sni_name(name)));
    }
    let names_ok = server_names.len() == file.server_names.len();
    Some(CertificatePaths { key_path: key_path.to_string(), cert: cert?, key: key?, server_names })
        .filter(|_| names_ok)
}

pub(crate) fn compile_site(file: &SiteTlsFile, key_path: &str, errors: &mut Errors) -> Option<UpstreamTls> {
    let key = |k: &str| format!("{key_path}.{k}");
    let ca = match &file.ca {
        Some(p) => errors.check(&key("ca"), path(p)),
        None => {
            errors.push(
                key("ca"),
                "required: name the PEM bundle of the CA that signs this site's certificate",
            );
            None
        }
    };
    let client_cert = match (&file.client_cert, &file.client_key) {
        (Some(c), Some(k)) => {
            let c = errors.check(&key("client_cert"), path(c));
            let k = errors.check(&key("client_key"), path(k));
            Some((c?, k?))
        }
        (None, None) => None,
        (Some(_), None) => {
            errors.push(key("client_key"), "client_cert is set, so client_key is needed too");
            return None;
        }
        (None, Some(_)) => {
            errors.push(key("client_cert"), "client_key is set, so client_cert is needed too");
            return None;
        }
    };
    let server_name = match &file.server_name {
        Some(n) => Some(errors.check(&key("server_name"), server_name(n))?),
        None => None,
    };
    let mut pins = Vec::new();
    for (i, p) in file.pin_sha256.iter().enumerate() {
        pins.extend(errors.check(&key(&format!("pin_sha256[{i}]")), pin(p)));
    }
    let pins_ok = pins.len() == file.pin_sha256.len();
    Some(UpstreamTls {
        key_path: key_path.to_string(),
        ca: ca?,
        client_cert,
        server_name,
        pins,
        http2: file.http2,
    })
    .filter(|_| pins_ok)
}

fn path(text: &str) -> Result<PathBuf, String> {
    if text.trim().is_empty() {
        return Err("empty path: name a PEM file".into());
    }
    Ok(PathBuf::from(text))
}

/// A DNS name for SNI matching; `*.` is allowed as the whole first label.
fn sni_name(text: &str) -> Result<String, String> {
    let lower = text.to_ascii_lowercase();
    let plain = lower.strip_prefix("*.").unwrap_or(&lower);
    if plain.contains('*')
        || ServerName::try_from(plain).is_err()
        || plain.parse::<std::net::IpAddr>().is_ok()
    {
        return Err(format!(
            "invalid server name \"{text}\": expected a DNS name such as rahvastik.example or *.example"
        ));
    }
    Ok(lower)
}

fn server_name(text: &str) -> Result<ServerName<'static>, String> {
    ServerName::try_from(text.to_string())
        .map_err(|_| format!("invalid server name \"{text}\": expected a DNS name or an IP address"))
}

/// base64 (standard alphabet, padded) of a 32-byte SHA-256 digest.
pub fn pin(text: &str) -> Result<[u8; 32], String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("invalid pin \"{text}\": not base64 ({e})"))?;
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        format!("invalid pin \"{text}\": decodes to {} bytes, a SHA-256 digest has 32", bytes.len())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_must_be_32_bytes_of_base64() {
        let good = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(pin(&good), Ok([7u8; 32]));
        assert!(pin("AAAA").unwrap_err().contains("3 bytes"));
        assert!(pin("not base64!").unwrap_err().contains("not base64"));
    }

    #[test]
    fn tls_mistakes_are_all_named_by_key_path() {
        let text = r#"
[server]
listen = "127.0.0.1:0"
[server.tls]
certificates = [{ cert = "a.crt", key = "", server_names = ["a.*.example"] }]
require_client_cert = true
handshake_timeout = "0s"
[registries.population]
routes = [{ prefix = "/" }]
sites.home.backends = ["127.0.0.1:1"]
sites.home.tls = { client_cert = "c.crt", pin_sha256 = ["AAAA"] }
"#;
        let errors = crate::config::from_toml(text).unwrap_err().to_string();
        for expected in [
            "server.tls.certificates[0].key: empty path",
            "server.tls.certificates[0].server_names[0]: invalid server name",
            "server.tls.require_client_cert: needs client_ca",
            "server.tls.handshake_timeout: invalid duration",
            "registries.population.sites.home.tls.ca: required",
            "registries.population.sites.home.tls.client_key: client_cert is set",
        ] {
            assert!(errors.contains(expected), "{expected:?} missing from:\n{errors}");
        }
    }

    #[test]
    fn sni_names_allow_one_leading_wildcard() {
        assert_eq!(sni_name("*.Example.org"), Ok("*.example.org".into()));
        assert!(sni_name("a.*.example").is_err());
        assert!(sni_name("127.0.0.1").is_err());
        assert!(sni_name("").is_err());
    }
}
