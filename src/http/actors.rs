//! Actor introspection over HTTP: the backend of the remote shell.
//!
//! - `GET /flotilla/api/actors`: the whole supervision tree, nested.
//! - `GET /flotilla/api/actors/{path}`: one actor and its subtree (`node/streams/cam01`).
//! - `GET /flotilla/api/actors/{path}/trace[?count=N&seconds=S]`: a bounded live feed of
//!   its events, newline-delimited JSON (see `trace.rs`).
//! - `POST /flotilla/api/actors/{path}/kill[?reason=…]`: injects a failure into the actor so
//!   that its supervisor acts (edit_auth). A chaos and teaching tool: the tree shows the
//!   restart right after.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flotilla_otp::registry::ActorPath;
use serde::Deserialize;
use serde_json::json;

use super::api::{ApiState, error_response};

/// Longest kill reason kept (it ends up in the registry's one-line failure field).
const MAX_REASON_CHARS: usize = 200;

pub async fn tree(State(state): State<ApiState>) -> Response {
    let now_ms = state.node.runtime.wall_clock_ms();
    match state.node.registry.tree(&ActorPath::root(), now_ms) {
        Some(tree) => Json(tree).into_response(),
        None => error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the actor tree is not running",
        ),
    }
}

fn bad_path(raw: &str) -> Response {
    error_response(
        StatusCode::BAD_REQUEST,
        format!("`{raw}` is not an actor path (paths start with `node`, e.g. node/streams/cam01)"),
    )
}

pub async fn show(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    Query(trace): Query<super::trace::TraceQuery>,
) -> Response {
    if let Some(raw) = raw.strip_suffix("/trace") {
        let Some(path) = ActorPath::parse(raw) else {
            return bad_path(raw);
        };
        return super::trace::trace(state, path, trace).await;
    }
    let Some(path) = ActorPath::parse(&raw) else {
        return bad_path(&raw);
    };
    let now_ms = state.node.runtime.wall_clock_ms();
    match state.node.registry.tree(&path, now_ms) {
        Some(info) => Json(info).into_response(),
        None => error_response(StatusCode::NOT_FOUND, format!("no actor at {path}")),
    }
}

#[derive(Debug, Deserialize)]
pub struct KillQuery {
    reason: Option<String>,
}

pub async fn kill(
    State(state): State<ApiState>,
    Path(raw): Path<String>,
    Query(query): Query<KillQuery>,
) -> Response {
    let Some(raw) = raw.strip_suffix("/kill") else {
        return error_response(
            StatusCode::NOT_FOUND,
            "POST goes to /flotilla/api/actors/{path}/kill",
        );
    };
    let Some(path) = ActorPath::parse(raw) else {
        return bad_path(raw);
    };
    let Some(entry) = state.node.registry.get(&path) else {
        return error_response(StatusCode::NOT_FOUND, format!("no actor at {path}"));
    };
    let reason: String = query
        .reason
        .unwrap_or_else(|| "killed by operator".into())
        .chars()
        .take(MAX_REASON_CHARS)
        .collect();
    if path == ActorPath::root() {
        return error_response(
            StatusCode::CONFLICT,
            "the root has no supervisor to restart it; stop the node instead",
        );
    }
    if !entry.inject_failure(reason.clone()) {
        return error_response(
            StatusCode::CONFLICT,
            format!("{path} is not running (restarting or stopping)"),
        );
    }
    tracing::warn!(%path, %reason, "failure injected through the API");
    (
        StatusCode::ACCEPTED,
        Json(json!({ "killed": path, "reason": reason })),
    )
        .into_response()
}
