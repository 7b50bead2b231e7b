//! Cluster authentication: mutual TLS with certificates derived from the cluster key.
//!
//! Every node derives the same Ed25519 key pair and self-signed certificate from a
//! cluster key (HKDF-SHA256, then a deterministic certificate: Ed25519 signatures are
//! deterministic), and pins it as the only trusted root, both ways. So only holders of
//! the key can complete a QUIC handshake, and the key itself never crosses the wire.
//! rustls has no external TLS 1.3 PSK; this is the equivalent.
//!
//! A per-peer `cluster_key` override is a second derived identity. The client names the
//! identity it expects through SNI (a name derived from the key, not the key), and the
//! server answers with the matching certificate; its client verifier trusts every
//! configured identity.
//!
//! One exception, for the shell only: an operator may log in with `edit_auth` or
//! `view_auth` credentials instead of the key. Such a client presents no certificate (the
//! server's verifier allows that; the mesh refuses every connection without one) and
//! cannot check the server's certificate, so it accepts any certificate that signs the
//! handshake, and both sides then prove the password over a TLS exporter value
//! (`shell::login`): a server without the password cannot answer, and a relay between two
//! TLS sessions holds different exporter values on each side.

use std::sync::Arc;
use std::time::Duration;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rustls::crypto::CryptoProvider;
use rustls::server::ResolvesServerCertUsingSni;
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::{Classified, Fault};

/// ALPN of node-to-node mesh connections.
pub const MESH_ALPN: &[u8] = b"flotilla-mesh/1";
/// ALPN of remote shell connections.
pub const SHELL_ALPN: &[u8] = b"flotilla-shell/1";

/// Time a peer has to complete the QUIC and TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection with no traffic for this long is closed (keep-alives prevent it).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Keep-alive period, well under the idle timeout.
pub const KEEP_ALIVE: Duration = Duration::from_secs(5);
/// Receive window of a whole connection (quinn's default is unbounded).
pub const CONNECTION_RECEIVE_WINDOW: u32 = 8 * 1024 * 1024;
/// Receive window of one stream: a state frame is at most 1 MiB.
pub const STREAM_RECEIVE_WINDOW: u32 = 2 * 1024 * 1024;
/// Exchanges a peer may have open at once (a link uses a handful).
pub const MAX_CONCURRENT_EXCHANGES: u32 = 16;
/// Relay subscriptions a peer may hold at once on one connection: one per stream it
/// relays from this node.
pub const MAX_RELAY_SUBSCRIPTIONS: u32 = 4_096;
/// Streams a peer may open at once: its exchanges and its subscriptions.
pub const MAX_CONCURRENT_STREAMS: u32 = MAX_CONCURRENT_EXCHANGES + MAX_RELAY_SUBSCRIPTIONS;

/// Why an identity or a TLS configuration could not be built: always this node's own
/// failure (the key derivation or rustls refused our inputs), never something a peer
/// sent, and building again gives the same answer.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// ring's HKDF refused a step (`expand`, `fill`).
    #[error("cannot derive the cluster identity: HKDF {0}")]
    Hkdf(&'static str),
    /// rcgen refused the derived key pair or certificate.
    #[error("cannot derive the cluster identity: {0}")]
    Certificate(#[from] rcgen::Error),
    /// The certificate's fixed validity dates did not convert.
    #[error("cannot derive the cluster identity: {0}")]
    Validity(#[from] time::error::ComponentRange),
    /// rustls refused a certificate, a key or the protocol versions.
    #[error("cannot build the TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// rustls could not build a certificate verifier.
    #[error("cannot build the TLS configuration: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// quinn found no initial cipher suite in the TLS configuration.
    #[error("cannot build the TLS configuration: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    /// No identity to answer with (an empty list of cluster keys).
    #[error("cannot build the TLS configuration: no cluster identity")]
    NoIdentity,
}

impl Classified for AuthError {
    fn fault(&self) -> Fault {
        Fault::Local
    }
}

/// The cluster identities a node holds.
#[derive(Debug, Clone)]
pub struct MeshKeys {
    /// Identities it answers to and dials with: its own cluster key first, then the
    /// per-peer overrides.
    pub trusted: Vec<ClusterIdentity>,
    /// Identities it dials with but never answers to: the keys of clusters it restreams
    /// (`source`), so that a holder of one cannot join this node's mesh.
    pub dial_only: Vec<ClusterIdentity>,
}

impl MeshKeys {
    /// Only `identity`, trusted.
    pub fn one(identity: ClusterIdentity) -> MeshKeys {
        MeshKeys {
            trusted: vec![identity],
            dial_only: Vec::new(),
        }
    }
}

/// The identity derived from one cluster key.
#[derive(Clone)]
pub struct ClusterIdentity {
    /// The SNI name that selects this identity (derived from the key, not revealing it).
    pub server_name: String,
    pub certificate: CertificateDer<'static>,
    /// PKCS#8 DER of the private key.
    key: Arc<Vec<u8>>,
}

impl std::fmt::Debug for ClusterIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ClusterIdentity({})", self.server_name)
    }
}

