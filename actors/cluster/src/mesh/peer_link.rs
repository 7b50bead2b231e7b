//! A peer link: this node's exchanges with one other node, every `fetch_timeout`.
//!
//! The link is control plane only: the exchange itself (QUIC, encoding) is done by the
//! node through [`PeerIo`], which also records the outcome in the cluster view. A failed
//! exchange is not an actor failure — an unreachable peer is a state of the cluster, shown
//! as stale in the view — so the link keeps its rhythm and retries at the next tick.

use std::sync::Arc;
use std::time::Duration;

use ractor::ActorProcessingErr;

use flotilla_otp::supervisor::BoxFuture;
use flotilla_otp::worker::{Handle, Worker};

/// How a link's tick went, when it went well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exchanged {
    /// This node called the peer.
    Called,
    /// The peer called this node this round already (one exchange informs both): no
    /// call (see `PeerRecord::called_this_round`).
    PeerCalled,
}

/// Why an exchange failed: the node's own typed error (which says who is at fault),
/// opaque here because this crate knows nothing of QUIC or TLS. The link only shows it.
pub type ExchangeFailure = Box<dyn std::error::Error + Send + Sync>;

/// The node's side of peer links.
pub trait PeerIo: Send + Sync + 'static {
    /// One exchange with `peer` (connecting first if needed), unless the peer called
    /// this round. The outcome goes into the cluster view; the error is shown in the
    /// link's summary.
    fn exchange(&self, peer: &str) -> BoxFuture<Result<Exchanged, ExchangeFailure>>;
    /// How often to exchange with `peer` (its `fetch_timeout`).
    fn fetch_interval(&self, peer: &str) -> Duration;
    /// Bytes this node holds about `peer` (its copy of the peer's state).
    fn held_bytes(&self, _peer: &str) -> u64 {
        0
    }
}

/// The peer link behaviour.
#[derive(Clone)]
pub struct PeerLink {
    /// The node's mesh.
    pub io: Arc<dyn PeerIo>,
}

/// What a peer link knows.
#[derive(Debug)]
pub struct PeerLinkState {
    address: String,
    /// Exchanges this node called.
    exchanges: u64,
    /// Ticks where the peer had called already.
    answered: u64,
    failures_in_a_row: u64,
    last_error: Option<String>,
}

/// Messages to a peer link.
#[derive(Debug)]
pub enum PeerLinkMsg {
    /// Time for an exchange.
    Tick,
    /// Time to start the exchange rhythm (see `init`).
    StartRhythm,
}

impl Worker for PeerLink {
    type Msg = PeerLinkMsg;
    type State = PeerLinkState;
    type Args = String;

    fn kind(&self) -> &'static str {
        "peer_link"
    }

    async fn init(
        &self,
        me: &Handle<PeerLinkMsg>,
        address: String,
    ) -> Result<PeerLinkState, ActorProcessingErr> {
        // The first exchange right away (a starting node joins at once), then one per
        // fetch_timeout from a random phase: links of nodes started together would
        // otherwise tick together, and a pair whose ticks fall within one exchange of
        // each other both call every round (see `PeerRecord::called_this_round`).
        let _ = me.send(PeerLinkMsg::Tick);
        let interval = self.io.fetch_interval(&address);
        let interval_ms = usize::try_from(interval.as_millis()).unwrap_or(usize::MAX);
        let phase_ms = me.runtime().random_index(interval_ms.max(1)) as u64;
        me.send_after(Duration::from_millis(phase_ms), || PeerLinkMsg::StartRhythm);
        Ok(PeerLinkState {
            address,
            exchanges: 0,
            answered: 0,
            failures_in_a_row: 0,
            last_error: None,
        })
    }

    async fn handle(
        &self,
        me: &Handle<PeerLinkMsg>,
        message: PeerLinkMsg,
        state: &mut PeerLinkState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            PeerLinkMsg::StartRhythm => {
                let _ = me.send(PeerLinkMsg::Tick);
                me.send_interval(self.io.fetch_interval(&state.address), || PeerLinkMsg::Tick);
            }
            PeerLinkMsg::Tick => match self.io.exchange(&state.address).await {
                Ok(how) => {
                    match how {
                        Exchanged::Called => state.exchanges += 1,
                        Exchanged::PeerCalled => state.answered += 1,
                    }
                    state.failures_in_a_row = 0;
                    state.last_error = None;
                }
                Err(error) => {
                    state.failures_in_a_row += 1;
                    state.last_error = Some(error.to_string());
                }
            },
        }
        Ok(())
    }

    fn summary(&self, state: &PeerLinkState) -> String {
        match &state.last_error {
            None => format!(
                "{}: {} exchanges called, {} rounds called by the peer",
                state.address, state.exchanges, state.answered
            ),
            Some(error) => format!(
                "{}: {} failed in a row: {error}",
                state.address, state.failures_in_a_row
            ),
        }
    }

    fn memory_probe(&self, state: &PeerLinkState) -> Option<flotilla_otp::registry::MemoryProbe> {
        // Weak: the mesh io holds the node's context, whose registry holds this probe; a
        // strong reference would be a cycle that outlives the node (a restarted node in
        // the simulator found its mesh port still taken).
        let io = Arc::downgrade(&self.io);
        let peer = state.address.clone();
        Some(Arc::new(move || {
            io.upgrade().map_or(0, |io| io.held_bytes(&peer))
        }))
    }
}

/// Peer io for nodes without a mesh (no cluster key): every exchange fails, saying why.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoMesh;

/// Why a node without a mesh exchanges nothing: its config has no `cluster_key`.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("no cluster_key: the mesh is off")]
pub struct MeshOff;

impl PeerIo for NoMesh {
    fn exchange(&self, _peer: &str) -> BoxFuture<Result<Exchanged, ExchangeFailure>> {
        Box::pin(async { Err(MeshOff.into()) })
    }
    fn fetch_interval(&self, _peer: &str) -> Duration {
        Duration::from_secs(3)
    }
}
