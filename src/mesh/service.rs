//! The node's side of the mesh: one QUIC endpoint (server and client on one UDP socket),
//! the answering half of exchanges, the dialing half used by peer link actors, and the
//! cluster view both halves feed.
//!
//! State deltas: each side remembers, per peer, the last stream list it sent and under
//! which version. A `Hello` says which version of the other side's state the sender has;
//! when that matches what was last sent, only the difference goes out, otherwise the
//! whole list. Versions grow with every change, so a receiver never goes backwards.
//!
//! Peers' addresses (how a node configured with one seed peer learns the whole mesh) are
//! part of the versioned state: a change of the alive set bumps the version, and an
//! answer carries the addresses only to a caller not known to have them (known: it
//! applied exactly the last state we sent it, and that state or an earlier one it
//! applied likewise carried the current addresses). A caller's state carries none: the
//! answering side learns its peers from its own calls. With 20 nodes the list is 19
//! addresses, which every exchange repeated.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use flotilla_cluster::mesh::view::{ClusterView, PeerLoad, PeerUpdate};
use flotilla_otp::rt::Runtime;

use super::auth::{self, ClusterIdentity, MESH_ALPN, SHELL_ALPN};
use super::connect::ConnectError;
use super::exchange::{self, ExchangeError};
use super::net::MeshNet;
use super::wire::{Message, NodeAddress, NodeLoad, StreamEntry};
use crate::error::{Classified, Fault};
use crate::log_limit::LimitedWarning;

/// What this node advertises, read fresh for every exchange: its load, and its streams in
/// name order with unique names (the same allocation while they do not change, see
/// `mesh::advert`).
pub type LocalState = Arc<dyn Fn() -> (NodeLoad, Streams) + Send + Sync>;

/// Serves shell connections (the shell module implements it; set once the node's API
/// exists).
pub trait ShellAcceptor: Send + Sync + 'static {
    /// Serves one authenticated shell connection until it closes.
    fn serve(&self, connection: quinn::Connection) -> futures_util::future::BoxFuture<'static, ()>;
}

/// How to reach a configured or learnt peer.
#[derive(Debug, Clone)]
pub struct PeerTarget {
    /// The view's key: `host:port` of its mesh endpoint.
    pub key: String,
    pub address: SocketAddr,
    pub identity: ClusterIdentity,
}

/// This node's stream list as advertised, sorted by name, shared between the current
/// state and what was last sent to each peer (no copy per peer per exchange).
pub type Streams = Arc<Vec<StreamEntry>>;

/// The last state sent to one peer.
struct Sent {
    version: u64,
    streams: Streams,
    /// The version of our alive addresses the peer holds once it applies this state:
    /// those it carried, else (when the peer had applied the state before it) the ones
    /// that one left it with; `None`: not known to have any.
    addresses_version: Option<u64>,
}

/// The local state as last read, with what changed when.
#[derive(Clone)]
struct LastState {
    load: NodeLoad,
    streams: Streams,
    /// The alive peers' addresses, in the view's order.
    addresses: Arc<Vec<NodeAddress>>,
    /// The version at which `addresses` last changed.
    addresses_version: u64,
}

struct Inner {
    endpoint: quinn::Endpoint,
    /// Where the endpoint came from; resolves peers too.
    net: Arc<dyn MeshNet>,
    runtime: Runtime,
    me: NodeAddress,
    /// This node's incarnation: see [`MeshService::learn_incarnation`].
    incarnation: AtomicU64,
    /// This node's start, Unix ms (its clock).
    started_ms: u64,
    version: AtomicU64,
    last_state: Mutex<Option<LastState>>,
    local: LocalState,
    view: Arc<RwLock<ClusterView>>,
    sent: Mutex<HashMap<String, Sent>>,
    clients: HashMap<Vec<u8>, quinn::ClientConfig>,
    /// Dials other nodes' shells (`@NODE`) with this node's cluster key.
    shell_client: quinn::ClientConfig,
    shell: std::sync::OnceLock<Arc<dyn ShellAcceptor>>,
    identity: ClusterIdentity,
    /// Refused connections, one warning per handshake anyone can start (a datagram that
    /// reads as a QUIC Initial is enough): written at most once per interval, counted.
    refused_handshakes: Arc<LimitedWarning>,
    refused_certificates: Arc<LimitedWarning>,
}

