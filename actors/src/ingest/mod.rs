//! The cluster_ingest coordinator: decides which cluster_ingest streams this node
//! captures. The placement rule is [`placement`] (pure); the coordinator that applies it
//! on every view change lands with the cluster_ingest issue; today it counts the streams.

pub mod placement;

use ractor::ActorProcessingErr;

use crate::tree::NodePlan;
use crate::worker::{Handle, Worker};

/// The coordinator behaviour.
#[derive(Debug, Clone, Copy)]
pub struct IngestCoordinator;

/// Messages to the coordinator (none yet).
#[derive(Debug)]
pub enum IngestMsg {}

/// What the coordinator knows.
#[derive(Debug)]
pub struct IngestState {
    cluster_streams: usize,
    peers: usize,
}

impl Worker for IngestCoordinator {
    type Msg = IngestMsg;
    type State = IngestState;
    type Args = NodePlan;

    fn kind(&self) -> &'static str {
        "ingest_coordinator"
    }

    async fn init(
        &self,
        _me: &Handle<IngestMsg>,
        plan: NodePlan,
    ) -> Result<IngestState, ActorProcessingErr> {
        Ok(IngestState {
            cluster_streams: plan.streams.iter().filter(|s| s.cluster_ingest).count(),
            peers: plan.peers.len(),
        })
    }

    async fn handle(
        &self,
        _me: &Handle<IngestMsg>,
        message: IngestMsg,
        _state: &mut IngestState,
    ) -> Result<(), ActorProcessingErr> {
        match message {}
    }

    fn summary(&self, state: &IngestState) -> String {
        format!(
            "{} cluster_ingest stream(s), {} peer(s); placement not built yet",
            state.cluster_streams, state.peers
        )
    }
}
