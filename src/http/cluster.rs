//! `GET /streamer/api/v3/cluster/peers`: the cluster overview — every peer with its state
//! and load, as this node sees it. `GET /streamer/api/v3/cluster/ingest`: the
//! cluster_ingest ownership table as this node computes it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::api::ApiState;

pub async fn peers(State(state): State<ApiState>) -> Json<Value> {
    let Some(mesh) = &state.mesh else {
        return Json(json!({ "peers": [], "mesh": "off: no cluster_key" }));
    };
    let now_ms = state.node.runtime.wall_clock_ms();
    let view = mesh.view().read().unwrap_or_else(|p| p.into_inner());
    let peers: Vec<Value> = view
        .peers(now_ms)
        .map(|(peer, peer_state)| {
            let last_seen = (peer.last_seen_ms != 0).then_some(peer.last_seen_ms);
            json!({
                "id": if peer.id.is_empty() { &peer.name } else { &peer.id },
                "hostname": if peer.hostname.is_empty() { &peer.name } else { &peer.hostname },
                "address": peer.name,
                "state": peer_state,
                "last_seen": last_seen,
                "fetch_timeout": peer.fetch_timeout_ms,
                "stale_timeout": peer.stale_timeout_ms,
                "public_payload_url": peer.public_url,
                "rtmp_url": peer.rtmp_url,
                "error": peer.last_error,
                "stats": {
                    "cpu_usage": peer.load.cpu_usage,
                    "memory_usage": peer.load.memory_usage,
                    "total_clients": peer.load.total_clients,
                    "online_streams": peer.load.online_streams,
                    "output_kbit": peer.load.output_kbit,
                    "bandwidth_usage": peer.load.bandwidth_usage,
                    "uptime": peer.load.uptime,
                },
                "streams": peer.streams.len(),
            })
        })
        .collect();
    Json(json!({ "peers": peers, "incarnation": mesh.incarnation() }))
}

/// Most streams the cluster overview lists (the mesh carries at most `wire::MAX_STREAMS`
/// per node).
const MAX_OVERVIEW_STREAMS: usize = 10_000;

/// `GET /streamer/api/v3/cluster/streams` (flotilla): every stream the cluster has, with
/// each node's part in it as this node sees it: running it from its input (`alive`),
/// relaying it from another node (`relayed`), its viewers and input bitrate there.
pub async fn streams(State(state): State<ApiState>) -> Json<Value> {
    let now_ms = state.node.runtime.wall_clock_ms();
    let mut by_stream: std::collections::BTreeMap<String, Vec<Value>> = Default::default();
    for live in state.directory.all() {
        by_stream.entry(live.name.clone()).or_default().push(json!({
            "node": state.identity.id,
            "alive": !live.relay && live.is_alive(now_ms, crate::stats::ALIVE_WITHIN_MS),
            "relayed": live.relay,
            "relayed_from": live.relayed_from(),
            "clients": live.counters.clients.load(std::sync::atomic::Ordering::Relaxed),
            "bitrate_kbit": live.counters.input_bitrate.load(std::sync::atomic::Ordering::Relaxed) / 1000,
        }));
    }
    if let Some(mesh) = &state.mesh {
        let view = mesh.view().read().unwrap_or_else(|p| p.into_inner());
        for (peer, peer_state) in view.peers(now_ms) {
            if peer_state != flotilla_cluster::mesh::view::PeerState::Alive {
                continue;
            }
            for (name, stream) in &peer.streams {
                if !(stream.alive || stream.relayed || stream.clients > 0) {
                    continue;
                }
                by_stream.entry(name.clone()).or_default().push(json!({
                    "node": if peer.id.is_empty() { &peer.name } else { &peer.id },
                    "alive": stream.alive,
                    "relayed": stream.relayed,
                    "clients": stream.clients,
                    "bitrate_kbit": stream.bitrate_kbit,
                    "epoch": stream.epoch,
                }));
            }
        }
    }
    let streams: Vec<Value> = by_stream
        .into_iter()
        .take(MAX_OVERVIEW_STREAMS)
        .map(|(name, nodes)| json!({ "name": name, "nodes": nodes }))
        .collect();
    Json(json!({ "streams": streams }))
}

pub async fn ingest(State(state): State<ApiState>) -> Json<Value> {
    let board = state.ingest.snapshot();
    let streams: Vec<Value> = board
        .rows
        .iter()
        .map(|row| {
            json!({
                "stream": row.stream,
                "owner": row.owner,
                "capture_at": row.capture_at,
                "reason": row.reason,
                "since": row.since_ms,
                "running_on": row.capturer,
                "epoch": row.epoch,
                "local": row.local,
                "local_epoch": row.local_epoch,
            })
        })
        .collect();
    Json(json!({
        "id": state.identity.id,
        "hostname": state.identity.hostname,
        "settled": board.settled,
        "restrained": board.restrained,
        "streams": streams,
    }))
}

/// `GET /streamer/api/v3/cluster/balancers/NAME`: every server's state and metric, and
/// the recent decisions.
pub async fn balancer(State(state): State<ApiState>, Path(name): Path<String>) -> Response {
    match state.balancers.report(&name) {
        Some(report) => Json(report).into_response(),
        None => super::api::error_response(StatusCode::NOT_FOUND, format!("no balancer {name}")),
    }
}