/// The mesh of one node. Cheap to clone.
#[derive(Clone)]
pub struct MeshService {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MeshService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MeshService({:?})", self.local_addr())
    }
}

/// Why the mesh could not start: always this host's (local) failure.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    /// The cluster identity or its TLS configuration could not be built.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// The UDP port is taken or not ours.
    #[error("cannot open the mesh endpoint on UDP {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
}

impl Classified for MeshError {
    fn fault(&self) -> Fault {
        match self {
            MeshError::Auth(error) => error.fault(),
            MeshError::Bind(..) => Fault::Local,
        }
    }
}

fn to_load(load: &NodeLoad) -> PeerLoad {
    PeerLoad {
        cpu_usage: load.cpu_usage,
        memory_usage: load.memory_usage,
        total_clients: load.total_clients,
        online_streams: load.online_streams,
        output_kbit: load.output_kbit,
        bandwidth_usage: load.bandwidth_usage,
        total_bandwidth: load.total_bandwidth,
        uptime: load.uptime,
    }
}

impl MeshService {
    /// Binds the endpoint on `bind` (UDP), trusting every identity in `identities` (the
    /// first is this node's own cluster key).
    pub fn start(
        runtime: Runtime,
        net: Arc<dyn MeshNet>,
        bind: SocketAddr,
        me: NodeAddress,
        identities: Vec<ClusterIdentity>,
        local: LocalState,
        view: Arc<RwLock<ClusterView>>,
    ) -> Result<MeshService, MeshError> {
        let crypto = net.crypto();
        let server = auth::server_config(&identities, &[MESH_ALPN, SHELL_ALPN], &crypto)?;
        let identity = identities
            .first()
            .cloned()
            .ok_or(auth::AuthError::NoIdentity)?;
        let shell_client = auth::client_config(&identity, SHELL_ALPN, &crypto)?;
        let endpoint = net
            .endpoint(server, bind)
            .map_err(|e| MeshError::Bind(bind, e))?;
        let mut clients = HashMap::new();
        for identity in &identities {
            clients.insert(
                identity.certificate.to_vec(),
                auth::client_config(identity, MESH_ALPN, &crypto)?,
            );
        }
        // The first incarnation is the start time: above every earlier life's unless the
        // clock went back, which the first exchange repairs (`learn_incarnation`).
        let started_ms = runtime.wall_clock_ms();
        view.write()
            .unwrap_or_else(|p| p.into_inner())
            .set_own_start(started_ms);
        let service = MeshService {
            inner: Arc::new(Inner {
                endpoint,
                net,
                incarnation: AtomicU64::new(started_ms),
                started_ms,
                runtime,
                me,
                version: AtomicU64::new(0),
                last_state: Mutex::new(None),
                local,
                view,
                sent: Mutex::default(),
                clients,
                shell_client,
                shell: std::sync::OnceLock::new(),
                identity,
                refused_handshakes: LimitedWarning::outsider("mesh connection refused"),
                refused_certificates: LimitedWarning::outsider(
                    "mesh connection refused: no cluster certificate",
                ),
            }),
        };
        let accepting = service.clone();
        service
            .inner
            .runtime
            .spawn("mesh-accept", async move { accepting.accept_loop().await });
        Ok(service)
    }

