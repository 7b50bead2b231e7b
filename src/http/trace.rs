//! `GET /flotilla/api/actors/{path}/trace[?count=N&seconds=S]`: a bounded live feed of
//! one actor's events (starts, failures, status changes, handled messages, summaries) as
//! newline-delimited JSON, ended after `count` events, `seconds`, or when the client
//! goes away. The backend of the shell's `trace PATH`.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use flotilla_otp::registry::ActorPath;
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::api::{ApiState, error_response};

/// Events sent when the request names no count.
pub const DEFAULT_TRACE_EVENTS: u64 = 20;
/// Most events one trace sends.
pub const MAX_TRACE_EVENTS: u64 = 1_000;
/// How long a trace runs when the request names no duration, seconds.
pub const DEFAULT_TRACE_SECONDS: u64 = 60;
/// Longest trace, seconds.
pub const MAX_TRACE_SECONDS: u64 = 600;

/// `?count=N&seconds=S`.
#[derive(Debug, Default, Deserialize)]
pub struct TraceQuery {
    count: Option<u64>,
    seconds: Option<u64>,
}

fn line(value: serde_json::Value) -> Result<Bytes, std::convert::Infallible> {
    let mut text = value.to_string();
    text.push('\n');
    Ok(Bytes::from(text))
}

/// Streams the events of the actor at `path`.
pub async fn trace(state: ApiState, path: ActorPath, query: TraceQuery) -> Response {
    let Some(entry) = state.node.registry.get(&path) else {
        return error_response(StatusCode::NOT_FOUND, format!("no actor at {path}"));
    };
    let count = query
        .count
        .unwrap_or(DEFAULT_TRACE_EVENTS)
        .clamp(1, MAX_TRACE_EVENTS);
    let seconds = query
        .seconds
        .unwrap_or(DEFAULT_TRACE_SECONDS)
        .clamp(1, MAX_TRACE_SECONDS);
    let receiver = entry.trace();
    let runtime = state.node.runtime.clone();
    let deadline = runtime.now() + Duration::from_secs(seconds);
    let name = path.to_string();
    // (the receiver until the end line is out, events sent)
    let events = futures_util::stream::unfold((Some(receiver), 0u64), move |(receiver, sent)| {
        let runtime = runtime.clone();
        let name = name.clone();
        async move {
            let mut receiver = receiver?;
            let end = |reason: &str| {
                Some((
                    line(json!({ "path": name, "event": "end", "reason": reason })),
                    (None, sent),
                ))
            };
            if sent >= count {
                return end("count");
            }
            let next = tokio::select! {
                event = receiver.recv() => event,
                _ = tokio::time::sleep_until(deadline) => return end("deadline"),
            };
            let at_ms = runtime.wall_clock_ms();
            let value = match next {
                Ok(event) => {
                    let mut value = serde_json::to_value(&event).unwrap_or_default();
                    value["path"] = json!(name);
                    value["at_ms"] = json!(at_ms);
                    value
                }
                Err(RecvError::Lagged(missed)) => {
                    json!({ "path": name, "event": "dropped", "missed": missed, "at_ms": at_ms })
                }
                Err(RecvError::Closed) => return end("actor gone"),
            };
            Some((line(value), (Some(receiver), sent + 1)))
        }
    });
    let mut response = Response::new(Body::from_stream(events));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    response
}
