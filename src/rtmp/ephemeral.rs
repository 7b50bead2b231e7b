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

use super::server::Connection;
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

impl Connection {
    /// Starts a stream that is not in the config (a template's published stream, a
    /// relay) as a temporary child of `node/streams`; `Err` says why it did not start.
    pub(super) async fn start_ephemeral_stream(
        &self,
        name: &str,
        input: &str,
        segment_duration_ms: u64,
        segment_count: usize,
        relay: bool,
    ) -> Result<(), StreamStartError> {
        let supervisor = supervisor_at(&self.context.node, &ActorPath::root().child("streams"))
            .ok_or(StreamStartError::NoSupervisor)?;
        let plan = StreamPlan {
            name: name.to_string(),
            ondemand: false,
            inputs: vec![InputPlan {
                url: input.to_string(),
                source_timeout_ms: None,
                priority: None,
            }],
            cluster_ingest: false,
            capture_at: None,
            source_timeout_ms: crate::defaults::SOURCE_TIMEOUT_MS,
            segment_duration_ms,
            segment_count,
            clients_timeout_ms: None,
            retry_limit: None,
            ephemeral: true,
            relay,
        };
        let actor = StreamActor {
            media: self.context.media.clone(),
        };
        let spec = worker_child(name, actor, move || plan.clone()).restart(Restart::Temporary);
        match ractor::call!(supervisor, SupervisorMsg::StartChild, spec) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(StreamStartError::Refused(error)),
            Err(error) => Err(StreamStartError::Unreachable(error.map(|_| ()))),
        }
    }

    /// RTMP players cannot follow an HTTP redirect, so a stream that only a peer has is
    /// relayed: a temporary local stream pulls the peer's HTTP-MPEG-TS (marked as already
    /// redirected, so it is never sent on) and the player plays it here. `None` when no
    /// alive peer has it, or the relay produced no media in time.
    pub(super) async fn relay_from_peer(&self, name: &str) -> Option<Arc<LiveStream>> {
        let mesh = self.context.mesh.as_ref()?;
        let peer_url = {
            let now_ms = self.context.node.runtime.wall_clock_ms();
            let view = mesh.view().read().unwrap_or_else(|p| p.into_inner());
            let peer = view.locate(name, now_ms).into_iter().next()?;
            let base = peer.viewer_base_url();
            let authority = base
                .split_once("://")
                .map_or(base.as_str(), |(_, rest)| rest)
                .to_string();
            format!(
                "tshttp://{authority}/{name}/mpegts?{}=1",
                crate::http::media::HOP_PARAMETER
            )
        };
        // The relay runs while its players watch: the last one to leave stops it.
        let started = self
            .start_ephemeral_stream(
                name,
                &peer_url,
                crate::defaults::SEGMENT_DURATION_MS,
                crate::defaults::SEGMENT_COUNT,
                true,
            )
            .await;
        tracing::info!(stream = %name, relay = %peer_url, ok = started.is_ok(), "relaying a peer's stream for an RTMP player");
        // Even when this start lost a race to another player's, the stream may appear.
        let deadline = self.context.node.runtime.now()
            + Duration::from_millis(crate::defaults::STREAM_START_WAIT_MS);
        loop {
            if let Some(live) = self.context.directory.get(name) {
                let remaining = deadline.saturating_duration_since(self.context.node.runtime.now());
                return live.wait_ready(remaining).await.then_some(live);
            }
            if self.context.node.runtime.now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(super) async fn stop_template_stream(&self, name: &str) {
        let Some(supervisor) =
            supervisor_at(&self.context.node, &ActorPath::root().child("streams"))
        else {
            return;
        };
        let _ = ractor::call!(supervisor, SupervisorMsg::TerminateChild, name.to_string());
    }
}
