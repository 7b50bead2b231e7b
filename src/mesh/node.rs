//! Wiring the mesh into a node: where it listens, how it names itself and its peers,
//! which keys it trusts, and what it advertises.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use flotilla_cluster::ingest::board::IngestBoard;
use flotilla_otp::node::NodeContext;

use super::advert::Advertiser;
use super::auth::{ClusterIdentity, MeshKeys};
use super::links::{MeshLinks, PeerTimeouts};
use super::net::MeshNet;
use super::service::{MeshError, MeshService};
use super::state::LocalState;
use super::wire::{NodeAddress, NodeLoad};
use crate::config::Config;
use crate::config::identity::{NodeIdentity, node_key};
use crate::config::model::HostPort;
use crate::defaults::{FETCH_TIMEOUT_MS, STALE_TIMEOUT_MS};
use crate::live::Live;
use crate::media::directory::Directory;
use crate::stats::StatsBoard;

/// The mesh of a node, when it has a `cluster_key` and an HTTP listener.
#[derive(Clone)]
pub struct NodeMesh {
    pub service: MeshService,
    pub links: MeshLinks,
    /// This node's cluster identity (its `cluster_key`).
    pub identity: ClusterIdentity,
    /// The configured on-demand streams the mesh advertises as such (a reload replaces
    /// them).
    pub ondemand: Live<std::collections::HashSet<String>>,
}

/// Starts the mesh for `config`, or returns `None` when the node has no cluster key.
pub fn start(
    config: &Config,
    identity: &NodeIdentity,
    node: &NodeContext,
    net: Arc<dyn MeshNet>,
    stats: StatsBoard,
    directory: Directory,
    board: IngestBoard,
) -> Result<Option<NodeMesh>, MeshError> {
    let (Some(key), Some(http)) = (&config.cluster_key, config.http.first()) else {
        return Ok(None);
    };
    let port = config.cluster_port.unwrap_or(http.listen.port);
    let ip = http.listen.ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let bind = SocketAddr::new(ip, port);
    let advertised_host = match http.listen.ip {
        Some(ip) if !ip.is_unspecified() => ip.to_string(),
        _ => identity.hostname.clone(),
    };
    let own = HostPort {
        host: advertised_host.clone(),
        port: Some(port),
    }
    .to_string();
    let me = NodeAddress {
        id: identity.id.clone(),
        hostname: identity.hostname.clone(),
        mesh: own.clone(),
        public_url: format!(
            "http://{}",
            HostPort {
                host: advertised_host,
                port: Some(http.listen.port)
            }
        ),
        rtmp_url: config
            .rtmp
            .first()
            .map(|rtmp| {
                let host = match rtmp.ip {
                    Some(ip) if !ip.is_unspecified() => ip.to_string(),
                    _ => identity.hostname.clone(),
                };
                format!(
                    "rtmp://{}",
                    HostPort {
                        host,
                        port: Some(rtmp.port)
                    }
                )
            })
            .unwrap_or_default(),
    };
    let main_identity = ClusterIdentity::derive(&key.0)?;
    let mut identities = vec![main_identity.clone()];
    for peer in &config.peers {
        if let Some(override_key) = &peer.cluster_key {
            identities.push(ClusterIdentity::derive(&override_key.0)?);
        }
    }
    // Keys of clusters this node restreams (`source`): dialed with, never answered to.
    let mut dial_only: Vec<ClusterIdentity> = Vec::new();
    for source in &config.sources {
        if let Some(source_key) = &source.cluster_key {
            let derived = ClusterIdentity::derive(&source_key.0)?;
            let known = identities
                .iter()
                .chain(&dial_only)
                .any(|i| i.certificate == derived.certificate);
            if !known {
                dial_only.push(derived);
            }
        }
    }
    // Looked up once per advertised stream per exchange: a set, not a scan.
    let ondemand = Live::new(crate::reload::ondemand_streams(config));
    let advertiser = Advertiser::new(directory, board, node.runtime.clone(), ondemand.clone());
    let local: LocalState = Arc::new(move || {
        let snapshot = stats.snapshot();
        let load = NodeLoad {
            cpu_usage: snapshot.cpu_usage,
            memory_usage: snapshot.memory_usage,
            total_clients: snapshot.total_clients,
            online_streams: snapshot.online_streams,
            input_kbit: snapshot.input_kbit,
            output_kbit: snapshot.output_kbit,
            bandwidth_usage: snapshot.bandwidth_usage,
            total_bandwidth: snapshot.total_bandwidth,
            uptime: snapshot.uptime,
        };
        (load, advertiser.streams())
    });
    let service = MeshService::start(
        node.runtime.clone(),
        net,
        bind,
        me,
        MeshKeys {
            trusted: identities,
            dial_only,
        },
        local,
        Arc::default(),
    )?;
    let defaults = PeerTimeouts {
        fetch_ms: FETCH_TIMEOUT_MS,
        stale_ms: STALE_TIMEOUT_MS,
    };
    let links = MeshLinks::new(
        service.clone(),
        node.clone(),
        main_identity.clone(),
        defaults,
        own,
    );
    let node_mesh = NodeMesh {
        service,
        links,
        identity: main_identity,
        ondemand,
    };
    for peer in identity.other_peers(config) {
        node_mesh.add_peer(peer)?;
    }
    tracing::info!(%bind, "cluster mesh listening (QUIC)");
    Ok(Some(node_mesh))
}

