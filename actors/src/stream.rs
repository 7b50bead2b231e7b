//! A stream actor: owns one stream's lifecycle on this node.
//!
//! The media plane (inputs, segmenting, outputs) lands with its own issue; today the actor
//! holds the stream's plan and is supervised, restarted and inspectable like the real one.

use ractor::ActorProcessingErr;

use crate::tree::StreamPlan;
use crate::worker::{Handle, Worker};

/// The stream behaviour.
#[derive(Debug, Clone, Copy)]
pub struct StreamActor;

/// Messages to a stream (none yet).
#[derive(Debug)]
pub enum StreamMsg {}

impl Worker for StreamActor {
    type Msg = StreamMsg;
    type State = StreamPlan;
    type Args = StreamPlan;

    fn kind(&self) -> &'static str {
        "stream"
    }

    async fn init(
        &self,
        _me: &Handle<StreamMsg>,
        plan: StreamPlan,
    ) -> Result<StreamPlan, ActorProcessingErr> {
        Ok(plan)
    }

    async fn handle(
        &self,
        _me: &Handle<StreamMsg>,
        message: StreamMsg,
        _state: &mut StreamPlan,
    ) -> Result<(), ActorProcessingErr> {
        match message {}
    }

    fn summary(&self, plan: &StreamPlan) -> String {
        let kind = if plan.ondemand { "ondemand" } else { "static" };
        let ingest = if plan.cluster_ingest {
            ", cluster_ingest"
        } else {
            ""
        };
        format!(
            "{kind}, {} input(s){ingest}, media plane not built yet",
            plan.inputs.len()
        )
    }
}
