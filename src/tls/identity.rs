//! Reading a certificate chain and its private key from PEM files.
//!
//! Any key form `openssl`, certbot or rcgen writes is read (PKCS#8, PKCS#1 RSA, SEC1 EC),
//! and the key must belong to the leaf certificate: a renewed certificate copied beside
//! the old key is refused here, not at the first handshake of a viewer.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// Largest certificate or key file read (real chains are a few KiB; this bounds a
/// misconfigured path pointing at a disk image).
pub const MAX_PEM_FILE_BYTES: u64 = 1024 * 1024;
/// Most certificates in one chain (leaf, intermediates, maybe a root: real chains are 2–4).
pub const MAX_CHAIN_CERTIFICATES: usize = 16;

/// Why a certificate identity could not be loaded. Always the operator's to fix (the
/// files); the node keeps its previous identity when one was loaded before.
#[derive(Debug, thiserror::Error)]
pub enum TlsFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is larger than {MAX_PEM_FILE_BYTES} bytes: not a PEM certificate or key")]
    TooLarge { path: PathBuf },
    #[error("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds more than {MAX_CHAIN_CERTIFICATES} certificates")]
    ChainTooLong { path: PathBuf },
    #[error("{path} is not valid PEM: {reason}")]
    BadPem { path: PathBuf, reason: String },
    #[error("{path} holds no private key (PKCS#8, RSA or EC PEM)")]
    NoKey { path: PathBuf },
    #[error("the key in {key} cannot be used: {reason}")]
    BadKey { key: PathBuf, reason: String },
    #[error("the key in {key} does not belong to the certificate in {certificate}")]
    KeyMismatch { certificate: PathBuf, key: PathBuf },
}

/// Loads the chain in `certificate` and the key in `key` and checks they belong together.
pub fn load_identity(
    certificate: &Path,
    key: &Path,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, TlsFileError> {
    let chain_pem = read_bounded(certificate)?;
    let mut chain = Vec::new();
    for item in CertificateDer::pem_slice_iter(&chain_pem) {
        let der = item.map_err(|error| TlsFileError::BadPem {
            path: certificate.into(),
            reason: error.to_string(),
        })?;
        if chain.len() == MAX_CHAIN_CERTIFICATES {
            return Err(TlsFileError::ChainTooLong {
                path: certificate.into(),
            });
        }
        chain.push(der);
    }
    if chain.is_empty() {
        return Err(TlsFileError::NoCertificate {
            path: certificate.into(),
        });
    }
    let key_pem = read_bounded(key)?;
    let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| match error {
        rustls_pki_types::pem::Error::NoItemsFound => TlsFileError::NoKey { path: key.into() },
        other => TlsFileError::BadPem {
            path: key.into(),
            reason: other.to_string(),
        },
    })?;
    CertifiedKey::from_der(chain, private, provider)
        .map(Arc::new)
        .map_err(|error| match error {
            rustls::Error::InconsistentKeys(_) => TlsFileError::KeyMismatch {
                certificate: certificate.into(),
                key: key.into(),
            },
            other => TlsFileError::BadKey {
                key: key.into(),
                reason: other.to_string(),
            },
        })
}

fn read_bounded(path: &Path) -> Result<Vec<u8>, TlsFileError> {
    let read_error = |source| TlsFileError::Read {
        path: path.into(),
        source,
    };
    let length = std::fs::metadata(path).map_err(read_error)?.len();
    if length > MAX_PEM_FILE_BYTES {
        return Err(TlsFileError::TooLarge { path: path.into() });
    }
    std::fs::read(path).map_err(read_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::dev_cert::DevCertificate;

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    fn write_pair(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
        let pair = DevCertificate::generate(&["localhost".into()]).expect("generates");
        let certificate = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&certificate, pair.certificate_pem).expect("writes");
        std::fs::write(&key, pair.key_pem).expect("writes");
        (certificate, key)
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("flotilla-tls-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("creates");
        dir
    }

    #[test]
    fn a_matching_pair_loads() {
        let dir = temp_dir("match");
        let (certificate, key) = write_pair(&dir, "a");
        let identity = load_identity(&certificate, &key, &provider()).expect("loads");
        assert_eq!(identity.cert.len(), 1);
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let dir = temp_dir("mismatch");
        let (certificate, _) = write_pair(&dir, "a");
        let (_, other_key) = write_pair(&dir, "b");
        let error = load_identity(&certificate, &other_key, &provider()).unwrap_err();
        assert!(matches!(error, TlsFileError::KeyMismatch { .. }), "{error}");
    }

    #[test]
    fn missing_and_empty_files_name_the_path() {
        let dir = temp_dir("missing");
        let (certificate, key) = write_pair(&dir, "a");
        let absent = dir.join("absent.crt");
        let error = load_identity(&absent, &key, &provider()).unwrap_err();
        assert!(error.to_string().contains("absent.crt"), "{error}");
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "").expect("writes");
        assert!(matches!(
            load_identity(&empty, &key, &provider()).unwrap_err(),
            TlsFileError::NoCertificate { .. }
        ));
        assert!(matches!(
            load_identity(&certificate, &empty, &provider()).unwrap_err(),
            TlsFileError::NoKey { .. }
        ));
        // A certificate where the key should be is no key either.
        assert!(matches!(
            load_identity(&certificate, &certificate, &provider()).unwrap_err(),
            TlsFileError::NoKey { .. }
        ));
    }
}
