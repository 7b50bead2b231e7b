//! Streams a connection starts for itself under `node/streams`: a template's stream for
//! its publisher, and a relay of a peer's stream for this node's RTMP players. Both are
//! temporary children: their state goes with their actor, however it ends.

use std::sync::Arc;
use std::time::Duration;

use flotilla_cluster::stream::StreamActor;
use flotilla_cluster::tree::{InputPlan, StreamPlan};
use flotilla_otp::registry::ActorPath;
use flotilla_otp::supervisor::{Restart, SupervisorError, SupervisorMsg, supervisor_at};
use flotilla_otp::worker::worker_child;

use super::server::{Connection, RtmpContext};
use crate::error::{Classified, Fault};
use crate::media::live::LiveStream;

/// Why a stream a connection asked for did not start. This node's own state is at fault
/// (its `streams` supervisor), and a later attempt may succeed once it restarts.
#[derive(Debug, thiserror::Error)]
pub enum StreamStartError {
    /// `node/streams` is not running (restarting).
    #[error("the streams supervisor is not running")]
    NoSupervisor,
    /// The supervisor refused the child (a duplicate, too many, a failed start).
    #[error("{0}")]
    Refused(SupervisorError),
    /// The supervisor did not answer the call.
    #[error("streams supervisor unreachable: {0}")]
    Unreachable(ractor::RactorErr<()>),
}

impl Classified for StreamStartError {
    fn fault(&self) -> Fault {
        Fault::Local
    }
    fn retryable(&self) -> bool {
        match self {
            StreamStartError::Refused(error) => error.retryable(),
            StreamStartError::NoSupervisor | StreamStartError::Unreachable(_) => true,
        }
    }
}

impl RtmpContext {
    /// Starts a stream that is not in the config (a template's published stream, a
    /// relay) as a temporary child of `node/streams`; `Err` says why it did not start.
    pub async fn start_ephemeral_stream(
        &self,
        name: &str,
        input: &str,
        packaging: crate::media::live::Packaging,
        relay: bool,
    ) -> Result<(), StreamStartError> {
        let supervisor = supervisor_at(&self.node, &ActorPath::root().child("streams"))
            .ok_or(StreamStartError::NoSupervisor)?;
        let plan = StreamPlan {
            name: name.to_string(),
            ondemand: false,
            inputs: vec![InputPlan {
                url: input.to_string(),
                source_timeout_ms: None,
                priority: None,
                options: Vec::new(),
            }],
            cluster_ingest: false,
            capture_at: None,
            source_timeout_ms: crate::defaults::SOURCE_TIMEOUT_MS,
            segment_duration_ms: packaging.segment_duration_ms,
            segment_count: packaging.segment_count,
            part_duration_ms: packaging.part_duration_ms,
            clients_timeout_ms: None,
            retry_limit: None,
            ephemeral: true,
            relay,
        };
        let actor = StreamActor {
            media: self.media.clone(),
        };
        let spec = worker_child(name, actor, move || plan.clone()).restart(Restart::Temporary);
        match ractor::call!(supervisor, SupervisorMsg::StartChild, spec) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(StreamStartError::Refused(error)),
            Err(error) => Err(StreamStartError::Unreachable(error.map(|_| ()))),
        }
    }

    /// Stops a template stream its publisher started.
    pub async fn stop_template_stream(&self, name: &str) {
        let Some(supervisor) = supervisor_at(&self.node, &ActorPath::root().child("streams"))
        else {
            return;
        };
        let _ = ractor::call!(supervisor, SupervisorMsg::TerminateChild, name.to_string());
    }
}

impl Connection {
    /// RTMP players cannot follow an HTTP redirect, so a stream that only a peer has is
    /// relayed over the mesh (`crate::relay`), shared with the node's other viewers of
    /// it. `None` when no alive peer has it, or the relay produced no media in time.
    pub(super) async fn relay_from_peer(&self, name: &str) -> Option<Arc<LiveStream>> {
        let relays = self.context.relays.as_ref()?;
        relays
            .local_copy(
                name,
                Duration::from_millis(crate::defaults::STREAM_START_WAIT_MS),
            )
            .await
    }
}
