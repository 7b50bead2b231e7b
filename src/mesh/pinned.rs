//! Certificate checks that recognise the cluster's own certificates by their bytes.
//!
//! A cluster identity is one fixed, self-signed certificate derived from the key (see
//! `auth`), and the trust anchor is that very certificate. webpki would still build a
//! chain for it at every handshake and check the certificate's own signature: an
//! Ed25519 verification, about 0.6 M instructions on each side of every mesh handshake
//! (a quarter of a handshake's TLS work; docs/benchmarks.md, round eleven). A presented
//! certificate byte-identical to a pinned one *is* the anchor: nothing in it can differ
//! from what this node derived, so it is accepted as it is. Anything else goes to webpki
//! unchanged, which refuses it unless it chains to a pinned certificate.
//!
//! What authenticates the peer does not change: its handshake signature (TLS 1.3
//! CertificateVerify), made with the private key over this very handshake, is verified
//! against the certificate's public key by the provider's algorithms, as before.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

/// The handshake-signature methods of both verifiers: webpki's, unchanged (they are what
/// proves the peer holds the key).
macro_rules! webpki_signatures {
    () => {
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.webpki.verify_tls12_signature(message, cert, dss)
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, Error> {
            self.webpki.verify_tls13_signature(message, cert, dss)
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.webpki.supported_verify_schemes()
        }
    };
}

/// Whether `end_entity`, presented without intermediates, is one of `pinned`.
fn is_pinned(
    pinned: &[CertificateDer<'static>],
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
) -> bool {
    intermediates.is_empty()
        && pinned
            .iter()
            .any(|certificate| certificate.as_ref() == end_entity.as_ref())
}

/// The client's check of a server: the identity it dials, by bytes and name, else webpki.
#[derive(Debug)]
pub struct PinnedServer {
    /// The certificate of the identity this client dials.
    pub certificate: CertificateDer<'static>,
    /// The name that identity is dialled by (the certificate's only name).
    pub server_name: String,
    /// webpki, trusting that certificate as its only root.
    pub webpki: Arc<dyn ServerCertVerifier>,
}

impl ServerCertVerifier for PinnedServer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let named =
            matches!(server_name, ServerName::DnsName(name) if name.as_ref() == self.server_name);
        if named
            && is_pinned(
                std::slice::from_ref(&self.certificate),
                end_entity,
                intermediates,
            )
        {
            return Ok(ServerCertVerified::assertion());
        }
        self.webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    webpki_signatures!();
}

/// The server's check of a client: any configured identity, by bytes, else webpki.
#[derive(Debug)]
pub struct PinnedClients {
    /// Every identity this server trusts.
    pub certificates: Vec<CertificateDer<'static>>,
    /// webpki, trusting those certificates as its roots.
    pub webpki: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for PinnedClients {
    fn offer_client_auth(&self) -> bool {
        self.webpki.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.webpki.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.webpki.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        if is_pinned(&self.certificates, end_entity, intermediates) {
            return Ok(ClientCertVerified::assertion());
        }
        self.webpki
            .verify_client_cert(end_entity, intermediates, now)
    }

    webpki_signatures!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(byte: u8) -> CertificateDer<'static> {
        CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, byte])
    }

    #[test]
    fn only_a_pinned_certificate_alone_is_recognised() {
        let pinned = [certificate(1), certificate(2)];
        assert!(is_pinned(&pinned, &certificate(2), &[]));
        assert!(
            !is_pinned(&pinned, &certificate(3), &[]),
            "another certificate"
        );
        assert!(
            !is_pinned(&pinned, &certificate(1), &[certificate(2)]),
            "a pinned certificate with a chain is not the anchor alone: webpki decides"
        );
    }
}