/// PKCS#8 v1 header of an Ed25519 private key (RFC 8410), before the 32-byte seed.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

fn hkdf(cluster_key: &str, purpose: &[u8], out: &mut [u8]) -> Result<(), AuthError> {
    let salt = ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, b"flotilla-cluster-v1");
    let prk = salt.extract(cluster_key.as_bytes());
    let info = [purpose];
    let okm = prk
        .expand(&info, Length(out.len()))
        .map_err(|_| AuthError::Hkdf("expand"))?;
    okm.fill(out).map_err(|_| AuthError::Hkdf("fill"))
}

/// HKDF output length marker.
struct Length(usize);

impl ring::hkdf::KeyType for Length {
    fn len(&self) -> usize {
        self.0
    }
}

impl ClusterIdentity {
    /// Derives the identity of `cluster_key`. Deterministic: every node gets the same.
    pub fn derive(cluster_key: &str) -> Result<ClusterIdentity, AuthError> {
        let mut seed = [0u8; 32];
        hkdf(cluster_key, b"node-auth-ed25519", &mut seed)?;
        let mut name_bytes = [0u8; 8];
        hkdf(cluster_key, b"sni", &mut name_bytes)?;
        let server_name = format!(
            "c{}.flotilla.invalid",
            name_bytes
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        );
        let mut pkcs8 = ED25519_PKCS8_PREFIX.to_vec();
        pkcs8.extend_from_slice(&seed);
        let key_pair = rcgen::KeyPair::try_from(pkcs8.as_slice())?;
        let mut params = rcgen::CertificateParams::new(vec![server_name.clone()])?;
        // Fixed fields: the certificate must be byte-identical on every node.
        params.not_before = time::OffsetDateTime::from_unix_timestamp(1_700_000_000)?;
        params.not_after = time::OffsetDateTime::from_unix_timestamp(4_100_000_000)?;
        params.serial_number = Some(rcgen::SerialNumber::from(1u64));
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "flotilla cluster");
        let certificate = params.self_signed(&key_pair)?;
        Ok(ClusterIdentity {
            server_name,
            certificate: certificate.der().clone(),
            key: Arc::new(key_pair.serialize_der()),
        })
    }

    fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.as_ref().clone()))
    }
}

