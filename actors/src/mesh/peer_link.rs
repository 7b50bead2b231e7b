//! A peer link: this node's view of one other node.
//!
//! The QUIC transport and the state exchange land with the mesh issue; until then the
//! link holds the peer's address and reports itself as not connected.

use ractor::ActorProcessingErr;

use crate::worker::{Handle, Worker};

/// The peer link behaviour.
#[derive(Debug, Clone, Copy)]
pub struct PeerLink;

/// What a peer link knows.
#[derive(Debug)]
pub struct PeerLinkState {
    address: String,
}

/// Messages to a peer link (none yet: the exchange protocol lands with the mesh).
#[derive(Debug)]
pub enum PeerLinkMsg {}

impl Worker for PeerLink {
    type Msg = PeerLinkMsg;
    type State = PeerLinkState;
    type Args = String;

    fn kind(&self) -> &'static str {
        "peer_link"
    }

    async fn init(
        &self,
        _me: &Handle<PeerLinkMsg>,
        address: String,
    ) -> Result<PeerLinkState, ActorProcessingErr> {
        Ok(PeerLinkState { address })
    }

    async fn handle(
        &self,
        _me: &Handle<PeerLinkMsg>,
        message: PeerLinkMsg,
        _state: &mut PeerLinkState,
    ) -> Result<(), ActorProcessingErr> {
        match message {}
    }

    fn summary(&self, state: &PeerLinkState) -> String {
        format!("{}: not connected (no transport yet)", state.address)
    }
}