impl NodeMesh {
    /// Registers the configured `peer`: its identity (its own `cluster_key` or the
    /// node's), timeouts, public URL and dial address. Its link is the `peers`
    /// supervisor's child.
    pub fn add_peer(&self, peer: &crate::config::model::Peer) -> Result<(), MeshError> {
        let peer_identity = match &peer.cluster_key {
            Some(override_key) => ClusterIdentity::derive(&override_key.0)?,
            None => self.identity.clone(),
        };
        let timeouts = PeerTimeouts {
            fetch_ms: peer.fetch_timeout.map_or(FETCH_TIMEOUT_MS, |t| t.millis),
            stale_ms: peer.stale_timeout.map_or(STALE_TIMEOUT_MS, |t| t.millis),
        };
        let public = peer.public_payload_url.clone().unwrap_or_default();
        let public = match public.as_str() {
            "" => String::new(),
            url if url.contains("://") => url.to_string(),
            host => format!("http://{host}"),
        };
        let key = node_key(&peer.address);
        let dial = dial_address(peer, &key);
        self.service.set_dial(&key, &dial);
        self.links
            .add_peer(&key, &dial, peer_identity, timeouts, &public);
        Ok(())
    }
}

/// Where the mesh dials `peer` (whose key is `key`): node-to-node traffic goes to its
/// private address; `api_url` is that address's default (Flussonic's rule), the peer's
/// own address the last resort.
fn dial_address(peer: &crate::config::model::Peer, key: &str) -> String {
    peer.private_payload_url
        .as_deref()
        .or(peer.api_url.as_deref())
        .map_or_else(|| key.to_string(), |url| private_address(url, key))
}

/// Where the mesh dials a peer whose `private_payload_url` is `url`: its host, on the
/// port the URL names or else the peer's own (`key`'s). Node-to-node traffic (exchanges,
/// relays) goes there; viewers are only ever sent to public addresses.
fn private_address(url: &str, key: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let has_port = match authority.strip_prefix('[') {
        // `[v6]` or `[v6]:port`
        Some(bracketed) => bracketed.contains("]:"),
        None => authority.contains(':'),
    };
    if has_port {
        return authority.to_string();
    }
    let port = key.rsplit_once(':').map_or("80", |(_, port)| port);
    format!("{authority}:{port}")
}

#[cfg(test)]
mod tests {
    use super::{dial_address, private_address};

    #[test]
    fn the_mesh_dials_the_private_url_else_the_api_url_else_the_peer() {
        let config = crate::config::load_str(
            "t.conf",
            "peer a.lan:8080 { private_payload_url http://10.0.0.1; api_url http://10.0.0.9:9000; }\n\
             peer b.lan:8080 { api_url http://10.0.0.2; }\n\
             peer c.lan:8080;",
        )
        .expect("loads")
        .config;
        let dials: Vec<String> = config
            .peers
            .iter()
            .map(|peer| dial_address(peer, &crate::config::identity::node_key(&peer.address)))
            .collect();
        assert_eq!(dials, ["10.0.0.1:8080", "10.0.0.2:8080", "c.lan:8080"]);
    }

    #[test]
    fn the_private_address_keeps_the_peers_port_unless_the_url_names_one() {
        assert_eq!(
            private_address("http://10.0.0.2:8080", "a.example:80"),
            "10.0.0.2:8080"
        );
        assert_eq!(
            private_address("http://10.0.0.2/", "a.example:8081"),
            "10.0.0.2:8081"
        );
        assert_eq!(
            private_address("10.0.0.2", "a.example:8081"),
            "10.0.0.2:8081"
        );
        assert_eq!(
            private_address("http://[fd00::2]:9000/x", "a:1"),
            "[fd00::2]:9000"
        );
        assert_eq!(
            private_address("http://[fd00::2]", "a:8081"),
            "[fd00::2]:8081"
        );
    }
}
