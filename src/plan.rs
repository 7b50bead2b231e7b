//! From the config to the plan of the node's actor tree (`flotilla_cluster::tree`).
//!
//! The actors crate does not know the config model; this is the one translation.

use std::collections::BTreeMap;

use flotilla_cluster::ingest::{IngestLimits, IngestPlan};
use flotilla_cluster::tree::{BalancerPlan, InputPlan, NodePlan, StreamPlan};

use crate::config::Config;
use crate::config::identity::NodeIdentity;
use crate::config::model::{BalancerMode, Peer};
use crate::config::values::Timeout;
use crate::defaults;

/// `source_timeout false` means never: represented as the longest duration accepted.
fn timeout_ms(timeout: Timeout) -> Option<u64> {
    match timeout {
        Timeout::After(seconds) => Some(seconds.millis),
        Timeout::Never => Some(crate::config::values::MAX_DURATION_MS),
    }
}

fn limits(peer: &Peer) -> IngestLimits {
    IngestLimits {
        channel_limit: peer.channel_limit,
        cpu_limit_percent: peer.cpu_limit.map(|limit| u32::from(limit.percent)),
    }
}

/// The cluster_ingest coordinator's settings. Fail-back waits two stale timeouts (a
/// returning node must prove itself for longer than it takes to be declared dead); a
/// booting node waits one stale timeout for its peers before it takes anything over.
fn ingest_plan(config: &Config, identity: &NodeIdentity) -> IngestPlan {
    let stale_ms = config
        .peers
        .iter()
        .filter_map(|peer| peer.stale_timeout.map(|t| t.millis))
        .max()
        .unwrap_or(defaults::STALE_TIMEOUT_MS);
    let fetch_ms = config
        .peers
        .iter()
        .filter_map(|peer| peer.fetch_timeout.map(|t| t.millis))
        .min()
        .unwrap_or(defaults::FETCH_TIMEOUT_MS);
    let mut peer_limits = BTreeMap::new();
    let mut own = IngestLimits::default();
    for peer in &config.peers {
        if identity.is_self(&peer.address) {
            own = limits(peer);
            continue;
        }
        peer_limits.insert(
            crate::config::identity::node_key(&peer.address),
            limits(peer),
        );
    }
    IngestPlan {
        me: identity.id.clone(),
        aliases: vec![identity.hostname.clone()],
        limits: own,
        peer_limits,
        failback_hold_ms: 2 * stale_ms,
        settle_ms: stale_ms,
        tick_ms: (fetch_ms / 4).clamp(INGEST_TICK_MIN_MS, INGEST_TICK_MAX_MS),
        minority_restraint: config.cluster_ingest_minority_restraint == Some(true),
        pause_after_ms: Some(flotilla_cluster::mesh::view::pause_after_ms(
            fetch_ms, stale_ms,
        )),
        #[cfg(feature = "sabotage")]
        sabotage: None,
    }
}

/// Bounds of the ingest coordinator's tick: often enough to act within a fraction of
/// `fetch_timeout`, never so often that 1,000 streams cost more than a little CPU.
const INGEST_TICK_MIN_MS: u64 = 100;
const INGEST_TICK_MAX_MS: u64 = 1_000;

/// The tree this node runs for `config`.
pub fn node_plan(config: &Config, identity: &NodeIdentity) -> NodePlan {
    let ingest = ingest_plan(config, identity);
    NodePlan {
        peers: identity
            .other_peers(config)
            .into_iter()
            .map(|peer| crate::config::identity::node_key(&peer.address))
            .collect(),
        sources: config
            .sources
            .iter()
            .map(crate::source::source_name)
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
                            options: input
                                .transport
                                .map(|t| ("transport".to_string(), t.name().to_string()))
                                .into_iter()
                                .chain(
                                    input
                                        .program
                                        .map(|n| ("program".to_string(), n.to_string())),
                                )
                                .chain((!input.pids.is_empty()).then(|| {
                                    let pids: Vec<String> =
                                        input.pids.iter().map(u16::to_string).collect();
                                    ("pids".to_string(), pids.join(","))
                                }))
                                .collect(),
                        })
                        .collect(),
                    cluster_ingest: options.cluster_ingest.is_some(),
                    // The node's identity (`host:port`), as every node resolves it.
                    capture_at: options
                        .cluster_ingest
                        .as_ref()
                        .and_then(|ingest| ingest.capture_at.as_ref())
                        .map(|node| identity.key_of(config, node)),
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
                    part_duration_ms: options
                        .chunk_duration
                        .map_or(defaults::PART_DURATION_MS, u64::from),
                    clients_timeout_ms: match options.clients_timeout {
                        None => Some(defaults::CLIENTS_TIMEOUT_MS),
                        Some(Timeout::After(seconds)) => Some(seconds.millis),
                        Some(Timeout::Never) => None,
                    },
                    retry_limit: options.retry_limit,
                    ephemeral: false,
                    relay: false,
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
                // The mesh's reports arrive every fetch_timeout: a balancer reads them as
                // often as the ingest coordinator does.
                refresh_ms: ingest.tick_ms,
            })
            .collect(),
        ingest,
        revision: 0,
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