/// The cryptography of the mesh's TLS and QUIC, and where its randomness comes from.
///
/// A node uses ring with the operating system's randomness. The simulator passes a
/// provider whose randomness (TLS randoms, key shares, session ids) and token key come
/// from the run's seed: ciphertext then replays byte for byte, and so does everything
/// that depends on it — a stray packet a restarted endpoint misreads as a connection
/// attempt takes the same path in every run of the seed.
#[derive(Clone)]
pub struct MeshCrypto {
    /// TLS primitives and randomness.
    pub provider: Arc<CryptoProvider>,
    /// Key of quinn's address-validation tokens; `None`: drawn at random.
    pub token_key: Option<[u8; 32]>,
    /// Destination connection ids of this node's first packets to a peer (the initial
    /// keys derive from them); `None`: quinn draws them at random.
    pub initial_cids: Option<InitialCids>,
    /// Where TLS reads the time (a resumed session's ticket age, which the client's hello
    /// carries, and certificate validity); `None`: the system clock. In a simulation the
    /// hello's bytes would otherwise depend on the real time a run took, and so would
    /// the fate of a stray packet a peer misreads as a connection attempt.
    pub time: Option<Arc<dyn rustls::time_provider::TimeProvider>>,
}

/// Where a client's initial destination connection ids come from.
pub type InitialCids = Arc<dyn Fn() -> quinn::ConnectionId + Send + Sync>;

impl std::fmt::Debug for MeshCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshCrypto")
            .field("provider", &self.provider)
            .field("token_key", &self.token_key.map(|_| "seeded"))
            .field(
                "initial_cids",
                &self.initial_cids.as_ref().map(|_| "seeded"),
            )
            .field("time", &self.time)
            .finish()
    }
}

impl MeshCrypto {
    /// ring with the operating system's randomness.
    pub fn system() -> MeshCrypto {
        MeshCrypto {
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            token_key: None,
            initial_cids: None,
            time: None,
        }
    }
}

/// quinn transport limits for mesh connections (both sides).
pub fn transport() -> Arc<quinn::TransportConfig> {
    let mut transport = quinn::TransportConfig::default();
    transport
        .receive_window(quinn::VarInt::from_u32(CONNECTION_RECEIVE_WINDOW))
        .stream_receive_window(quinn::VarInt::from_u32(STREAM_RECEIVE_WINDOW))
        .max_concurrent_bidi_streams(quinn::VarInt::from_u32(MAX_CONCURRENT_STREAMS))
        .max_concurrent_uni_streams(quinn::VarInt::from_u32(MAX_CONCURRENT_EXCHANGES))
        .keep_alive_interval(Some(KEEP_ALIVE))
        // No path MTU probing: the mesh carries small control messages (a state frame is
        // a delta, rarely more than a few packets), which QUIC's 1,200-byte minimum fits
        // on every path. Probes of up to 1,452 bytes would cost more than they save (a
        // simulated 5-node mesh spent 3 % of its instructions parsing their padding),
        // and a path that drops large datagrams (VPNs, tunnels) never has to be found.
        .mtu_discovery_config(None)
        .max_idle_timeout(Some(
            IDLE_TIMEOUT
                .try_into()
                .expect("30 s is a valid idle timeout"),
        ));
    Arc::new(transport)
}

/// The server side: answers with the identity the client names, trusts all of them.
pub fn server_config(
    identities: &[ClusterIdentity],
    alpns: &[&[u8]],
    crypto: &MeshCrypto,
) -> Result<quinn::ServerConfig, AuthError> {
    let provider = || crypto.provider.clone();
    let mut roots = rustls::RootCertStore::empty();
    let mut resolver = ResolvesServerCertUsingSni::new();
    for identity in identities {
        roots.add(identity.certificate.clone())?;
        let signing = provider()
            .key_provider
            .load_private_key(identity.private_key())?;
        let certified = CertifiedKey::new(vec![identity.certificate.clone()], signing);
        resolver.add(&identity.server_name, certified)?;
    }
    let main = identities.first().ok_or(AuthError::NoIdentity)?;
    let fallback = Arc::new(CertifiedKey::new(
        vec![main.certificate.clone()],
        provider()
            .key_provider
            .load_private_key(main.private_key())?,
    ));
    // A certificate, when presented, must be a cluster identity (webpki, with the
    // identities as the trust anchors); connections without one are for shell logins
    // only (the mesh and key shells check `peer_identity`).
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
            .allow_unauthenticated()
            .build()?;
    let mut tls_config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(Arc::new(NamedOrMain {
            by_name: resolver,
            main: fallback,
        }));
    tls_config.alpn_protocols = alpns.iter().map(|alpn| alpn.to_vec()).collect();
    if let Some(time) = &crypto.time {
        tls_config.time_provider = time.clone();
    }
    let quic = QuicServerConfig::try_from(tls_config)?;
    let mut config = match crypto.token_key {
        Some(key) => quinn::ServerConfig::new(
            Arc::new(quic),
            Arc::new(ring::hkdf::Salt::new(ring::hkdf::HKDF_SHA256, &[]).extract(&key)),
        ),
        None => quinn::ServerConfig::with_crypto(Arc::new(quic)),
    };
    config.transport_config(transport());
    Ok(config)
}