    /// The UDP address the endpoint is bound to.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.inner.endpoint.local_addr().ok()
    }

    /// The address of a peer's `host:port`, through the node's network.
    pub fn resolve(&self, key: &str) -> Option<SocketAddr> {
        self.inner.net.resolve(key)
    }

    /// The shared cluster view.
    pub fn view(&self) -> &Arc<RwLock<ClusterView>> {
        &self.inner.view
    }

    /// This node's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.inner.incarnation.load(Ordering::Relaxed)
    }

    /// A peer knows an incarnation of this node above the current one: this node is a
    /// later life of a node whose clock has since gone back (stepped by NTP or by
    /// hand, a VM restored from a snapshot). Its incarnation moves above the one known,
    /// so that every peer takes its state as the newer one; a peer that knows the
    /// current one or less teaches nothing. Incarnations only grow.
    fn learn_incarnation(&self, known_by_peer: u64) {
        let raised = known_by_peer.saturating_add(1);
        let above = |current: u64| (known_by_peer > current).then_some(raised);
        if let Ok(previous) =
            self.inner
                .incarnation
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, above)
        {
            tracing::warn!(
                incarnation = raised,
                previous,
                "a peer knew a later incarnation of this node (its clock went back): incarnation raised"
            );
        }
    }

    async fn accept_loop(self) {
        while let Some(incoming) = self.inner.endpoint.accept().await {
            let service = self.clone();
            self.inner.runtime.spawn("mesh-connection", async move {
                let connection = match tokio::time::timeout(auth::HANDSHAKE_TIMEOUT, incoming).await {
                    Ok(Ok(connection)) => connection,
                    Ok(Err(error)) => {
                        let inner = &service.inner;
                        inner.refused_handshakes.warn(&inner.runtime, || {
                            tracing::warn!(%error, "mesh connection refused (another cluster key, or not a flotilla node)");
                        });
                        return;
                    }
                    Err(_) => return,
                };
                let remote = connection.remote_address();
                let alpn = connection
                    .handshake_data()
                    .and_then(|data| data.downcast::<quinn::crypto::rustls::HandshakeData>().ok())
                    .and_then(|data| data.protocol);
                if alpn.as_deref() != Some(SHELL_ALPN) && !auth::holds_cluster_key(&connection) {
                    let inner = &service.inner;
                    inner.refused_certificates.warn(&inner.runtime, || {
                        tracing::warn!(%remote, "mesh connection refused: no cluster certificate");
                    });
                    connection.close(2u32.into(), b"the mesh needs the cluster key");
                    return;
                }
                if alpn.as_deref() == Some(SHELL_ALPN) {
                    match service.inner.shell.get() {
                        Some(shell) => shell.serve(connection).await,
                        None => connection.close(1u32.into(), b"the shell is not ready yet"),
                    }
                    return;
                }
                while let Ok((send, receive)) = connection.accept_bi().await {
                    if let Err(error) = service.answer(send, receive).await {
                        tracing::debug!(%remote, %error, "mesh exchange failed");
                    }
                }
            });
        }
    }

    /// The current local state, with its version (bumped when anything changed).
    fn current_state(&self) -> (u64, LastState) {
        let (load, streams) = (self.inner.local)();
        debug_assert!(
            streams.windows(2).all(|w| w[0].name < w[1].name),
            "the local state gives streams in name order, names unique"
        );
        let now_ms = self.inner.runtime.wall_clock_ms();
        let view = self.inner.view.read().unwrap_or_else(|p| p.into_inner());
        let mut last = self
            .inner
            .last_state
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // The same list as before is the same allocation (mesh::advert); an equal list
        // in a new one is taken as unchanged too, and the old allocation kept, so every
        // peer's delta is known empty without comparing lists. The addresses are
        // compared with the view in place, and copied only when they changed.
        let previous = last.take();
        let (same_streams, same_addresses) = previous.as_ref().map_or((false, false), |l| {
            (
                Arc::ptr_eq(&l.streams, &streams) || *l.streams == *streams,
                l.addresses.iter().eq(alive_addresses(&view, now_ms)),
            )
        });
        let state = match previous {
            Some(l) if l.load == load && same_streams && same_addresses => l,
            previous => {
                // The load alone moves at most exchanges (uptime, bitrates).
                let version = self.inner.version.fetch_add(1, Ordering::Relaxed) + 1;
                let streams = match &previous {
                    Some(l) if same_streams => l.streams.clone(),
                    _ => streams,
                };
                let (addresses, addresses_version) = match previous {
                    Some(l) if same_addresses => (l.addresses, l.addresses_version),
                    _ => (Arc::new(owned_addresses(&view, now_ms)), version),
                };
                LastState {
                    load,
                    streams,
                    addresses,
                    addresses_version,
                }
            }
        };
        *last = Some(state.clone());
        (self.inner.version.load(Ordering::Relaxed), state)
    }

    fn hello(&self, peer_key: &str) -> Message {
        let now_ms = self.inner.runtime.wall_clock_ms();
        let view = self.inner.view.read().unwrap_or_else(|p| p.into_inner());
        let (known_incarnation, known_version) = view.known(peer_key);
        Message::Hello {
            node: self.inner.me.clone(),
            incarnation: self.incarnation(),
            started_ms: self.inner.started_ms,
            known_incarnation,
            known_version,
            uptime_ms: now_ms.saturating_sub(self.inner.started_ms),
            returns_ms: view.own().returns_ms().to_vec(),
            your_restarts_ms: view
                .peer(peer_key, now_ms)
                .map(|(peer, _)| peer.history.restarts_seen().to_vec())
                .unwrap_or_default(),
        }
    }

    /// Our state for `peer_key`, as a delta when the peer has what we last sent it.
    /// `with_addresses`: an answer, which carries the alive peers' addresses when the
    /// peer may not have them yet (a caller's state never does: see the module header).
    fn state_for(&self, peer_key: &str, peer_has: (u64, u64), with_addresses: bool) -> Message {
        let (
            version,
            LastState {
                load,
                streams: current,
                addresses,
                addresses_version,
            },
        ) = self.current_state();
        let mut sent = self.inner.sent.lock().unwrap_or_else(|p| p.into_inner());
        // The peer applied exactly the last state we sent it (else it gets a full one).
        let delta_base = sent
            .get(peer_key)
            .filter(|last| peer_has == (self.incarnation(), last.version));
        let peer_addresses = delta_base.and_then(|last| last.addresses_version);
        let (full, upserts, removals) = match delta_base {
            Some(last) if Arc::ptr_eq(&last.streams, &current) => (false, Vec::new(), Vec::new()),
            Some(last) => {
                let (upserts, removals) = delta(&last.streams, &current);
                (false, upserts, removals)
            }
            None => (true, current.to_vec(), Vec::new()),
        };
        let carries_addresses = with_addresses && peer_addresses != Some(addresses_version);
        let entry = Sent {
            version,
            streams: current,
            addresses_version: if carries_addresses {
                Some(addresses_version)
            } else {
                peer_addresses
            },
        };
        match sent.get_mut(peer_key) {
            Some(last) => *last = entry,
            None => {
                sent.insert(peer_key.to_string(), entry);
            }
        }
        drop(sent);
        let peers = if carries_addresses {
            addresses.to_vec()
        } else {
            Vec::new()
        };
        Message::State {
            incarnation: self.incarnation(),
            version,
            load,
            full,
            upserts,
            removals,
            peers,
        }
    }

    /// Applies a received hello + state to the view; returns the addresses it taught us.
    /// `called_by_peer`: this node answered the exchange (see
    /// `PeerRecord::called_this_round`).
    fn absorb(
        &self,
        key: &str,
        hello: Message,
        state: Message,
        called_by_peer: bool,
    ) -> Vec<NodeAddress> {
        let (
            Message::Hello {
                node,
                started_ms,
                uptime_ms,
                returns_ms,
                your_restarts_ms,
                ..
            },
            Message::State {
                incarnation,
                version,
                load,
                full,
                upserts,
                removals,
                peers,
            },
        ) = (hello, state)
        else {
            return Vec::new();
        };
        let update = PeerUpdate {
            id: node.id.clone(),
            hostname: node.hostname.clone(),
            public_url: node.public_url.clone(),
            rtmp_url: node.rtmp_url.clone(),
            incarnation,
            started_ms,
            version,
            load: to_load(&load),
            uptime_ms,
            returns_ms,
            your_restarts_ms,
            full,
            upserts: upserts
                .iter()
                .map(|s| (s.name.clone(), s.remote()))
                .collect(),
            removals,
            called_by_peer,
        };
        let now_ms = self.inner.runtime.wall_clock_ms();
        self.inner
            .view
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .apply(key, update, now_ms);
        peers
    }

    /// The answering half: read the caller's hello, answer with ours and our state, then
    /// read its state.
    async fn answer(
        &self,
        mut send: quinn::SendStream,
        mut receive: quinn::RecvStream,
    ) -> Result<(), ExchangeError> {
        let hello = exchange::receive(&mut receive).await?;
        let Message::Hello {
            node,
            known_incarnation,
            known_version,
            ..
        } = &hello
        else {
            return Err(ExchangeError::Unexpected("a state", "hello"));
        };
        // Under the key the config gives it (its identity is its `peer` entry's key)
        // when it is listed; else under the address it calls from.
        let key = {
            let view = self.inner.view.read().unwrap_or_else(|p| p.into_inner());
            if view.knows(&node.id) {
                node.id.clone()
            } else {
                node.mesh.clone()
            }
        };
        {
            let mut view = self.inner.view.write().unwrap_or_else(|p| p.into_inner());
            if !view.knows(&key) {
                tracing::info!(peer = %key, id = %node.id, hostname = %node.hostname, "peer learnt from its call");
                view.add_peer(
                    &key,
                    &node.public_url,
                    crate::defaults::FETCH_TIMEOUT_MS,
                    crate::defaults::STALE_TIMEOUT_MS,
                );
            }
        }
        self.learn_incarnation(*known_incarnation);
        let peer_has = (*known_incarnation, *known_version);
        exchange::send(&mut send, &self.hello(&key)).await?;
        exchange::send(&mut send, &self.state_for(&key, peer_has, true)).await?;
        let state = exchange::receive(&mut receive).await?;
        self.absorb(&key, hello, state, true);
        let _ = send.finish();
        Ok(())
    }

    /// The dialing half: one exchange with `target` over `connection`. Returns the peer
    /// addresses it told us about.
    pub async fn call(
        &self,
        target: &PeerTarget,
        connection: &quinn::Connection,
    ) -> Result<Vec<NodeAddress>, ExchangeError> {
        let (mut send, mut receive) = connection.open_bi().await.map_err(ExchangeError::Open)?;
        exchange::send(&mut send, &self.hello(&target.key)).await?;
        let (hello, state) = exchange::receive_pair(&mut receive).await?;
        let Message::Hello {
            known_incarnation,
            known_version,
            ..
        } = &hello
        else {
            unreachable!("receive_pair checked it");
        };
        self.learn_incarnation(*known_incarnation);
        let peer_has = (*known_incarnation, *known_version);
        exchange::send(&mut send, &self.state_for(&target.key, peer_has, false)).await?;
        let _ = send.finish();
        Ok(self.absorb(&target.key, hello, state, false))
    }

    /// Connects to `target` with its identity.
    pub async fn connect(&self, target: &PeerTarget) -> Result<quinn::Connection, ConnectError> {
        let config = self
            .inner
            .clients
            .get(target.identity.certificate.as_ref())
            .cloned()
            .ok_or(ConnectError::NoClientConfig)?;
        let connecting = self.inner.endpoint.connect_with(
            config,
            target.address,
            &target.identity.server_name,
        )?;
        Ok(tokio::time::timeout(auth::HANDSHAKE_TIMEOUT, connecting)
            .await
            .map_err(|_| ConnectError::Timeout(auth::HANDSHAKE_TIMEOUT))??)
    }

    /// Serves shell connections with `shell` from now on.
    pub fn set_shell(&self, shell: Arc<dyn ShellAcceptor>) {
        let _ = self.inner.shell.set(shell);
    }

    /// Connects to the shell of the node at `address` (for `@NODE`).
    pub async fn connect_shell(
        &self,
        address: SocketAddr,
    ) -> Result<quinn::Connection, ConnectError> {
        let connecting = self.inner.endpoint.connect_with(
            self.inner.shell_client.clone(),
            address,
            &self.inner.identity.server_name,
        )?;
        Ok(tokio::time::timeout(auth::HANDSHAKE_TIMEOUT, connecting)
            .await
            .map_err(|_| ConnectError::Timeout(auth::HANDSHAKE_TIMEOUT))??)
    }

    /// Stops accepting and closes every connection.
    pub fn close(&self) {
        self.inner.endpoint.close(0u32.into(), b"node stopping");
    }
}

