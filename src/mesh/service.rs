//! The node's side of the mesh: one QUIC endpoint (server and client on one UDP socket),
//! the answering half of exchanges, the dialing half used by peer link actors, and the
//! cluster view both halves feed.
//!
//! State deltas: each side remembers, per peer, the last stream list it sent and under
//! which version. A `Hello` says which version of the other side's state the sender has;
//! when that matches what was last sent, only the difference goes out, otherwise the
//! whole list. Versions grow with every change, so a receiver never goes backwards.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use flotilla_actors::mesh::view::{ClusterView, PeerLoad, PeerUpdate};
use flotilla_actors::rt::Runtime;

use super::auth::{self, ClusterIdentity, MESH_ALPN, SHELL_ALPN};
use super::exchange::{self, ExchangeError};
use super::net::MeshNet;
use super::wire::{Message, NodeAddress, NodeLoad, StreamEntry};

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

/// The last state sent to one peer: (version, streams).
type Sent = (u64, Streams);

struct Inner {
    endpoint: quinn::Endpoint,
    /// Where the endpoint came from; resolves peers too.
    net: Arc<dyn MeshNet>,
    runtime: Runtime,
    me: NodeAddress,
    incarnation: u64,
    version: AtomicU64,
    last_state: Mutex<Option<(NodeLoad, Streams)>>,
    local: LocalState,
    view: Arc<RwLock<ClusterView>>,
    sent: Mutex<HashMap<String, Sent>>,
    clients: HashMap<Vec<u8>, quinn::ClientConfig>,
    /// Dials other nodes' shells (`@NODE`) with this node's cluster key.
    shell_client: quinn::ClientConfig,
    shell: std::sync::OnceLock<Arc<dyn ShellAcceptor>>,
    identity: ClusterIdentity,
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

/// Why the mesh could not start.
#[derive(Debug, thiserror::Error)]
pub enum MeshError {
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error("cannot open the mesh endpoint on UDP {0}: {1}")]
    Bind(SocketAddr, std::io::Error),
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
            .ok_or_else(|| auth::AuthError::Tls("no cluster identity".into()))?;
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
        // The incarnation is this node's start, which its peers place in their clocks.
        let incarnation = runtime.wall_clock_ms();
        view.write()
            .unwrap_or_else(|p| p.into_inner())
            .set_own_start(incarnation);
        let service = MeshService {
            inner: Arc::new(Inner {
                endpoint,
                net,
                incarnation,
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

    /// This node's incarnation (its start time in Unix ms).
    pub fn incarnation(&self) -> u64 {
        self.inner.incarnation
    }

    async fn accept_loop(self) {
        while let Some(incoming) = self.inner.endpoint.accept().await {
            let service = self.clone();
            self.inner.runtime.spawn("mesh-connection", async move {
                let connection = match tokio::time::timeout(auth::HANDSHAKE_TIMEOUT, incoming).await {
                    Ok(Ok(connection)) => connection,
                    Ok(Err(error)) => {
                        tracing::warn!(%error, "mesh connection refused (another cluster key, or not a flotilla node)");
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
                    tracing::warn!(%remote, "mesh connection refused: no cluster certificate");
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
    fn current_state(&self) -> (u64, NodeLoad, Streams) {
        let (load, streams) = (self.inner.local)();
        debug_assert!(
            streams.windows(2).all(|w| w[0].name < w[1].name),
            "the local state gives streams in name order, names unique"
        );
        let mut last = self
            .inner
            .last_state
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // The same list as before is the same allocation (mesh::advert); an equal list
        // in a new one is taken as unchanged too, and the old allocation kept, so every
        // peer's delta is known empty without comparing lists.
        let unchanged = |s: &Streams| Arc::ptr_eq(s, &streams) || **s == *streams;
        let shared = match last.as_ref() {
            Some((l, s)) if *l == load && unchanged(s) => s.clone(),
            previous => {
                // The load alone moves at most exchanges (uptime, bitrates).
                self.inner.version.fetch_add(1, Ordering::Relaxed);
                let shared = match previous {
                    Some((_, s)) if unchanged(s) => s.clone(),
                    _ => streams,
                };
                *last = Some((load.clone(), shared.clone()));
                shared
            }
        };
        (self.inner.version.load(Ordering::Relaxed), load, shared)
    }

    fn hello(&self, peer_key: &str) -> Message {
        let now_ms = self.inner.runtime.wall_clock_ms();
        let view = self.inner.view.read().unwrap_or_else(|p| p.into_inner());
        let (known_incarnation, known_version) = view.known(peer_key);
        Message::Hello {
            node: self.inner.me.clone(),
            incarnation: self.inner.incarnation,
            known_incarnation,
            known_version,
            uptime_ms: now_ms.saturating_sub(self.inner.incarnation),
            returns_ms: view.own().returns_ms().to_vec(),
            your_restarts_ms: view
                .peer(peer_key, now_ms)
                .map(|(peer, _)| peer.history.restarts_seen().to_vec())
                .unwrap_or_default(),
        }
    }

    /// Our state for `peer_key`, as a delta when the peer has what we last sent it.
    fn state_for(&self, peer_key: &str, peer_has: (u64, u64)) -> Message {
        let (version, load, current) = self.current_state();
        let mut sent = self.inner.sent.lock().unwrap_or_else(|p| p.into_inner());
        let delta_base = sent
            .get(peer_key)
            .filter(|(sent_version, _)| peer_has == (self.inner.incarnation, *sent_version));
        let (full, upserts, removals) = match delta_base {
            Some((_, before)) if Arc::ptr_eq(before, &current) => (false, Vec::new(), Vec::new()),
            Some((_, before)) => {
                let (upserts, removals) = delta(before, &current);
                (false, upserts, removals)
            }
            None => (true, current.to_vec(), Vec::new()),
        };
        match sent.get_mut(peer_key) {
            Some(entry) => *entry = (version, current),
            None => {
                sent.insert(peer_key.to_string(), (version, current));
            }
        }
        drop(sent);
        let peers = self.alive_addresses();
        Message::State {
            incarnation: self.inner.incarnation,
            version,
            load,
            full,
            upserts,
            removals,
            peers,
        }
    }

    /// Alive peers' addresses, so that others learn them (peers of peers).
    fn alive_addresses(&self) -> Vec<NodeAddress> {
        let now_ms = self.inner.runtime.wall_clock_ms();
        let view = self.inner.view.read().unwrap_or_else(|p| p.into_inner());
        view.peers(now_ms)
            .filter(|(_, state)| *state == flotilla_actors::mesh::view::PeerState::Alive)
            .map(|(peer, _)| NodeAddress {
                hostname: peer.hostname.clone(),
                mesh: peer.name.clone(),
                public_url: peer.public_url.clone(),
                rtmp_url: peer.rtmp_url.clone(),
            })
            .take(super::wire::MAX_PEERS)
            .collect()
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
            hostname: node.hostname.clone(),
            public_url: node.public_url.clone(),
            rtmp_url: node.rtmp_url.clone(),
            incarnation,
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
        let key = node.mesh.clone();
        {
            let mut view = self.inner.view.write().unwrap_or_else(|p| p.into_inner());
            if !view.knows(&key) {
                tracing::info!(peer = %key, hostname = %node.hostname, "peer learnt from its call");
                view.add_peer(
                    &key,
                    &node.public_url,
                    crate::defaults::FETCH_TIMEOUT_MS,
                    crate::defaults::STALE_TIMEOUT_MS,
                );
            }
        }
        let peer_has = (*known_incarnation, *known_version);
        exchange::send(&mut send, &self.hello(&key)).await?;
        exchange::send(&mut send, &self.state_for(&key, peer_has)).await?;
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
        let (mut send, mut receive) = connection
            .open_bi()
            .await
            .map_err(|e| ExchangeError::Transport(e.to_string()))?;
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
        let peer_has = (*known_incarnation, *known_version);
        exchange::send(&mut send, &self.state_for(&target.key, peer_has)).await?;
        let _ = send.finish();
        Ok(self.absorb(&target.key, hello, state, false))
    }

    /// Connects to `target` with its identity.
    pub async fn connect(&self, target: &PeerTarget) -> Result<quinn::Connection, String> {
        let config = self
            .inner
            .clients
            .get(target.identity.certificate.as_ref())
            .cloned()
            .ok_or_else(|| "no client configuration for this peer's key".to_string())?;
        let connecting = self
            .inner
            .endpoint
            .connect_with(config, target.address, &target.identity.server_name)
            .map_err(|e| e.to_string())?;
        tokio::time::timeout(auth::HANDSHAKE_TIMEOUT, connecting)
            .await
            .map_err(|_| format!("no handshake within {:?}", auth::HANDSHAKE_TIMEOUT))?
            .map_err(|e| e.to_string())
    }

    /// Serves shell connections with `shell` from now on.
    pub fn set_shell(&self, shell: Arc<dyn ShellAcceptor>) {
        let _ = self.inner.shell.set(shell);
    }

    /// Connects to the shell of the node at `address` (for `@NODE`).
    pub async fn connect_shell(&self, address: SocketAddr) -> Result<quinn::Connection, String> {
        let connecting = self
            .inner
            .endpoint
            .connect_with(
                self.inner.shell_client.clone(),
                address,
                &self.inner.identity.server_name,
            )
            .map_err(|e| e.to_string())?;
        tokio::time::timeout(auth::HANDSHAKE_TIMEOUT, connecting)
            .await
            .map_err(|_| format!("no handshake within {:?}", auth::HANDSHAKE_TIMEOUT))?
            .map_err(|e| e.to_string())
    }

    /// Stops accepting and closes every connection.
    pub fn close(&self) {
        self.inner.endpoint.close(0u32.into(), b"node stopping");
    }
}

/// Whether a connection error means the peer holds another cluster key.
pub fn is_unauthorized(error: &str) -> bool {
    let error = error.to_ascii_lowercase();
    [
        "certificate",
        "signature",
        "handshake failure",
        "unknown ca",
        "issuer",
        "alert",
    ]
    .iter()
    .any(|marker| error.contains(marker))
}

/// What changed from `before` to `after` (both sorted by name, names unique): the
/// entries new or different in `after`, and the names gone from it, each in name order.
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
        let runtime = Runtime::production();
        let me = NodeAddress {
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
            ingest: flotilla_actors::mesh::view::IngestRole::None,
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
        // B's next state for A, with nothing changed, is an empty delta (A is keyed by
        // its advertised mesh address, empty in this test).
        let a_has_of_b = a.view().read().unwrap().known(&b_key);
        match b.state_for("", a_has_of_b) {
            Message::State {
                full,
                upserts,
                removals,
                ..
            } => {
                assert!(!full, "A has B's last state: a delta");
                assert!(upserts.is_empty() && removals.is_empty(), "nothing changed");
            }
            other => panic!("not a state: {other:?}"),
        }
        // A peer that lost track (unknown version) gets everything again.
        match b.state_for("", (0, 0)) {
            Message::State { full, upserts, .. } => assert!(full && upserts.len() == 2),
            other => panic!("not a state: {other:?}"),
        }
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
        assert!(is_unauthorized(&error), "{error}");
    }
}
