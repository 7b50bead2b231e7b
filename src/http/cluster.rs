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