/// What changed from `before` to `after` (both sorted by name, names unique): the
/// entries new or different in `after`, and the names gone from it, each in name order.
/// The alive peers' addresses as the view has them (borrowed, at most
/// [`MAX_PEERS`](super::wire::MAX_PEERS)), each as it would be sent.
fn alive_addresses(view: &ClusterView, now_ms: u64) -> impl Iterator<Item = AddressRef<'_>> + '_ {
    view.peers(now_ms)
        .filter(|(_, state)| *state == flotilla_cluster::mesh::view::PeerState::Alive)
        .map(|(peer, _)| AddressRef {
            id: &peer.id,
            hostname: &peer.hostname,
            mesh: &peer.name,
            public_url: &peer.public_url,
            rtmp_url: &peer.rtmp_url,
        })
        .take(super::wire::MAX_PEERS)
}

/// Alive peers' addresses, owned, so that others learn them (peers of peers).
fn owned_addresses(view: &ClusterView, now_ms: u64) -> Vec<NodeAddress> {
    alive_addresses(view, now_ms)
        .map(|address| NodeAddress {
            id: address.id.to_string(),
            hostname: address.hostname.to_string(),
            mesh: address.mesh.to_string(),
            public_url: address.public_url.to_string(),
            rtmp_url: address.rtmp_url.to_string(),
        })
        .collect()
}

