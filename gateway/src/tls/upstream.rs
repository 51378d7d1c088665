//! TLS to a site: its own CA bundle, a client certificate for mTLS to the
//! embassy, a server name override, optional public-key pins, HTTP/2 by ALPN.
//!
//! [`Connector`] wraps hyper-util's `HttpConnector`: plain TCP for sites
//! without `tls`, TCP then a rustls handshake (bounded by the registry's
//! connect timeout) for sites with it.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, OtherError, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::{load_certs, load_key, load_roots, provider, TlsError, TlsProblem, VERSIONS};
use crate::config::tls::UpstreamTls;

/// Builds the rustls client config for one site.
pub fn client_config(tls: &UpstreamTls) -> Result<Arc<ClientConfig>, TlsError> {
    let key = |k: &str| format!("{}.{k}", tls.key_path);
    let roots = Arc::new(load_roots(&key("ca"), &tls.ca)?);
    let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| TlsError::new(key("ca"), TlsProblem::Setup(e.to_string())))?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::new(&tls.key_path, TlsProblem::Setup(e.to_string())))?;
    let builder = if tls.pins.is_empty() {
        builder.with_webpki_verifier(webpki)
    } else {
        builder.dangerous().with_custom_certificate_verifier(Arc::new(PinningVerifier {
            inner: webpki,
            pins: tls.pins.clone(),
        }))
    };
    let mut config = match &tls.client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, private)) => {
            let chain = load_certs(&key("client_cert"), cert)?;
            let private = load_key(&key("client_key"), private)?;
            builder.with_client_auth_cert(chain, private).map_err(|e| {
                TlsError::new(
                    key("client_key"),
                    TlsProblem::Invalid {
                        path: cert.clone(),
                        reason: format!("client certificate and key do not work together: {e}"),
                    },
                )
            })?
        }
    };
    config.alpn_protocols =
        if tls.http2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    Ok(Arc::new(config))
}

/// The site's public key did not match any configured pin.
#[derive(Debug, thiserror::Error)]
#[error("the site's public key matches none of its pin_sha256 values")]
pub struct PinMismatch;

/// Normal chain and name verification first; then the end-entity's
/// SubjectPublicKeyInfo must hash (SHA-256) to one of the pins. Pinning the
/// key, not the certificate, lets the embassy renew with the same key.
#[derive(Debug)]
struct PinningVerifier {
    inner: Arc<WebPkiServerVerifier>,
    pins: Vec<[u8; 32]>,
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified =
            self.inner.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
        let digest = spki_sha256(parsed.subject_public_key_info().as_ref());
        if self.pins.contains(&digest) {
            Ok(verified)
        } else {
            Err(rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(PinMismatch)))))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// SHA-256 of a DER SubjectPublicKeyInfo: the value `pin_sha256` holds.
pub fn spki_sha256(spki_der: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, spki_der);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Why a connection to a site could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("TCP connect failed")]
    Tcp(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("TLS handshake failed: {}", handshake_reason(.0))]
    Handshake(io::Error),
    #[error("TLS handshake not completed within {0:?}")]
    HandshakeTimeout(Duration),
    #[error("TLS is not usable for this site: {0}")]
    Setup(Arc<str>),
    #[error("no server name to verify the site against (backend host {0:?})")]
    NoServerName(String),
}

impl ConnectError {
    /// Whether the site's certificate itself was refused (unknown issuer,
    /// wrong name, expired, pin mismatch), as opposed to the TLS exchange.
    pub fn is_certificate(&self) -> bool {
        match self {
            ConnectError::Handshake(e) => e
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
                .is_some_and(|e| matches!(e, rustls::Error::InvalidCertificate(_))),
            _ => false,
        }
    }
}

/// rustls shows a custom certificate error by its Debug form; say it plainly.
fn handshake_reason(e: &io::Error) -> String {
    let custom = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()).and_then(|e| match e {
        rustls::Error::InvalidCertificate(CertificateError::Other(other)) => Some(other.0.to_string()),
        _ => None,
    });
    custom.unwrap_or_else(|| e.to_string())
}

#[derive(Clone)]
struct TlsSetup {
    connector: TlsConnector,
    server_name: Option<ServerName<'static>>,
}

