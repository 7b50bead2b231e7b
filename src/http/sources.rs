//! `GET /streamer/api/v3/cluster/sources`: the other clusters this node restreams
//! (`source` lines), each with whether it answers, through which node, and the streams it
//! offers here with the nodes that have them there.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use super::api::ApiState;

pub async fn list(State(state): State<ApiState>) -> Json<Value> {
    let Some(sources) = &state.sources else {
        return Json(json!({ "sources": [] }));
    };
    let now_ms = state.node.runtime.wall_clock_ms();
    let book = sources.book();
    let listed: Vec<Value> = book
        .sources()
        .iter()
        .map(|source| {
            let streams: Vec<Value> = source
                .streams
                .iter()
                .map(|(name, owners)| {
                    let nodes: Vec<&str> = owners
                        .iter()
                        .filter_map(|&i| source.nodes.get(usize::from(i)))
                        .map(|node| node.id.as_str())
                        .collect();
                    json!({ "name": name, "running_on": nodes })
                })
                .collect();
            json!({
                "url": source.name,
                "health": match book.health(source, now_ms) {
                    flotilla_cluster::source::book::SourceHealth::Answering => "answering",
                    flotilla_cluster::source::book::SourceHealth::Failing => "failing",
                    flotilla_cluster::source::book::SourceHealth::Stale => "stale",
                },
                "fetched_at": source.fetched_ms,
                "answered_by": source.answered_by,
                "error": source.last_error,
                "nodes": source.nodes.iter().map(|n| json!({ "id": n.id, "dial": n.dial })).collect::<Vec<_>>(),
                "only": source.rule.only,
                "except": source.rule.except,
                "prefix": source.rule.prefix,
                "streams": streams,
            })
        })
        .collect();
    Json(json!({ "sources": listed }))
}