/// Answers with the identity the client names by SNI, else with the main one (a login
/// client cannot know the derived names).
#[derive(Debug)]
struct NamedOrMain {
    by_name: ResolvesServerCertUsingSni,
    main: Arc<CertifiedKey>,
}

impl rustls::server::ResolvesServerCert for NamedOrMain {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let named = hello.server_name().is_some();
        let found = if named {
            self.by_name.resolve(hello)
        } else {
            None
        };
        Some(found.unwrap_or_else(|| self.main.clone()))
    }
}

/// Whether the client of `connection` proved a cluster key (presented a certificate the
/// verifier accepted); `false` for shell logins.
pub fn holds_cluster_key(connection: &quinn::Connection) -> bool {
    connection
        .peer_identity()
        .and_then(|identity| identity.downcast::<Vec<CertificateDer<'static>>>().ok())
        .is_some_and(|chain| !chain.is_empty())
}

/// Accepts any server certificate that signs the handshake. Used only by shell logins,
/// which authenticate the server afterwards by its proof of the password, bound to this
/// very TLS session (see the module header).
#[derive(Debug)]
struct ProvenByPassword(Arc<CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for ProvenByPassword {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The client side of a shell login: no certificate, the server proven by the password.
pub fn login_client_config(
    alpn: &[u8],
    crypto: &MeshCrypto,
) -> Result<quinn::ClientConfig, AuthError> {
    let provider = || crypto.provider.clone();
    let mut tls_config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(ProvenByPassword(provider())))
        .with_no_client_auth();
    tls_config.alpn_protocols = vec![alpn.to_vec()];
    if let Some(time) = &crypto.time {
        tls_config.time_provider = time.clone();
    }
    let quic = QuicClientConfig::try_from(tls_config)?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport());
    if let Some(cids) = &crypto.initial_cids {
        config.initial_dst_cid_provider(cids.clone());
    }
    Ok(config)
}

/// The client side for one identity (the cluster key, or a peer's override).
pub fn client_config(
    identity: &ClusterIdentity,
    alpn: &[u8],
    crypto: &MeshCrypto,
) -> Result<quinn::ClientConfig, AuthError> {
    let provider = || crypto.provider.clone();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(identity.certificate.clone())?;
    // The server must present the identity itself: webpki, with it as the trust anchor.
    let mut tls_config = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots)
        .with_client_auth_cert(vec![identity.certificate.clone()], identity.private_key())?;
    tls_config.alpn_protocols = vec![alpn.to_vec()];
    if let Some(time) = &crypto.time {
        tls_config.time_provider = time.clone();
    }
    let quic = QuicClientConfig::try_from(tls_config)?;
    let mut config = quinn::ClientConfig::new(Arc::new(quic));
    config.transport_config(transport());
    if let Some(cids) = &crypto.initial_cids {
        config.initial_dst_cid_provider(cids.clone());
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    #[test]
    fn derivation_is_deterministic_and_key_specific() {
        let a = ClusterIdentity::derive("correct horse battery staple").unwrap();
        let again = ClusterIdentity::derive("correct horse battery staple").unwrap();
        let b = ClusterIdentity::derive("another key entirely").unwrap();
        assert_eq!(a.certificate, again.certificate);
        assert_eq!(a.server_name, again.server_name);
        assert_ne!(a.certificate, b.certificate);
        assert_ne!(a.server_name, b.server_name);
        assert!(!a.server_name.contains("horse"));
    }

    /// Connects a client holding `client_key` to a server trusting `server_keys`.
    async fn handshake(server_keys: &[&str], client_key: &str) -> Result<(), String> {
        let identities: Vec<ClusterIdentity> = server_keys
            .iter()
            .map(|k| ClusterIdentity::derive(k).unwrap())
            .collect();
        let server = quinn::Endpoint::server(
            server_config(&identities, &[MESH_ALPN], &MeshCrypto::system()).unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .map_err(|e| e.to_string())?;
        let address: SocketAddr = server.local_addr().map_err(|e| e.to_string())?;
        let accepting = server.clone();
        #[allow(clippy::disallowed_methods)] // A test-local accept task.
        let accept = tokio::spawn(async move {
            if let Some(incoming) = accepting.accept().await {
                let _ = incoming.await;
            }
        });
        let identity = ClusterIdentity::derive(client_key).unwrap();
        let mut client =
            quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).map_err(|e| e.to_string())?;
        client.set_default_client_config(
            client_config(&identity, MESH_ALPN, &MeshCrypto::system()).unwrap(),
        );
        let connecting = client
            .connect(address, &identity.server_name)
            .map_err(|e| e.to_string())?;
        let result = tokio::time::timeout(HANDSHAKE_TIMEOUT, connecting)
            .await
            .map_err(|_| "handshake timed out".to_string())?
            .map(|_| ())
            .map_err(|e| e.to_string());
        accept.abort();
        result
    }

    #[tokio::test]
    async fn only_holders_of_the_key_connect() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        assert_eq!(
            handshake(
                &["cluster-key-one-0123456789"],
                "cluster-key-one-0123456789"
            )
            .await,
            Ok(())
        );
        let refused = handshake(
            &["cluster-key-one-0123456789"],
            "a-different-key-0123456789",
        )
        .await;
        assert!(refused.is_err(), "a node with another key must be refused");
    }

    #[tokio::test]
    async fn a_login_client_connects_without_a_certificate_and_is_marked_so() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let identity = ClusterIdentity::derive("cluster-key-one-0123456789").unwrap();
        let server = quinn::Endpoint::server(
            server_config(
                std::slice::from_ref(&identity),
                &[SHELL_ALPN],
                &MeshCrypto::system(),
            )
            .unwrap(),
            "127.0.0.1:0".parse().unwrap(),
        )
        .unwrap();
        let address = server.local_addr().unwrap();
        let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        client.set_default_client_config(
            login_client_config(SHELL_ALPN, &MeshCrypto::system()).unwrap(),
        );
        let connecting = client.connect(address, "flotilla-shell").unwrap();
        let (server_side, client_side) = tokio::join!(
            async { server.accept().await.unwrap().await.unwrap() },
            connecting
        );
        let client_side = client_side.unwrap();
        assert!(!holds_cluster_key(&server_side), "no certificate: no key");
        // Both ends derive the same exporter value: what the login proofs are bound to.
        let (mut ours, mut theirs) = ([0u8; 32], [0u8; 32]);
        server_side
            .export_keying_material(&mut ours, b"test", b"")
            .unwrap();
        client_side
            .export_keying_material(&mut theirs, b"test", b"")
            .unwrap();
        assert_eq!(ours, theirs);
    }

    #[tokio::test]
    async fn a_per_peer_key_override_is_served_by_name() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let keys = ["cluster-key-one-0123456789", "override-for-peer-b-98765"];
        assert_eq!(handshake(&keys, "override-for-peer-b-98765").await, Ok(()));
        assert_eq!(handshake(&keys, "cluster-key-one-0123456789").await, Ok(()));
    }
}
