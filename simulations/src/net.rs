//! The mesh's network in a simulation: a quinn endpoint on a [`SimUdp`] socket with a
//! seeded endpoint generator and seeded handshake cryptography ([`crate::crypto`]), and
//! peers resolved by turmoil's DNS. quinn's tasks and clock are the node's runtime seam
//! ([`SeamQuinn`]), so a suspended node's network stops with it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use flotilla::mesh::auth::MeshCrypto;
use flotilla::mesh::net::MeshNet;
use flotilla_otp::rt::Runtime;

use crate::udp::{DatagramFaults, SimUdp};

/// One simulated node's mesh network.
#[derive(Debug, Clone)]
pub struct SimNet {
    /// Seeds the endpoint (connection ids, tokens) and the socket's fault draws.
    pub seed: u64,
    /// Duplicates and replays on this node's sends.
    pub faults: DatagramFaults,
    /// The node's runtime: quinn's drivers and the socket's reader are its tasks, and
    /// quinn and TLS read its clock.
    pub runtime: Runtime,
}

/// quinn on the node's runtime seam: its endpoint and connection drivers are spawned
/// through [`Runtime::spawn`] and it reads [`Runtime::now`], so that a suspended node's
/// QUIC stands still with the rest of it. Timers are tokio's, as with
/// [`quinn::TokioRuntime`].
#[derive(Debug)]
pub struct SeamQuinn(pub Runtime);

impl quinn::Runtime for SeamQuinn {
    fn new_timer(&self, at: std::time::Instant) -> Pin<Box<dyn quinn::AsyncTimer>> {
        quinn::TokioRuntime.new_timer(at)
    }

    fn spawn(&self, future: Pin<Box<dyn Future<Output = ()> + Send>>) {
        drop(self.0.spawn("quinn", future));
    }

    fn wrap_udp_socket(
        &self,
        socket: std::net::UdpSocket,
    ) -> io::Result<Arc<dyn quinn::AsyncUdpSocket>> {
        quinn::TokioRuntime.wrap_udp_socket(socket)
    }

    fn now(&self) -> std::time::Instant {
        self.0.now().into_std()
    }
}

impl MeshNet for SimNet {
    fn endpoint(
        &self,
        server: quinn::ServerConfig,
        bind: SocketAddr,
    ) -> io::Result<quinn::Endpoint> {
        let socket = SimUdp::bind(bind.port(), self.faults, self.seed, &self.runtime)?;
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
            Arc::new(SeamQuinn(self.runtime.clone())),
        )
    }

    fn crypto(&self) -> MeshCrypto {
        crate::crypto::seeded(self.seed, self.runtime.clone())
    }

    fn resolve(&self, key: &str) -> Option<SocketAddr> {
        // A node's turmoil host is named by its identity, `host:port` (cluster.rs), so
        // nodes that share a hostname and differ by port are distinct hosts.
        let (_, port) = key.rsplit_once(':')?;
        let port = port.parse().ok()?;
        Some(SocketAddr::new(turmoil::lookup(key), port))
    }
}
