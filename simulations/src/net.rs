//! The mesh's network in a simulation: a quinn endpoint on a [`SimUdp`] socket with a
//! seeded endpoint generator and seeded handshake cryptography ([`crate::crypto`]), and
//! peers resolved by turmoil's DNS.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use flotilla::mesh::auth::MeshCrypto;
use flotilla::mesh::net::MeshNet;

use crate::udp::{DatagramFaults, SimUdp};

/// One simulated node's mesh network.
#[derive(Debug, Clone, Copy)]
pub struct SimNet {
    /// Seeds the endpoint (connection ids, tokens) and the socket's fault draws.
    pub seed: u64,
    /// Duplicates and replays on this node's sends.
    pub faults: DatagramFaults,
}

impl MeshNet for SimNet {
    fn endpoint(
        &self,
        server: quinn::ServerConfig,
        bind: SocketAddr,
    ) -> io::Result<quinn::Endpoint> {
        let socket = SimUdp::bind(bind.port(), self.faults, self.seed)?;
        let node_seed = self.seed;
        let mut config = quinn::EndpointConfig::new(crate::crypto::reset_key(node_seed));
        config.cid_generator(move || Box::new(crate::crypto::SeededCids::issued(node_seed)));
        let mut endpoint_seed = [0u8; 32];
        endpoint_seed[..8].copy_from_slice(&node_seed.to_le_bytes());
        config.rng_seed(Some(endpoint_seed));
        quinn::Endpoint::new_with_abstract_socket(
            config,
            Some(server),
            socket,
            Arc::new(quinn::TokioRuntime),
        )
    }

    fn crypto(&self) -> MeshCrypto {
        crate::crypto::seeded(self.seed)
    }

    fn resolve(&self, key: &str) -> Option<SocketAddr> {
        let (host, port) = key.rsplit_once(':')?;
        let port = port.parse().ok()?;
        // turmoil panics on an unknown name; the simulation only configures known hosts.
        Some(SocketAddr::new(turmoil::lookup(host), port))
    }
}
