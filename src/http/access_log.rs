//! `logrequests`: one JSON line per HTTP request the router answers (API and media:
//! playlists, segments, HTTP-MPEG-TS), written by [`crate::logfile::LineLog`] off the
//! request path.
//!
//! A line is written when the response's headers are ready: `bytes` is the body's
//! declared length (`null` for a body streamed without one, like HTTP-MPEG-TS, whose
//! bytes the session log has) and `duration_ms` the time to the headers. Balancer
//! redirects answered by the listener's fast path, before the router, are counted in the
//! balancer metrics, not logged here.

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use serde_json::json;

use super::api::ApiState;
use super::server::remote_addr;

/// The longest request target a line keeps (the rest is cut; the HTTP limits bound it
/// anyway).
const MAX_LOGGED_TARGET_CHARS: usize = 1024;
/// The longest user agent or referer a line keeps.
const MAX_LOGGED_HEADER_CHARS: usize = 256;

/// The middleware: answers `request`, then queues its line.
pub async fn log_request(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let Some(log) = state.access_log.clone() else {
        return next.run(request).await;
    };
    let runtime = state.node.runtime.clone();
    let started = runtime.now();
    // Read before the request moves on; nothing borrowed from it lives across the await
    // (a request's body is not `Sync`).
    let (client, method, target, user_agent, referer) = {
        let header = |name| {
            request
                .headers()
                .get(name)
                .and_then(|value: &axum::http::HeaderValue| value.to_str().ok())
                .map(|text: &str| {
                    text.chars()
                        .take(MAX_LOGGED_HEADER_CHARS)
                        .collect::<String>()
                })
        };
        let client = remote_addr(&request).map(|addr| {
            let proxies = &state.config.get().trusted_proxies;
            super::fast_path::client_of(addr, request.headers(), proxies)
        });
        let target: String = request
            .uri()
            .path_and_query()
            .map_or("/", |target| target.as_str())
            .chars()
            .take(MAX_LOGGED_TARGET_CHARS)
            .collect();
        (
            client,
            request.method().to_string(),
            target,
            header(header::USER_AGENT),
            header(header::REFERER),
        )
    };
    let response = next.run(request).await;
    let bytes = {
        use axum::body::HttpBody;
        response.body().size_hint().exact()
    };
    let duration_ms =
        u64::try_from(runtime.now().duration_since(started).as_millis()).unwrap_or(u64::MAX);
    let line = json!({
        "time": crate::format::rfc3339(runtime.wall_clock_ms()),
        "client": client.map(|ip| ip.to_string()),
        "method": method,
        "path": target,
        "status": response.status().as_u16(),
        "bytes": bytes,
        "duration_ms": duration_ms,
        "user_agent": user_agent,
        "referer": referer,
    });
    log.write(line.to_string());
    response
}
