//! The node's side of the mesh: one QUIC endpoint (server and client on one UDP socket),
//! the answering half of exchanges, the dialing half used by peer link actors, and the
//! cluster view both halves feed.
//!
//! The protocol itself (hellos, versioned states, deltas, how a received pair updates
//! the view) is in `state`, apart from any connection; this module moves it over QUIC:
//! it accepts connections (the mesh and the shell on one port, refusing anyone without
//! the cluster key), answers and makes exchanges, and raises this node's incarnation
//! when a peer knows a later one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use flotilla_cluster::mesh::view::ClusterView;
use flotilla_otp::rt::Runtime;

use super::auth::{self, ClusterIdentity, MESH_ALPN, MeshKeys, SHELL_ALPN};
use super::connect::ConnectError;
use super::exchange::{self, ExchangeError};
use super::net::MeshNet;
use super::state::{self, Introduction, LocalState, Outbox};
use super::wire::{Message, NodeAddress};
use crate::error::{Classified, Fault};
use crate::log_limit::LimitedWarning;

/// Serves shell connections (the shell module implements it; set once the node's API
/// exists).
pub trait ShellAcceptor: Send + Sync + 'static {
    /// Serves one authenticated shell connection until it closes.
    fn serve(&self, connection: quinn::Connection) -> futures_util::future::BoxFuture<'static, ()>;
}

/// Serves relay subscriptions (the relay module implements it; set once the node's media
/// plane exists).
pub trait RelayServer: Send + Sync + 'static {
    /// Serves one subscription to `stream` from the peer at `peer` on `send` until it
    /// ends.
    fn serve(
        &self,
        peer: SocketAddr,
        stream: String,
        send: quinn::SendStream,
    ) -> futures_util::future::BoxFuture<'static, ()>;
}

