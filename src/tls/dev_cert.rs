//! A self-signed certificate for development and tests (`flotilla dev-cert`).
//!
//! Valid for `localhost`, 127.0.0.1, ::1 and any names given; clients must be told to
//! trust it (curl `--cacert`, ffmpeg's default of not verifying). Production nodes use a
//! certificate from a CA (certbot, cert-manager) in the same two PEM files.

use std::path::Path;

/// A generated certificate and its key, both PEM.
pub struct DevCertificate {
    pub certificate_pem: String,
    pub key_pem: String,
}

impl DevCertificate {
    /// A P-256 certificate for `localhost`, the loopback addresses and `names`.
    pub fn generate(names: &[String]) -> Result<DevCertificate, rcgen::Error> {
        let mut subject_names = vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
            "::1".to_string(),
        ];
        for name in names {
            if !subject_names.contains(name) {
                subject_names.push(name.clone());
            }
        }
        let certified = rcgen::generate_simple_self_signed(subject_names)?;
        Ok(DevCertificate {
            certificate_pem: certified.cert.pem(),
            key_pem: certified.signing_key.serialize_pem(),
        })
    }

    /// Writes `flotilla.crt` and `flotilla.key` (mode 0600) into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<(std::path::PathBuf, std::path::PathBuf)> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::create_dir_all(dir)?;
        let certificate = dir.join("flotilla.crt");
        let key = dir.join("flotilla.key");
        std::fs::write(&certificate, &self.certificate_pem)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&key)?;
        file.write_all(self.key_pem.as_bytes())?;
        Ok((certificate, key))
    }
}
