//! From the config to the plan of the node's actor tree (`flotilla_actors::tree`).
//!
//! The actors crate does not know the config model; this is the one translation.

use flotilla_actors::tree::{BalancerPlan, InputPlan, NodePlan, StreamPlan};

use crate::config::Config;
use crate::config::identity::NodeIdentity;
use crate::config::model::BalancerMode;
use crate::config::values::Timeout;
use crate::defaults;

/// `source_timeout false` means never: represented as the longest duration accepted.
fn timeout_ms(timeout: Timeout) -> Option<u64> {
    match timeout {
        Timeout::After(seconds) => Some(seconds.millis),
        Timeout::Never => Some(crate::config::values::MAX_DURATION_MS),
    }
}

/// The tree this node runs for `config`.
pub fn node_plan(config: &Config, identity: &NodeIdentity) -> NodePlan {
    NodePlan {
        peers: identity
            .other_peers(config)
            .into_iter()
            .map(|peer| crate::mesh::node::peer_key(&peer.address))
            .collect(),
        streams: config
            .streams
            .iter()
            .filter(|stream| stream.options.disabled != Some(true))
            .map(|stream| {
                let options = &stream.options;
                StreamPlan {
                    name: stream.name.clone(),
                    ondemand: stream.ondemand,
                    inputs: options
                        .inputs
                        .iter()
                        .map(|input| InputPlan {
                            url: input.url.clone(),
                            source_timeout_ms: input.source_timeout.and_then(timeout_ms),
                            priority: input.priority,
                        })
                        .collect(),
                    cluster_ingest: options.cluster_ingest.is_some(),
                    source_timeout_ms: options
                        .source_timeout
                        .and_then(timeout_ms)
                        .unwrap_or(defaults::SOURCE_TIMEOUT_MS),
                    segment_duration_ms: options
                        .segment_duration
                        .map_or(defaults::SEGMENT_DURATION_MS, |d| d.millis),
                    segment_count: options
                        .segment_count
                        .map_or(defaults::SEGMENT_COUNT, |count| count as usize),
                    clients_timeout_ms: match options.clients_timeout {
                        None => Some(defaults::CLIENTS_TIMEOUT_MS),
                        Some(Timeout::After(seconds)) => Some(seconds.millis),
                        Some(Timeout::Never) => None,
                    },
                    retry_limit: options.retry_limit,
                    ephemeral: false,
                }
            })
            .collect(),
        balancers: config
            .balancers
            .iter()
            .map(|balancer| BalancerPlan {
                name: balancer.name.clone(),
                // Flussonic's API default mode.
                mode: balancer
                    .mode
                    .unwrap_or(BalancerMode::Bitrate)
                    .name()
                    .to_string(),
                servers: balancer
                    .servers
                    .iter()
                    .map(|s| s.address.to_string())
                    .collect(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    #[test]
    fn the_plan_skips_this_node_and_disabled_streams() {
        let config = load_str(
            "t",
            "http 8080; peer a.lan:8080; peer b.lan:8080;
             stream on { input publish://; cluster_ingest; }
             stream off { input publish://; disabled true; }
             balancer lb { server x; }",
        )
        .unwrap()
        .config;
        let identity = NodeIdentity::resolve(&config, Some("a.lan"), None);
        let plan = node_plan(&config, &identity);
        assert_eq!(plan.peers, vec!["b.lan:8080"]);
        assert_eq!(plan.streams.len(), 1);
        assert!(plan.streams[0].cluster_ingest);
        assert_eq!(plan.balancers[0].mode, "bitrate");
    }
}
