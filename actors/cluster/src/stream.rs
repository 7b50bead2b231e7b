//! A stream actor: owns one stream's lifecycle on this node.
//!
//! The actor is the control plane: it starts the stream's media (supplied by the node
//! through [`StreamMedia`], since IO lives outside this crate), and turns a source failure
//! into an actor failure, so the `streams` supervisor restarts it with backoff. The bytes
//! never pass through the actor.

use std::sync::Arc;

use ractor::ActorProcessingErr;
use tokio::task::JoinHandle;

use crate::tree::StreamPlan;
use flotilla_otp::supervisor::BoxFuture;
use flotilla_otp::worker::{Handle, Worker};

/// How a stream's ingest ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEnd {
    /// Every input failed: the stream fails, and its supervisor restarts it (or not,
    /// by its restart policy).
    Failed(String),
    /// The stream has nothing more to do here (a relay without viewers): its actor
    /// stops normally.
    Finished(String),
}

/// The media side of streams, implemented by the node.
pub trait StreamMedia: Send + Sync + 'static {
    /// Runs the stream's ingest until every input has failed or it finished, and says
    /// which. Dropping the future stops the ingest.
    fn run(&self, stream: StreamPlan) -> BoxFuture<StreamEnd>;

    /// The stream left the node (stopped normally): release its shared state. `stream`
    /// is the plan it ran (an ephemeral stream releases its own state, and another
    /// stream of the same name may hold the name by then).
    fn remove(&self, stream: &StreamPlan);

    /// Bytes of media the stream holds for its viewers (segment window, current GOP).
    fn held_bytes(&self, _name: &str) -> u64 {
        0
    }
}

/// Media for nodes and tests without a media plane: sources never fail, nothing flows.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoMedia;

impl StreamMedia for NoMedia {
    fn run(&self, _stream: StreamPlan) -> BoxFuture<StreamEnd> {
        Box::pin(std::future::pending())
    }
    fn remove(&self, _stream: &StreamPlan) {}
}

/// The stream behaviour.
#[derive(Clone)]
pub struct StreamActor {
    /// The node's media plane.
    pub media: Arc<dyn StreamMedia>,
}

/// Messages to a stream.
#[derive(Debug)]
pub enum StreamMsg {
    /// The ingest ended (see [`StreamEnd`]).
    Ended(StreamEnd),
}

/// What a stream actor holds.
pub struct StreamState {
    plan: StreamPlan,
    ingest: JoinHandle<()>,
}

impl Worker for StreamActor {
    type Msg = StreamMsg;
    type State = StreamState;
    type Args = StreamPlan;

    fn kind(&self) -> &'static str {
        "stream"
    }

    async fn init(
        &self,
        me: &Handle<StreamMsg>,
        plan: StreamPlan,
    ) -> Result<StreamState, ActorProcessingErr> {
        let media = self.media.clone();
        let reporter = me.clone();
        let ingest = me.runtime().spawn("stream-ingest", {
            let plan = plan.clone();
            async move {
                let ended = media.run(plan).await;
                let _ = reporter.send(StreamMsg::Ended(ended));
            }
        });
        Ok(StreamState { plan, ingest })
    }

    async fn handle(
        &self,
        me: &Handle<StreamMsg>,
        message: StreamMsg,
        _state: &mut StreamState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            StreamMsg::Ended(StreamEnd::Failed(reason)) => {
                Err(format!("source failed: {reason}").into())
            }
            StreamMsg::Ended(StreamEnd::Finished(reason)) => {
                tracing::info!(%reason, "stream finished");
                me.stop(None);
                Ok(())
            }
        }
    }

    async fn terminate(&self, state: &mut StreamState) {
        state.ingest.abort();
        self.media.remove(&state.plan);
    }

    fn summary(&self, state: &StreamState) -> String {
        let plan = &state.plan;
        let kind = if plan.ondemand { "ondemand" } else { "static" };
        let ingest = if plan.cluster_ingest {
            ", cluster_ingest"
        } else {
            ""
        };
        format!("{kind}, {} input(s){ingest}", plan.inputs.len())
    }

    fn memory_probe(&self, state: &StreamState) -> Option<flotilla_otp::registry::MemoryProbe> {
        let media = self.media.clone();
        let name = state.plan.name.clone();
        Some(Arc::new(move || media.held_bytes(&name)))
    }
}

impl Drop for StreamState {
    fn drop(&mut self) {
        // A failed or killed incarnation does not run `terminate`: its ingest must still stop.
        self.ingest.abort();
    }
}