/// How to reach a configured or learnt peer.
#[derive(Debug, Clone)]
pub struct PeerTarget {
    /// The view's key: `host:port` of its mesh endpoint.
    pub key: String,
    pub address: SocketAddr,
    pub identity: ClusterIdentity,
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
    /// The versioned local state and what each peer was last sent.
    outbox: Mutex<Outbox>,
    local: LocalState,
    view: Arc<RwLock<ClusterView>>,
    clients: HashMap<Vec<u8>, quinn::ClientConfig>,
    /// Dials other nodes' shells (`@NODE`) with this node's cluster key.
    shell_client: quinn::ClientConfig,
    shell: std::sync::OnceLock<Arc<dyn ShellAcceptor>>,
    relay: std::sync::OnceLock<Arc<dyn RelayServer>>,
    identity: ClusterIdentity,
    /// Where this node dials peers whose dial address is not their key (a configured
    /// `private_payload_url` or `api_url`), by view key: what a catalog tells an edge.
    dial: RwLock<HashMap<String, String>>,
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

impl MeshService {
    /// Binds the endpoint on `bind` (UDP), answering to the trusted identities of `keys`
    /// (the first is this node's own cluster key) and dialing with all of them.
    pub fn start(
        runtime: Runtime,
        net: Arc<dyn MeshNet>,
        bind: SocketAddr,
        me: NodeAddress,
        keys: MeshKeys,
        local: LocalState,
        view: Arc<RwLock<ClusterView>>,
    ) -> Result<MeshService, MeshError> {
        let MeshKeys {
            trusted: identities,
            dial_only,
        } = keys;
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
        for identity in identities.iter().chain(&dial_only) {
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
                outbox: Mutex::default(),
                local,
                view,
                clients,
                shell_client,
                shell: std::sync::OnceLock::new(),
                relay: std::sync::OnceLock::new(),
                identity,
                dial: RwLock::default(),
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
                // Each stream on its own task: a relay subscription lasts as long as its
                // stream, and exchanges must not wait for it (quinn bounds how many a
                // peer opens: `auth::MAX_CONCURRENT_STREAMS`).
                while let Ok((send, receive)) = connection.accept_bi().await {
                    let service = service.clone();
                    service.inner.runtime.clone().spawn("mesh-stream", async move {
                        if let Err(error) = service.answer(send, receive, remote).await {
                            tracing::debug!(%remote, %error, "mesh exchange failed");
                        }
                    });
                }
            });
        }
    }

    fn hello(&self, peer_key: &str) -> Message {
        let us = Introduction {
            me: self.inner.me.clone(),
            incarnation: self.incarnation(),
            started_ms: self.inner.started_ms,
        };
        let now_ms = self.inner.runtime.wall_clock_ms();
        let view = self.inner.view.read().unwrap_or_else(|p| p.into_inner());
        state::hello(&us, &view, peer_key, now_ms)
    }

    /// Our state for `peer_key` (see [`Outbox::state_for`]).
    fn state_for(&self, peer_key: &str, peer_has: (u64, u64), with_addresses: bool) -> Message {
        let local = (self.inner.local)();
        let now_ms = self.inner.runtime.wall_clock_ms();
        let view = self.inner.view.read().unwrap_or_else(|p| p.into_inner());
        self.inner
            .outbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .state_for(
                peer_key,
                peer_has,
                with_addresses,
                self.incarnation(),
                local,
                &view,
                now_ms,
            )
    }

    /// Applies a received hello + state to the view; returns the addresses it taught us.
    fn absorb(
        &self,
        key: &str,
        hello: Message,
        state: Message,
        called_by_peer: bool,
    ) -> Vec<NodeAddress> {
        let Some((update, peers)) = state::update_from(hello, state, called_by_peer) else {
            return Vec::new();
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
        remote: SocketAddr,
    ) -> Result<(), ExchangeError> {
        let hello = exchange::receive(&mut receive).await?;
        match hello {
            Message::Subscribe { stream } => {
                match self.inner.relay.get() {
                    Some(relay) => relay.serve(remote, stream, send).await,
                    None => drop(send),
                }
                drop(receive);
                return Ok(());
            }
            Message::ListStreams => {
                exchange::send(&mut send, &self.catalog()).await?;
                let _ = send.finish();
                return Ok(());
            }
            _ => {}
        }
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

    /// The catalog of this node's cluster, for an edge that restreams it
    /// (`mesh::catalog`).
    fn catalog(&self) -> Message {
        let (_, advertised) = (self.inner.local)();
        let me = super::wire::CatalogNode {
            id: self.inner.me.id.clone(),
            mesh: self.inner.me.mesh.clone(),
        };
        let now_ms = self.inner.runtime.wall_clock_ms();
        let view = self.inner.view.read().unwrap_or_else(|p| p.into_inner());
        let dial = self.inner.dial.read().unwrap_or_else(|p| p.into_inner());
        super::catalog::catalog(me, &advertised.streams, &view, now_ms, |key| {
            dial.get(key).cloned().unwrap_or_else(|| key.to_string())
        })
    }

    /// Records that peer `key` is dialed at `dial` (its private address).
    pub fn set_dial(&self, key: &str, dial: &str) {
        if key != dial {
            self.inner
                .dial
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.to_string(), dial.to_string());
        }
    }

    /// Asks the node at the other end of `connection` for its cluster's catalog.
    pub async fn list_streams(
        &self,
        connection: &quinn::Connection,
    ) -> Result<
        (
            Vec<super::wire::CatalogNode>,
            Vec<super::wire::CatalogStream>,
        ),
        ExchangeError,
    > {
        let (mut send, mut receive) = connection.open_bi().await.map_err(ExchangeError::Open)?;
        exchange::send(&mut send, &Message::ListStreams).await?;
        let _ = send.finish();
        match exchange::receive(&mut receive).await? {
            Message::Catalog { nodes, streams } => Ok((nodes, streams)),
            _ => Err(ExchangeError::Unexpected("another message", "catalog")),
        }
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

    /// Serves relay subscriptions with `relay` from now on.
    pub fn set_relay(&self, relay: Arc<dyn RelayServer>) {
        let _ = self.inner.relay.set(relay);
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

/// A mesh service on 127.0.0.1 for tests: node `name` with cluster key `key`,
/// advertising `streams`.
#[cfg(test)]
pub(crate) fn start_for_test(
    runtime: Runtime,
    name: &str,
    key: &str,
    streams: Vec<super::wire::StreamEntry>,
) -> MeshService {
    let keys = MeshKeys::one(ClusterIdentity::derive(key).unwrap());
    start_for_test_with_keys(runtime, name, keys, streams)
}

/// [`start_for_test`] with several keys.
#[cfg(test)]
pub(crate) fn start_for_test_with_keys(
    runtime: Runtime,
    name: &str,
    keys: MeshKeys,
    streams: Vec<super::wire::StreamEntry>,
) -> MeshService {
    let me = NodeAddress {
        id: format!("{name}:80"),
        hostname: name.into(),
        mesh: String::new(),
        public_url: format!("http://{name}"),
        rtmp_url: String::new(),
    };
    let mut streams = streams;
    streams.sort_by(|a, b| a.name.cmp(&b.name));
    let streams = super::state::Advertised {
        generation: 1,
        streams: Arc::new(streams),
    };
    let local: LocalState = Arc::new(move || (super::wire::NodeLoad::default(), streams.clone()));
    MeshService::start(
        runtime,
        Arc::new(crate::mesh::net::SystemNet),
        "127.0.0.1:0".parse().unwrap(),
        me,
        keys,
        local,
        Arc::default(),
    )
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mesh::wire::StreamEntry;

    fn node(name: &str, key: &str, streams: Vec<StreamEntry>) -> MeshService {
        node_on(Runtime::production(), name, key, streams)
    }

    /// A node whose wall clock reads `wall_ms` at its start.
    fn node_at(wall_ms: u64, name: &str, key: &str, streams: Vec<StreamEntry>) -> MeshService {
        node_on(Runtime::deterministic(7, wall_ms), name, key, streams)
    }

    fn node_on(runtime: Runtime, name: &str, key: &str, streams: Vec<StreamEntry>) -> MeshService {
        start_for_test(runtime, name, key, streams)
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
            relayed: false,
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
