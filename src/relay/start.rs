//! Starting relayed streams for viewers: the HTTP and RTMP edges ask for a local copy of
//! a stream another node has, and get it once it has its first segment.
//!
//! One upstream per stream per node, however many viewers ask at once: the copy is a
//! child of `node/streams` named `relay:STREAM`, and the supervisor holds one child per
//! name, so concurrent first viewers start it once and all wait on the same copy.

use std::sync::Arc;
use std::time::Duration;

use flotilla_cluster::stream::{StreamActor, StreamMedia};
use flotilla_cluster::tree::{InputPlan, StreamPlan};
use flotilla_otp::node::NodeContext;
use flotilla_otp::registry::ActorPath;
use flotilla_otp::supervisor::{Restart, SupervisorMsg, supervisor_at};
use flotilla_otp::worker::worker_child;

use super::{RELAY_INPUT, Upstream};
use crate::config::Config;
use crate::config::values::{ClusterPlay, Timeout};
use crate::live::Live;
use crate::media::directory::Directory;
use crate::media::live::LiveStream;

/// A relayed copy's child id under `node/streams` is the stream's name after this prefix:
/// stream names never hold `:`, so a capture of the stream starting on this node (a
/// cluster_ingest failover onto it) is another child, which takes the copy's window over.
pub const RELAY_CHILD_PREFIX: &str = "relay:";

/// How often a viewer waiting for a starting copy looks for it in the directory.
const APPEARS_POLL: Duration = Duration::from_millis(20);

/// Whether `config` has viewers of `stream` served by a relay rather than redirected: the
/// stream's `cluster_play`, else the node's, else `redirect`.
pub fn plays_by_relay(config: &Config, stream: &str) -> bool {
    let configured = config
        .streams
        .iter()
        .find(|s| s.name == stream)
        .and_then(|s| s.options.cluster_play);
    configured.or(config.cluster_play) == Some(ClusterPlay::Relay)
}

/// Starts and finds relayed copies of other nodes' streams.
#[derive(Clone)]
pub struct RelayStarter {
    pub node: NodeContext,
    pub media: Arc<dyn StreamMedia>,
    pub directory: Directory,
    pub upstream: Arc<dyn Upstream>,
    /// The running config (replaced by a reload).
    pub config: Live<Config>,
}

impl std::fmt::Debug for RelayStarter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RelayStarter")
    }
}

impl RelayStarter {
    /// Whether viewers of `stream` (a name another node has) are served here by a relay
    /// rather than redirected (see [`plays_by_relay`]).
    pub fn relays(&self, stream: &str) -> bool {
        plays_by_relay(&self.config.get(), stream)
    }

    /// Whether some other node has `stream` now.
    pub fn has_owner(&self, stream: &str) -> bool {
        self.upstream.owner(stream).is_some()
    }

    /// The local copy of `stream`, started if it is not running, once it has a segment;
    /// `None` when no node has the stream, or the copy had nothing within `wait`.
    pub async fn local_copy(&self, stream: &str, wait: Duration) -> Option<Arc<LiveStream>> {
        let runtime = &self.node.runtime;
        let deadline = runtime.now() + wait;
        if self.directory.get(stream).is_none() {
            if !self.has_owner(stream) {
                return None;
            }
            self.start(stream).await;
        }
        loop {
            if let Some(live) = self.directory.get(stream) {
                let remaining = deadline.saturating_duration_since(runtime.now());
                return live.wait_ready(remaining).await.then_some(live);
            }
            if runtime.now() >= deadline {
                return None;
            }
            tokio::time::sleep(APPEARS_POLL).await;
        }
    }

    /// Starts the copy as a temporary child of `node/streams` (a duplicate start, a
    /// viewer racing another, is refused by the supervisor and harmless).
    async fn start(&self, stream: &str) {
        let Some(supervisor) = supervisor_at(&self.node, &ActorPath::root().child("streams"))
        else {
            return;
        };
        // The stream's own options, else those of the first source that restreams it.
        let config = self.config.get();
        let options = config
            .streams
            .iter()
            .find(|s| s.name == stream)
            .map(|s| &s.options)
            .or_else(|| {
                config
                    .sources
                    .iter()
                    .find(|source| crate::source::rule_of(source).admits(stream))
                    .map(|source| &source.options)
            });
        let plan = StreamPlan {
            name: stream.to_string(),
            ondemand: false,
            inputs: vec![InputPlan {
                url: RELAY_INPUT.to_string(),
                source_timeout_ms: None,
                priority: None,
                options: Vec::new(),
            }],
            cluster_ingest: false,
            capture_at: None,
            source_timeout_ms: match options.and_then(|o| o.source_timeout) {
                Some(Timeout::After(seconds)) => seconds.millis,
                // A relay that never gives up would hold its viewers on nothing.
                Some(Timeout::Never) | None => crate::defaults::SOURCE_TIMEOUT_MS,
            },
            segment_duration_ms: crate::defaults::SEGMENT_DURATION_MS,
            segment_count: crate::defaults::SEGMENT_COUNT,
            part_duration_ms: crate::defaults::PART_DURATION_MS,
            clients_timeout_ms: match options.and_then(|o| o.clients_timeout) {
                Some(Timeout::After(seconds)) => Some(seconds.millis),
                // A relay never outlives its viewers for ever: the default applies.
                Some(Timeout::Never) | None => Some(crate::defaults::CLIENTS_TIMEOUT_MS),
            },
            retry_limit: None,
            ephemeral: true,
            relay: true,
        };
        let actor = StreamActor {
            media: self.media.clone(),
        };
        let id = format!("{RELAY_CHILD_PREFIX}{stream}");
        let spec = worker_child(&id, actor, move || plan.clone()).restart(Restart::Temporary);
        match ractor::call!(supervisor, SupervisorMsg::StartChild, spec) {
            Ok(Ok(())) => {
                tracing::info!(%stream, "relaying a peer's stream for this node's viewers")
            }
            Ok(Err(error)) => {
                tracing::debug!(%stream, %error, "relay start refused (already running?)")
            }
            Err(error) => {
                tracing::warn!(%stream, %error, "streams supervisor unreachable: relay not started")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::plays_by_relay;

    fn config(text: &str) -> crate::config::Config {
        crate::config::load_str("test.conf", text)
            .expect("the config loads")
            .config
    }

    #[test]
    fn a_streams_cluster_play_wins_over_the_nodes_and_redirect_is_the_default() {
        let none = config("stream cam { input test://; }");
        assert!(!plays_by_relay(&none, "cam"), "redirect by default");
        let node = config(
            "cluster_play relay;\n\
             stream cam { input test://; cluster_play redirect; }\n\
             stream tv { input test://; }",
        );
        assert!(!plays_by_relay(&node, "cam"), "the stream's own choice");
        assert!(plays_by_relay(&node, "tv"), "the node's choice");
        assert!(
            plays_by_relay(&node, "live/unknown"),
            "streams not in the config too"
        );
        let stream = config("stream cam { input test://; cluster_play relay; }");
        assert!(plays_by_relay(&stream, "cam"));
        assert!(!plays_by_relay(&stream, "other"));
    }

    #[test]
    fn a_cluster_play_that_is_neither_relay_nor_redirect_is_refused() {
        let Err(errors) = crate::config::load_str("test.conf", "cluster_play proxy;") else {
            panic!("`cluster_play proxy` loaded");
        };
        let errors = errors.to_string();
        assert!(errors.contains("relay or redirect"), "{errors}");
    }
}
