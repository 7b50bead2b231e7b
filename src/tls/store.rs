//! The node's TLS identity, swapped in place when its files change.
//!
//! Every TLS listener's `ServerConfig` resolves its certificate through one
//! [`CertificateStore`], so a reload is one pointer swap seen by the next handshake of every
//! listener; sessions already established are untouched (rustls copies nothing back).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::identity::{TlsFileError, load_identity};

/// How often the certificate and key files are checked for a change (size and mtime):
/// a renewed certificate is in service within this, without a signal.
pub const CERTIFICATE_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// ALPN protocols offered by `https` listeners, preferred first.
pub const HTTPS_ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// What identifies a version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    length: u64,
}

fn stamp(path: &Path) -> Option<FileStamp> {
    let metadata = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        modified: metadata.modified().ok(),
        length: metadata.len(),
    })
}

/// The certificate identity of a node's TLS listeners.
pub struct CertificateStore {
    certificate: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The stamps of the files the current identity was read from.
    stamps: Mutex<(Option<FileStamp>, Option<FileStamp>)>,
}

impl std::fmt::Debug for CertificateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateStore")
            .field("certificate", &self.certificate)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// What [`CertificateStore::reload`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reloaded {
    /// The files are as they were.
    Unchanged,
    /// A new identity is in service.
    Replaced,
}

impl CertificateStore {
    /// Loads the identity; an error here stops the node (nothing to serve TLS with).
    pub fn load(certificate: &Path, key: &Path) -> Result<Arc<CertificateStore>, TlsFileError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamps = (stamp(certificate), stamp(key));
        let identity = load_identity(certificate, key, &provider)?;
        Ok(Arc::new(CertificateStore {
            certificate: certificate.into(),
            key: key.into(),
            provider,
            current: RwLock::new(identity),
            stamps: Mutex::new(stamps),
        }))
    }

    /// The certificate file (for messages).
    pub fn certificate_path(&self) -> &Path {
        &self.certificate
    }

    /// Reads the files again if they changed since the last load (or always, with
    /// `force`: SIGHUP). On an error the current identity stays in service.
    pub fn reload(&self, force: bool) -> Result<Reloaded, TlsFileError> {
        let now = (stamp(&self.certificate), stamp(&self.key));
        {
            let stamps = self.stamps.lock().unwrap_or_else(|p| p.into_inner());
            if !force && *stamps == now {
                return Ok(Reloaded::Unchanged);
            }
        }
        let result = load_identity(&self.certificate, &self.key, &self.provider);
        // A failed pair is not tried again until the files change once more.
        *self.stamps.lock().unwrap_or_else(|p| p.into_inner()) = now;
        let identity = result?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = identity;
        Ok(Reloaded::Replaced)
    }

    /// Reloads and logs the outcome (the watcher and SIGHUP).
    pub fn reload_logged(&self, force: bool) {
        match self.reload(force) {
            Ok(Reloaded::Replaced) => {
                tracing::info!(certificate = %self.certificate.display(), "tls certificate reloaded: new connections use it");
            }
            Ok(Reloaded::Unchanged) => {}
            Err(error) => {
                tracing::warn!(%error, "tls certificate not reloaded: the previous one stays in service");
            }
        }
    }

    /// Polls the files every [`CERTIFICATE_POLL_INTERVAL`] until the node stops.
    pub async fn watch(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => return,
                () = tokio::time::sleep(CERTIFICATE_POLL_INTERVAL) => self.reload_logged(false),
            }
        }
    }

    /// A server config resolving through this store, offering `alpn`.
    pub fn server_config(self: &Arc<Self>, alpn: &[&[u8]]) -> Arc<ServerConfig> {
        let builder = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions");
        let mut config = builder
            .with_no_client_auth()
            .with_cert_resolver(self.clone() as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

impl ResolvesServerCert for CertificateStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::dev_cert::DevCertificate;

    fn write(dir: &Path, names: &[&str]) {
        let pair =
            DevCertificate::generate(&names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("generates");
        std::fs::write(dir.join("node.crt"), pair.certificate_pem).expect("writes");
        std::fs::write(dir.join("node.key"), pair.key_pem).expect("writes");
    }

    fn leaf(store: &CertificateStore) -> Vec<u8> {
        store.current.read().unwrap().cert[0].to_vec()
    }

    #[tokio::test(start_paused = true)]
    async fn the_watcher_puts_a_renewed_pair_in_service_without_a_signal() {
        let dir = std::env::temp_dir().join(format!("flotilla-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creates");
        write(&dir, &["localhost"]);
        let store =
            CertificateStore::load(&dir.join("node.crt"), &dir.join("node.key")).expect("loads");
        let first = leaf(&store);
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let watcher = store.clone().watch(stopped);
        let renewal = async {
            write(&dir, &["localhost", "renewed.example"]);
            tokio::time::sleep(CERTIFICATE_POLL_INTERVAL / 2).await;
            let before_poll = leaf(&store);
            tokio::time::sleep(CERTIFICATE_POLL_INTERVAL).await;
            let after_poll = leaf(&store);
            let _ = stop.send(true);
            (before_poll, after_poll)
        };
        let ((), (before_poll, after_poll)) = tokio::join!(watcher, renewal);
        assert_eq!(before_poll, first, "not before the next poll");
        assert_ne!(after_poll, first, "in service after it");
    }

    #[test]
    fn a_changed_pair_replaces_the_identity_and_a_broken_one_does_not() {
        let dir = std::env::temp_dir().join(format!("flotilla-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creates");
        write(&dir, &["localhost"]);
        let store =
            CertificateStore::load(&dir.join("node.crt"), &dir.join("node.key")).expect("loads");
        let first = leaf(&store);
        assert_eq!(store.reload(false).expect("reads"), Reloaded::Unchanged);
        write(&dir, &["localhost", "example.test"]);
        assert_eq!(store.reload(true).expect("reads"), Reloaded::Replaced);
        let second = leaf(&store);
        assert_ne!(first, second);
        // A half-written renewal: the certificate of a new pair beside nothing usable.
        std::fs::write(dir.join("node.key"), "-----BEGIN PRIVATE KEY-----\n").expect("writes");
        assert!(store.reload(true).is_err());
        assert_eq!(
            leaf(&store),
            second,
            "the previous identity stays in service"
        );
    }
}