/// A [`NodeAddress`] borrowed from the view.
#[derive(Debug, Clone, Copy)]
struct AddressRef<'a> {
    id: &'a str,
    hostname: &'a str,
    mesh: &'a str,
    public_url: &'a str,
    rtmp_url: &'a str,
}

impl PartialEq<AddressRef<'_>> for &NodeAddress {
    fn eq(&self, other: &AddressRef<'_>) -> bool {
        self.id == other.id
            && self.hostname == other.hostname
            && self.mesh == other.mesh
            && self.public_url == other.public_url
            && self.rtmp_url == other.rtmp_url
    }
}

fn delta(before: &[StreamEntry], after: &[StreamEntry]) -> (Vec<StreamEntry>, Vec<String>) {
    let (mut upserts, mut removals) = (Vec::new(), Vec::new());
    let (mut old, mut new) = (before.iter().peekable(), after.iter().peekable());
    loop {
        match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(gone), None) => {
                removals.push(gone.name.clone());
                old.next();
            }
            (None, Some(added)) => {
                upserts.push((*added).clone());
                new.next();
            }
            (Some(was), Some(is)) => match was.name.cmp(&is.name) {
                std::cmp::Ordering::Less => {
                    removals.push(was.name.clone());
                    old.next();
                }
                std::cmp::Ordering::Greater => {
                    upserts.push((*is).clone());
                    new.next();
                }
                std::cmp::Ordering::Equal => {
                    if was != is {
                        upserts.push((*is).clone());
                    }
                    old.next();
                    new.next();
                }
            },
        }
    }
    (upserts, removals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        /// The merge walk gives what comparing name maps gives (the definition).
        #[test]
        fn the_delta_is_the_difference_of_the_name_maps(
            before in proptest::collection::btree_map("[a-f]{1,2}", 0u64..3, 0..12),
            after in proptest::collection::btree_map("[a-f]{1,2}", 0u64..3, 0..12),
        ) {
            let entries = |map: &BTreeMap<String, u64>| -> Vec<StreamEntry> {
                map.iter()
                    .map(|(name, clients)| StreamEntry { clients: *clients, ..stream(name) })
                    .collect()
            };
            let (old, new) = (entries(&before), entries(&after));
            let (upserts, removals) = delta(&old, &new);
            let expected_upserts: Vec<StreamEntry> = new
                .iter()
                .filter(|s| old.iter().find(|o| o.name == s.name) != Some(*s))
                .cloned()
                .collect();
            let expected_removals: Vec<String> =
                before.keys().filter(|name| !after.contains_key(*name)).cloned().collect();
            prop_assert_eq!(upserts, expected_upserts);
            prop_assert_eq!(removals, expected_removals);
        }
    }

    fn node(name: &str, key: &str, streams: Vec<StreamEntry>) -> MeshService {
        node_on(Runtime::production(), name, key, streams)
    }

    /// A node whose wall clock reads `wall_ms` at its start.
    fn node_at(wall_ms: u64, name: &str, key: &str, streams: Vec<StreamEntry>) -> MeshService {
        node_on(Runtime::deterministic(7, wall_ms), name, key, streams)
    }

    fn node_on(runtime: Runtime, name: &str, key: &str, streams: Vec<StreamEntry>) -> MeshService {
        let me = NodeAddress {
            id: format!("{name}:80"),
            hostname: name.into(),
            mesh: String::new(),
            public_url: format!("http://{name}"),
            rtmp_url: String::new(),
        };
        let mut streams = streams;
        streams.sort_by(|a, b| a.name.cmp(&b.name));
        let streams = Arc::new(streams);
        let local: LocalState = Arc::new(move || (NodeLoad::default(), streams.clone()));
        MeshService::start(
            runtime,
            Arc::new(crate::mesh::net::SystemNet),
            "127.0.0.1:0".parse().unwrap(),
            me,
            vec![ClusterIdentity::derive(key).unwrap()],
            local,
            Arc::default(),
        )
        .unwrap()
    }

    fn stream(name: &str) -> StreamEntry {
        StreamEntry {
            name: name.into(),
            alive: true,
            ondemand: false,
            clients: 0,
            bitrate_kbit: 300,
            epoch: 0,
            ingest: flotilla_cluster::mesh::view::IngestRole::None,
        }
    }

    #[tokio::test]
    async fn a_client_without_the_key_gets_no_mesh_exchange() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let b = node("b", "mesh-test-key-0123456789", vec![stream("tv")]);
        // A shell-login client (no certificate) asking for the mesh ALPN: TLS completes,
        // then the node closes the connection before any exchange.
        let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
        client.set_default_client_config(
            auth::login_client_config(MESH_ALPN, &auth::MeshCrypto::system()).unwrap(),
        );
        let connection = client
            .connect(b.local_addr().unwrap(), "flotilla-shell")
            .unwrap()
            .await
            .unwrap();
        let closed = tokio::time::timeout(std::time::Duration::from_secs(5), connection.closed())
            .await
            .expect("the node closes it");
        assert!(
            closed
                .to_string()
                .contains("the mesh needs the cluster key"),
            "{closed}"
        );
    }

    /// Incarnations order a node's lives whatever its wall clock does (issue 31.5): a node
    /// restarted with its clock 20 minutes back takes an incarnation above its previous
    /// life's as soon as a peer tells it what it knew, and that peer then takes the new
    /// life's state, not the old one's.
    #[tokio::test]
    async fn a_restart_with_the_clock_stepped_back_is_still_the_newer_life() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let key = "mesh-test-key-0123456789";
        const BEFORE_MS: u64 = 1_800_000_000_000;
        const STEPPED_BACK_MS: u64 = BEFORE_MS - 20 * 60 * 1_000;
        let b = node("b", key, vec![stream("tv")]);
        let b_key = b.local_addr().unwrap().to_string();
        let target = PeerTarget {
            key: b_key.clone(),
            address: b.local_addr().unwrap(),
            identity: ClusterIdentity::derive(key).unwrap(),
        };
        // What b knows of a, under the key a calls from (empty in this test).
        let b_knows_a = || b.view().read().unwrap().known("");
        let exchange = |a: MeshService| {
            let target = target.clone();
            async move {
                a.view()
                    .write()
                    .unwrap()
                    .add_peer(&target.key, "", 1_000, 3_000);
                let connection = a.connect(&target).await.unwrap();
                a.call(&target, &connection).await.unwrap();
                // The connection stays open until b has read a's state.
                (a, connection)
            }
        };
        let until_b_knows = |incarnation: u64| async move {
            for _ in 0..400 {
                if b_knows_a().0 == incarnation {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            panic!(
                "b knows {:?} of a, not incarnation {incarnation}",
                b_knows_a()
            );
        };

        let (first, connection) = exchange(node_at(BEFORE_MS, "a", key, vec![stream("old")])).await;
        let first_life = first.incarnation();
        assert!((BEFORE_MS..BEFORE_MS + 60_000).contains(&first_life));
        until_b_knows(first_life).await;
        drop((first, connection));

        let second = node_at(STEPPED_BACK_MS, "a", key, vec![stream("new")]);
        assert!(
            second.incarnation() < first_life,
            "the clock alone orders it wrong"
        );
        let (second, _connection) = exchange(second).await;
        assert_eq!(
            second.incarnation(),
            first_life + 1,
            "raised above what b knew"
        );
        until_b_knows(first_life + 1).await;
        // b now knows the current life: nothing more to learn, the incarnation stands.
        let again = second.connect(&target).await.unwrap();
        second.call(&target, &again).await.unwrap();
        assert_eq!(
            second.incarnation(),
            first_life + 1,
            "a peer that knows the current life teaches nothing"
        );
        let now = Runtime::production().wall_clock_ms();
        let view = b.view().read().unwrap();
        let (record, _) = view.peer("", now).expect("b knows a");
        assert!(
            record.streams.contains_key("new"),
            "{:?}",
            record.streams.keys()
        );
        assert!(
            !record.streams.contains_key("old"),
            "the old life's streams are gone"
        );
    }

    #[tokio::test]
    async fn an_exchange_informs_both_sides_and_then_sends_deltas() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let key = "mesh-test-key-0123456789";
        let a = node("a", key, vec![stream("cam")]);
        let b = node("b", key, vec![stream("tv"), stream("radio")]);
        let b_key = b.local_addr().unwrap().to_string();
        a.view().write().unwrap().add_peer(&b_key, "", 1_000, 3_000);
        let target = PeerTarget {
            key: b_key.clone(),
            address: b.local_addr().unwrap(),
            identity: ClusterIdentity::derive(key).unwrap(),
        };
        let connection = a.connect(&target).await.unwrap();
        a.call(&target, &connection).await.unwrap();
        let now = Runtime::production().wall_clock_ms();
        assert_eq!(a.view().read().unwrap().locate("tv", now).len(), 1);
        // B learnt A from its call (keyed by A's advertised mesh address, empty here);
        // B absorbs A's state once A's last frame arrives, asynchronously.
        for _ in 0..200 {
            if !b.view().read().unwrap().locate("cam", now).is_empty() {
                break;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(b.view().read().unwrap().locate("cam", now).len(), 1);
        // B's next state for A, with no stream changed, is an empty delta (A is keyed by
        // its advertised mesh address, empty in this test). A became alive in B's view
        // after B's answer was built: B's alive addresses changed since the version A
        // has, so they go out.
        let a_has_of_b = a.view().read().unwrap().known(&b_key);
        let hostnames =
            |peers: &[NodeAddress]| peers.iter().map(|p| p.hostname.clone()).collect::<Vec<_>>();
        let next_version = match b.state_for("", a_has_of_b, true) {
            Message::State {
                full,
                upserts,
                removals,
                version,
                peers,
                ..
            } => {
                assert!(!full, "A has B's last state: a delta");
                assert!(
                    upserts.is_empty() && removals.is_empty(),
                    "no stream changed"
                );
                assert_eq!(hostnames(&peers), ["a"], "addresses changed since");
                version
            }
            other => panic!("not a state: {other:?}"),
        };
        // Once A has that version, the addresses are not sent again, whether B answers
        // or calls (a caller's state carries none).
        let addresses_of = |message: Message| match message {
            Message::State {
                full,
                version,
                peers,
                ..
            } => (full, version, hostnames(&peers)),
            other => panic!("not a state: {other:?}"),
        };
        let incarnation = b.incarnation();
        let (full, version, peers) =
            addresses_of(b.state_for("", (incarnation, next_version), true));
        assert!(!full && peers.is_empty(), "A has them");
        assert_eq!(version, next_version, "nothing changed");
        let (_, _, peers) = addresses_of(b.state_for("", (incarnation, next_version), false));
        assert!(peers.is_empty());
        let (_, _, peers) = addresses_of(b.state_for("", (incarnation, next_version), true));
        assert!(peers.is_empty(), "still known: A applied every state since");
        // A peer that lost track (unknown version) gets everything again, addresses with
        // it when it is answered; a caller's state carries none, so the next answer does.
        let (full, _, peers) = addresses_of(b.state_for("", (0, 0), true));
        assert!(full && peers == ["a"]);
        let (full, version, peers) = addresses_of(b.state_for("", (0, 0), false));
        assert!(full && peers.is_empty());
        let (full, _, peers) = addresses_of(b.state_for("", (incarnation, version), true));
        assert!(
            !full && peers == ["a"],
            "A never had them from that full state"
        );
    }

    #[tokio::test]
    async fn a_node_with_another_key_is_refused() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let a = node("a", "mesh-test-key-0123456789", vec![]);
        let b = node("b", "another-cluster-key-9876", vec![]);
        let target = PeerTarget {
            key: b.local_addr().unwrap().to_string(),
            address: b.local_addr().unwrap(),
            identity: ClusterIdentity::derive("mesh-test-key-0123456789").unwrap(),
        };
        let error = a.connect(&target).await.unwrap_err();
        assert!(error.is_unauthorized(), "{error}");
        assert_eq!(error.fault(), Fault::Peer);
    }
}
