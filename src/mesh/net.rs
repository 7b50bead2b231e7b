//! The mesh's network seam: where its QUIC endpoint gets a UDP socket and how a peer's
//! `host:port` becomes an address.
//!
//! A node uses [`SystemNet`] (the OS's UDP and resolver). The deterministic simulator
//! (crate `flotilla-sim`) supplies its own, over a simulated network, so the very same
//! mesh code runs in both; nothing else in the mesh touches a socket or a resolver, and
//! its handshakes draw their randomness from here too.

use std::net::{SocketAddr, ToSocketAddrs};

use super::auth::MeshCrypto;

/// Opens the mesh endpoint and resolves peers.
pub trait MeshNet: Send + Sync + 'static {
    /// A QUIC endpoint bound on `bind` that answers with `server`.
    fn endpoint(
        &self,
        server: quinn::ServerConfig,
        bind: SocketAddr,
    ) -> std::io::Result<quinn::Endpoint>;

    /// The address of `host:port` (`None` when it does not resolve).
    fn resolve(&self, key: &str) -> Option<SocketAddr>;

    /// The cryptography of the mesh's handshakes: the OS's randomness unless the
    /// network is simulated (see [`MeshCrypto`]).
    fn crypto(&self) -> MeshCrypto {
        MeshCrypto::system()
    }
}

/// The operating system's UDP sockets and resolver.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemNet;

impl MeshNet for SystemNet {
    fn endpoint(
        &self,
        server: quinn::ServerConfig,
        bind: SocketAddr,
    ) -> std::io::Result<quinn::Endpoint> {
        quinn::Endpoint::server(server, bind)
    }

    fn resolve(&self, key: &str) -> Option<SocketAddr> {
        key.to_socket_addrs().ok()?.next()
    }
}
