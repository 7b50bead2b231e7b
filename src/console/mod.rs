//! The web console: server-rendered pages, no script, no CDN — it works offline and in
//! any browser, and shows only what the HTTP API shows.
//!
//! - `GET /flotilla/console`: the cluster as this node sees it — every node with the
//!   columns of Flussonic's peering page (state, CPU, memory, clients, captured streams,
//!   output bitrate, network load, uptime), every stream and where it runs (captured
//!   here or there, relayed), the cluster_ingest table with epochs, each balancer's
//!   servers and recent decisions, and this node's actor tree; every other node's own
//!   console is a link away. The page refreshes itself every [`REFRESH_SECONDS`].
//! - `POST /flotilla/console/reload`, `POST /flotilla/console/restart/STREAM`: the edit
//!   actions (edit_auth), shown only to a caller that has it.
//!
//! Login is the API's: view_auth (or edit_auth) by HTTP Basic, which the browser asks
//! for. Edit actions refuse a request whose `Origin` (or `Referer`) is not this console's
//! own host, so another site cannot make a logged-in browser post them. Every text from
//! the node's state is escaped ([`html::escape`]).

pub mod html;
mod page;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use flotilla_otp::registry::ActorPath;

use crate::http::access::Access;
use crate::http::api::{ApiState, error_response};

/// The page's self-refresh period.
pub const REFRESH_SECONDS: u32 = 5;

/// `GET /flotilla/console`.
pub async fn overview(State(state): State<ApiState>, request: Request) -> Response {
    let access = request
        .extensions()
        .get::<Access>()
        .copied()
        .unwrap_or(Access::None);
    let notice = request.uri().query().and_then(|query| {
        url::form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "notice")
            .map(|(_, value)| value.into_owned())
    });
    let body = page::render(&state, access == Access::Edit, notice.as_deref());
    ([(header::CACHE_CONTROL, "no-store")], Html(body)).into_response()
}

/// `POST /flotilla/console/reload` (edit_auth): the config file read again.
pub async fn reload(State(state): State<ApiState>, request: Request) -> Response {
    if let Some(refused) = foreign_origin(&request) {
        return refused;
    }
    let notice = match state.reload.reload("console").await {
        Ok(report) => format!(
            "config reloaded (revision {}): streams {}{}",
            report.revision,
            report.streams.summary(),
            match report.restart_required.is_empty() {
                true => String::new(),
                false => format!(
                    "; restart required for: {}",
                    report.restart_required.join(", ")
                ),
            }
        ),
        Err(error) => error.to_string(),
    };
    back_with(&notice)
}

/// `POST /flotilla/console/restart/STREAM` (edit_auth): the stream's actor is failed on
/// purpose, so its supervisor starts it again (what the actors API's kill does).
pub async fn restart(
    State(state): State<ApiState>,
    Path(stream): Path<String>,
    request: Request,
) -> Response {
    if let Some(refused) = foreign_origin(&request) {
        return refused;
    }
    let path = ActorPath::root().child("streams").child(&stream);
    let notice = match state.node.registry.get(&path) {
        Some(entry) if entry.inject_failure("restarted from the console".into()) => {
            tracing::warn!(%path, "stream restarted from the console");
            format!("{stream} restarts")
        }
        Some(_) => format!("{stream} is not running (restarting or stopping)"),
        None => format!("no stream {stream} runs on this node"),
    };
    back_with(&notice)
}

/// Back to the overview, which shows `notice`.
fn back_with(notice: &str) -> Response {
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("notice", notice)
        .finish();
    Redirect::to(&format!("/flotilla/console?{query}")).into_response()
}

/// A 403 for a POST whose `Origin` (else `Referer`) names another host than the one the
/// request is addressed to; a POST with neither is refused too (browsers send one).
fn foreign_origin(request: &Request) -> Option<Response> {
    let headers = request.headers();
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
    };
    // HTTP/2 carries the host in the request's authority, not in a Host header.
    let host = text(header::HOST)
        .map(str::to_string)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    let origin = text(header::ORIGIN).or_else(|| text(header::REFERER));
    let same = match (host, origin) {
        (Some(host), Some(origin)) => {
            let rest = origin.split_once("://").map_or(origin, |(_, rest)| rest);
            rest.split('/').next() == Some(host.as_str())
        }
        _ => false,
    };
    (!same).then(|| {
        error_response(
            StatusCode::FORBIDDEN,
            "console actions are taken from the console's own page (Origin or Referer must be this host)",
        )
    })
}
