//! TLS termination on the public listener: certificates chosen by SNI,
//! optional client certificates, and reload without a restart.
//!
//! The live `rustls::ServerConfig` sits behind an atomic swap. Each accepted
//! connection takes the config current at that moment, so a reload never
//! touches handshakes already running, and a reload that fails (a bad or
//! half-written PEM) leaves the previous certificates serving.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert, StoresServerSessions, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::{load_certified_key, load_roots, provider, TlsError, TlsProblem, VERSIONS};
use crate::config::tls::ServerTls;

/// What the last reload did; watch it with [`Terminator::subscribe`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadStatus {
    /// Reloads attempted (file changes seen, SIGHUPs, explicit calls).
    pub attempts: u64,
    /// Reloads that put new certificates in service.
    pub loaded: u64,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
}

/// The TLS side of the listener; cheap to share.
pub struct Terminator {
    settings: ServerTls,
    current: ArcSwap<ServerConfig>,
    /// Kept across reloads so resumption survives a certificate change.
    sessions: Arc<dyn StoresServerSessions>,
    stamps: Mutex<Vec<Option<FileStamp>>>,
    status: watch::Sender<ReloadStatus>,
}

impl std::fmt::Debug for Terminator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Terminator").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Terminator {
    /// Loads every certificate, key and CA named in `settings`.
    pub fn load(settings: &ServerTls) -> Result<Arc<Terminator>, TlsError> {
        let sessions: Arc<dyn StoresServerSessions> = rustls::server::ServerSessionMemoryCache::new(4096);
        let config = build_config(settings, Some(sessions.clone()))?;
        Ok(Arc::new(Terminator {
            settings: settings.clone(),
            current: ArcSwap::from_pointee(config),
            sessions,
            stamps: Mutex::new(stamps(settings)),
            status: watch::channel(ReloadStatus::default()).0,
        }))
    }

    /// Reads the files again and, when all of them are good, serves the new
    /// certificates to every handshake from now on. On failure the old ones
    /// keep serving and the error is logged and returned.
    pub fn reload(&self) -> Result<(), TlsError> {
        if let Ok(mut s) = self.stamps.lock() {
            *s = stamps(&self.settings);
        }
        let outcome = build_config(&self.settings, Some(self.sessions.clone()))
            .map(|config| self.current.store(Arc::new(config)));
        match &outcome {
            Ok(()) => tracing::info!("TLS certificates reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "TLS reload failed; the previous certificates keep serving")
            }
        }
        self.status.send_modify(|s| {
            s.attempts += 1;
            s.loaded += u64::from(outcome.is_ok());
            s.last_error = outcome.as_ref().err().map(ToString::to_string);
        });
        outcome
    }

    pub fn subscribe(&self) -> watch::Receiver<ReloadStatus> {
        self.status.subscribe()
    }

    /// Completes the handshake within the configured time: a client that
    /// stalls mid-handshake holds a connection slot for no longer than that.
    pub async fn accept<S>(&self, stream: S) -> io::Result<TlsStream<S>>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let acceptor = TlsAcceptor::from(self.current.load_full());
        match tokio::time::timeout(self.settings.handshake_timeout, acceptor.accept(stream)).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "TLS handshake not completed in time")),
        }
    }

    /// Reloads on SIGHUP and, unless polling is off, when a PEM file changes
    /// (its size, modification time or inode: a rename into place counts).
    pub fn watch(self: &Arc<Self>) -> JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
                .map_err(|e| tracing::warn!(error = %e, "cannot watch SIGHUP for TLS reload"))
                .ok();
            let mut tick = this.settings.reload_check.map(|every| {
                let mut t = tokio::time::interval(every);
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                t
            });
            loop {
                tokio::select! {
                    Some(()) = async { hangup.as_mut()?.recv().await } => {
                        tracing::info!("SIGHUP: reloading TLS certificates");
                    }
                    Some(_) = async { Some(tick.as_mut()?.tick().await) } => {
                        if !this.files_changed() {
                            continue;
                        }
                        tracing::info!("TLS files changed: reloading");
                    }
                    else => return,
                }
                let _ = this.reload();
            }
        })
    }

    fn files_changed(&self) -> bool {
        let now = stamps(&self.settings);
        match self.stamps.lock() {
            Ok(s) => *s != now,
            Err(_) => true,
        }
    }
}

/// Builds the server config: TLS 1.3 / 1.2, ALPN h2 then http/1.1, the
/// server's cipher order, certificates by SNI, client certificates if asked.
pub fn build_config(
    settings: &ServerTls,
    sessions: Option<Arc<dyn StoresServerSessions>>,
) -> Result<ServerConfig, TlsError> {
    let resolver = SniResolver::load(settings)?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(VERSIONS)
        .map_err(|e| TlsError::new("server.tls", TlsProblem::Setup(e.to_string())))?;
    let builder = match &settings.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let key = "server.tls.client_ca";
            let roots = load_roots(key, path)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
            let verifier =
                if settings.require_client_cert { verifier } else { verifier.allow_unauthenticated() };
            let verifier =
                verifier.build().map_err(|e| TlsError::new(key, TlsProblem::Setup(e.to_string())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ignore_client_order = true;
    if let Some(sessions) = sessions {
        config.session_storage = sessions;
    }
    Ok(config)
}

/// Picks a certificate by the client's SNI: exact name, then a `*.` parent,
/// then the first certificate configured.
#[derive(Debug)]
struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the part after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
}

impl SniResolver {
    fn load(settings: &ServerTls) -> Result<SniResolver, TlsError> {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        let mut default = None;
        for c in &settings.certificates {
            let key = Arc::new(load_certified_key(&c.key_path, &c.cert, &c.key)?);
            default.get_or_insert_with(|| key.clone());
            for name in &c.server_names {
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_string()),
                    None => exact.entry(name.clone()),
                }
                .or_insert_with(|| key.clone());
            }
        }
        let default = default.ok_or_else(|| {
            TlsError::new("server.tls.certificates", TlsProblem::Setup("no certificate configured".into()))
        })?;
        Ok(SniResolver { exact, wildcard, default })
    }

    fn pick(&self, name: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = name.map(str::to_ascii_lowercase) else {
            return &self.default;
        };
        if let Some(key) = self.exact.get(&name) {
            return key;
        }
        name.split_once('.').and_then(|(_, parent)| self.wildcard.get(parent)).unwrap_or(&self.default)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.pick(hello.server_name()).clone())
    }
}

/// What identifies one version of a file on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

fn stamps(settings: &ServerTls) -> Vec<Option<FileStamp>> {
    use std::os::unix::fs::MetadataExt;
    let mut paths: Vec<&PathBuf> = Vec::new();
    for c in &settings.certificates {
        paths.push(&c.cert);
        paths.push(&c.key);
    }
    paths.extend(settings.client_ca.as_ref());
    paths
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(p).ok()?;
            Some(FileStamp { modified: m.modified().ok(), len: m.len(), inode: m.ino() })
        })
        .collect()
}
