//! Wiring the mesh into a node: where it listens, how it names itself and its peers,
//! which keys it trusts, and what it advertises.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use flotilla_cluster::ingest::board::IngestBoard;
use flotilla_otp::node::NodeContext;

use super::advert::Advertiser;
use super::auth::ClusterIdentity;
use super::links::{MeshLinks, PeerTimeouts};
use super::net::MeshNet;
use super::service::{MeshError, MeshService};
use super::state::LocalState;
use super::wire::{NodeAddress, NodeLoad};
use crate::config::Config;
use crate::config::identity::{NodeIdentity, node_key};
use crate::config::model::HostPort;
use crate::defaults::{FETCH_TIMEOUT_MS, STALE_TIMEOUT_MS};
use crate::media::directory::Directory;
use crate::stats::StatsBoard;

/// The mesh of a node, when it has a `cluster_key` and an HTTP listener.
pub struct NodeMesh {
    pub service: MeshService,
    pub links: MeshLinks,
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
    // Looked up once per advertised stream per exchange: a set, not a scan.
    let ondemand: std::collections::HashSet<String> = config
        .streams
        .iter()
        .filter(|s| s.options.disabled != Some(true) && s.ondemand)
        .map(|s| s.name.clone())
        .collect();
    let advertiser = Advertiser::new(directory, board, node.runtime.clone(), ondemand);
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
        identities,
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
    for peer in identity.other_peers(config) {
        let peer_identity = match &peer.cluster_key {
            Some(override_key) => ClusterIdentity::derive(&override_key.0)?,
            None => main_identity.clone(),
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
        links.add_peer(&node_key(&peer.address), peer_identity, timeouts, &public);
    }
    tracing::info!(%bind, "cluster mesh listening (QUIC)");
    Ok(Some(NodeMesh { service, links }))
}