/// `tower::Service<Uri>` for hyper-util's pooled client.
#[derive(Clone)]
pub struct Connector {
    http: HttpConnector,
    /// `None`: plain TCP. `Some(Err)`: TLS was asked for but its files could
    /// not be loaded; every connect fails with that reason.
    tls: Option<Result<TlsSetup, Arc<str>>>,
    handshake_timeout: Duration,
}

impl Connector {
    pub fn new(http: HttpConnector, tls: Option<&UpstreamTls>, handshake_timeout: Duration) -> Self {
        let tls = tls.map(|t| match client_config(t) {
            Ok(config) => {
                Ok(TlsSetup { connector: TlsConnector::from(config), server_name: t.server_name.clone() })
            }
            Err(e) => {
                tracing::error!(error = %e, "TLS to this site is not usable; its requests will fail");
                Err(Arc::from(e.to_string()))
            }
        });
        Connector { http, tls, handshake_timeout }
    }
}

impl tower_service::Service<Uri> for Connector {
    type Response = UpstreamIo;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<UpstreamIo, ConnectError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        self.http.poll_ready(cx).map_err(|e| ConnectError::Tcp(Box::new(e)))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let host = uri.host().unwrap_or_default().to_string();
        let tcp = self.http.call(uri);
        let tls = self.tls.clone();
        let limit = self.handshake_timeout;
        Box::pin(async move {
            let tcp = tcp.await.map_err(|e| ConnectError::Tcp(Box::new(e)))?;
            let setup = match tls {
                None => return Ok(UpstreamIo::Plain(tcp)),
                Some(Err(reason)) => return Err(ConnectError::Setup(reason)),
                Some(Ok(setup)) => setup,
            };
            let name = match setup.server_name {
                Some(name) => name,
                None => ServerName::try_from(host.trim_start_matches('[').trim_end_matches(']'))
                    .map(|n| n.to_owned())
                    .map_err(|_| ConnectError::NoServerName(host.clone()))?,
            };
            let handshake = setup.connector.connect(name, tcp.into_inner());
            match tokio::time::timeout(limit, handshake).await {
                Ok(Ok(stream)) => Ok(UpstreamIo::Tls(Box::new(TokioIo::new(stream)))),
                Ok(Err(e)) => Err(ConnectError::Handshake(e)),
                Err(_) => Err(ConnectError::HandshakeTimeout(limit)),
            }
        })
    }
}

/// A connection to a site, plain or TLS.
pub enum UpstreamIo {
    Plain(TokioIo<TcpStream>),
    /// Boxed: a TLS session is ~1 KiB and pooled connections are moved.
    Tls(Box<TokioIo<tokio_rustls::client::TlsStream<TcpStream>>>),
}

impl Connection for UpstreamIo {
    fn connected(&self) -> Connected {
        match self {
            UpstreamIo::Plain(io) => io.inner().connected(),
            UpstreamIo::Tls(io) => {
                let (tcp, session) = io.inner().get_ref();
                let connected = tcp.connected();
                if session.alpn_protocol() == Some(b"h2") {
                    connected.negotiated_h2()
                } else {
                    connected
                }
            }
        }
    }
}

impl Read for UpstreamIo {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: ReadBufCursor<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_read(cx, buf),
            UpstreamIo::Tls(io) => Pin::new(&mut **io).poll_read(cx, buf),
        }
    }
}

impl Write for UpstreamIo {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_write(cx, buf),
            UpstreamIo::Tls(io) => Pin::new(&mut **io).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_flush(cx),
            UpstreamIo::Tls(io) => Pin::new(&mut **io).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_shutdown(cx),
            UpstreamIo::Tls(io) => Pin::new(&mut **io).poll_shutdown(cx),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            UpstreamIo::Plain(io) => io.is_write_vectored(),
            UpstreamIo::Tls(io) => io.is_write_vectored(),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            UpstreamIo::Plain(io) => Pin::new(io).poll_write_vectored(cx, bufs),
            UpstreamIo::Tls(io) => Pin::new(&mut **io).poll_write_vectored(cx, bufs),
        }
    }
}
