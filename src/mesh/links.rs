//! The node's [`PeerIo`]: what a peer link actor's tick does — keep a QUIC connection to
//! the peer, run one exchange, record the outcome in the cluster view, and start links
//! to peers learnt from it (a node configured with one seed peer joins the whole mesh).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use flotilla_cluster::mesh::{ExchangeFailure, Exchanged, PeerIo, PeerLink};
use flotilla_otp::node::NodeContext;
use flotilla_otp::registry::ActorPath;
use flotilla_otp::supervisor::{BoxFuture, SupervisorMsg, supervisor_at};
use flotilla_otp::worker::worker_child;

use super::auth::ClusterIdentity;
use super::connect::ConnectError;
use super::exchange::ExchangeError;
use super::service::{MeshService, PeerTarget};
use crate::error::{Classified, Fault};

/// Timeouts of a peer.
#[derive(Debug, Clone, Copy)]
pub struct PeerTimeouts {
    pub fetch_ms: u64,
    pub stale_ms: u64,
}

/// Why a peer link's tick failed.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The peer's name does not resolve (transport: DNS may answer later).
    #[error("cannot resolve {0}")]
    Unresolved(String),
    /// No connection to the peer.
    #[error(transparent)]
    Connect(#[from] ConnectError),
    /// The exchange on the connection failed.
    #[error(transparent)]
    Exchange(#[from] ExchangeError),
}

impl Classified for LinkError {
    fn fault(&self) -> Fault {
        match self {
            LinkError::Unresolved(_) => Fault::Transport,
            LinkError::Connect(error) => error.fault(),
            LinkError::Exchange(error) => error.fault(),
        }
    }
    fn retryable(&self) -> bool {
        match self {
            LinkError::Unresolved(_) => true,
            LinkError::Connect(error) => error.retryable(),
            LinkError::Exchange(error) => error.retryable(),
        }
    }
}

/// Most peers one node links to (configured and learnt): bounds what gossip can make a
/// node do.
pub const MAX_LINKS: usize = 256;

struct Links {
    targets: HashMap<String, PeerTarget>,
    connections: HashMap<String, quinn::Connection>,
}

/// The mesh as peer links use it.
#[derive(Clone)]
pub struct MeshLinks {
    mesh: MeshService,
    node: NodeContext,
    default_identity: ClusterIdentity,
    default_timeouts: PeerTimeouts,
    /// This node's own mesh address, never linked to.
    own_address: String,
    links: Arc<Mutex<Links>>,
    timeouts: Arc<Mutex<HashMap<String, PeerTimeouts>>>,
}

impl MeshLinks {
    pub fn new(
        mesh: MeshService,
        node: NodeContext,
        default_identity: ClusterIdentity,
        default_timeouts: PeerTimeouts,
        own_address: String,
    ) -> MeshLinks {
        MeshLinks {
            mesh,
            node,
            default_identity,
            default_timeouts,
            own_address,
            links: Arc::new(Mutex::new(Links {
                targets: HashMap::new(),
                connections: HashMap::new(),
            })),
            timeouts: Arc::default(),
        }
    }

    /// Registers a configured peer (its key is `host:port`), dialed at `dial` (`host:port`:
    /// its `private_payload_url` when the config gives one, else its key).
    pub fn add_peer(
        &self,
        key: &str,
        dial: &str,
        identity: ClusterIdentity,
        timeouts: PeerTimeouts,
        public_url: &str,
    ) {
        self.timeouts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key.to_string(), timeouts);
        self.mesh
            .view()
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .add_peer(key, public_url, timeouts.fetch_ms, timeouts.stale_ms);
        if let Some(address) = self.mesh.resolve(dial) {
            self.links
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .targets
                .insert(
                    key.to_string(),
                    PeerTarget {
                        key: key.to_string(),
                        address,
                        identity,
                    },
                );
        }
    }

    /// Forgets peer `key` (a reload removed it): its target, timeouts, connection (closed)
    /// and its record in the view. A node that still runs and that other peers know may
    /// be learnt again from them.
    pub fn remove_peer(&self, key: &str) {
        self.timeouts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
        let connection = {
            let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
            links.targets.remove(key);
            links.connections.remove(key)
        };
        if let Some(connection) = connection {
            connection.close(0u32.into(), b"removed from the config");
        }
        self.mesh
            .view()
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove_peer(key);
    }

    fn target(&self, key: &str) -> Option<PeerTarget> {
        let mut links = self.links.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(target) = links.targets.get(key) {
            return Some(target.clone());
        }
        // A learnt peer: the cluster key, resolved now.
        let target = PeerTarget {
            key: key.to_string(),
            address: self.mesh.resolve(key)?,
            identity: self.default_identity.clone(),
        };
        links.targets.insert(key.to_string(), target.clone());
        Some(target)
    }

    async fn run_exchange(self, key: String) -> Result<Exchanged, LinkError> {
        let now_ms = self.node.runtime.wall_clock_ms();
        let called = {
            let mut view = self.mesh.view().write().unwrap_or_else(|p| p.into_inner());
            // One of this node's moments: a pause shows as a gap since the last one, and
            // the view does not take its peers' silence over it for death.
            view.awake(now_ms);
            view.peer(&key, now_ms)
                .is_some_and(|(peer, _)| peer.called_this_round(now_ms))
        };
        if called {
            return Ok(Exchanged::PeerCalled);
        }
        let (target, connection) = self.connection(&key).await?;
        match self.mesh.call(&target, &connection).await {
            Ok(learnt) => {
                let rtt_ms = u64::try_from(connection.rtt().as_millis()).unwrap_or(u64::MAX);
                self.mesh
                    .view()
                    .write()
                    .unwrap_or_else(|p| p.into_inner())
                    .set_rtt(&key, rtt_ms);
                for address in learnt {
                    self.learn(&address.mesh, &address.public_url);
                }
                Ok(Exchanged::Called)
            }
            Err(error) => {
                self.links
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .connections
                    .remove(&key);
                self.record_failure(&key, &error.to_string(), false);
                Err(error.into())
            }
        }
    }

    /// Now, by the node's wall clock.
    pub fn now_ms(&self) -> u64 {
        self.node.runtime.wall_clock_ms()
    }

    /// The connection to peer `key`: the one its link keeps, or a new one (kept for the
    /// link and for relays, which share it).
    pub async fn connection(
        &self,
        key: &str,
    ) -> Result<(PeerTarget, quinn::Connection), LinkError> {
        let target = self
            .target(key)
            .ok_or_else(|| LinkError::Unresolved(key.to_string()))?;
        let cached = self
            .links
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .connections
            .get(key)
            .cloned();
        if let Some(connection) = cached.filter(|c| c.close_reason().is_none()) {
            return Ok((target, connection));
        }
        match self.mesh.connect(&target).await {
            Ok(connection) => {
                self.links
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .connections
                    .insert(key.to_string(), connection.clone());
                Ok((target, connection))
            }
            Err(error) => {
                let unauthorized = error.is_unauthorized();
                if unauthorized {
                    tracing::warn!(peer = %key, %error, "peer refused: it holds another cluster key");
                }
                self.record_failure(key, &error.to_string(), unauthorized);
                Err(error.into())
            }
        }
    }

    fn record_failure(&self, key: &str, error: &str, unauthorized: bool) {
        self.mesh
            .view()
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .failed(key, error, unauthorized);
    }

    /// A peer someone told us about: add it and start its link.
    fn learn(&self, key: &str, public_url: &str) {
        if key.is_empty() || key == self.own_address {
            return;
        }
        {
            let mut view = self.mesh.view().write().unwrap_or_else(|p| p.into_inner());
            if view.knows(key) || view.peers(0).count() >= MAX_LINKS {
                return;
            }
            let timeouts = self.default_timeouts;
            view.add_peer(key, public_url, timeouts.fetch_ms, timeouts.stale_ms);
        }
        tracing::info!(peer = %key, "peer learnt from the mesh; linking to it");
        let Some(supervisor) =
            supervisor_at(&self.node, &ActorPath::root().child("mesh").child("peers"))
        else {
            return;
        };
        let link = PeerLink {
            io: Arc::new(self.clone()),
        };
        let address = key.to_string();
        let spec = worker_child(key, link, move || address.clone());
        let (reply, _ignored) = ractor::concurrency::oneshot();
        let _ = supervisor.cast(SupervisorMsg::StartChild(spec, reply.into()));
    }
}

impl PeerIo for MeshLinks {
    fn exchange(&self, peer: &str) -> BoxFuture<Result<Exchanged, ExchangeFailure>> {
        let links = self.clone();
        let peer = peer.to_string();
        Box::pin(async move { Ok(links.run_exchange(peer).await?) })
    }

    fn fetch_interval(&self, peer: &str) -> Duration {
        let timeouts = self.timeouts.lock().unwrap_or_else(|p| p.into_inner());
        Duration::from_millis(
            timeouts
                .get(peer)
                .unwrap_or(&self.default_timeouts)
                .fetch_ms,
        )
    }

    fn held_bytes(&self, peer: &str) -> u64 {
        let view = self.mesh.view().read().unwrap_or_else(|p| p.into_inner());
        view.peer(peer, 0)
            .map_or(0, |(record, _)| record.held_bytes())
    }
}
