//! The overview page, rendered from the node's shared state in one pass (no mailbox is
//! asked: the page costs what the API's cluster, streams, ingest and actors calls cost).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::Ordering;

use flotilla_cluster::mesh::view::{IngestRole, PeerState};
use flotilla_otp::registry::{ActorInfo, ActorPath};

use super::REFRESH_SECONDS;
use super::html::{Cell, duration, escape, table};
use crate::http::api::ApiState;
use crate::stats::ALIVE_WITHIN_MS;

/// Most streams the page lists (the rest are counted).
const MAX_PAGE_STREAMS: usize = 2_000;
/// Most recent balancer decisions shown per balancer.
const MAX_PAGE_DECISIONS: usize = 20;

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\
h1{font-size:1.3em}h2{font-size:1.1em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.4em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left}\
th{background:#f3f3f3}td.none{color:#888}.alive{color:#060}.down{color:#a00}\
.notice{background:#ffd;padding:.5em;border:1px solid #cc9}form{display:inline}\
ul.tree{list-style:none;padding-left:1.2em}nav a{margin-right:1em}";

/// The whole page; `edit` shows the edit actions.
pub fn render(state: &ApiState, edit: bool, notice: Option<&str>) -> String {
    let now_ms = state.node.runtime.wall_clock_ms();
    let me = &state.identity.id;
    let mut html = String::with_capacity(16 * 1024);
    let _ = write!(
        html,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"{REFRESH_SECONDS}\">\
         <title>flotilla — {}</title><style>{STYLE}</style></head><body>\
         <h1>flotilla console — <span id=\"node\">{}</span></h1>\
         <nav><a href=\"#cluster\">Cluster</a><a href=\"#streams\">Streams</a>\
         <a href=\"#ingest\">cluster_ingest</a><a href=\"#balancers\">Balancers</a>\
         <a href=\"#actors\">Actors</a><a href=\"/flotilla/api/metrics\">Metrics</a></nav>",
        escape(me),
        escape(me)
    );
    if let Some(notice) = notice {
        let _ = write!(
            html,
            "<p class=\"notice\" id=\"notice\">{}</p>",
            escape(notice)
        );
    }
    if edit {
        html.push_str(
            "<form method=\"post\" action=\"/flotilla/console/reload\">\
             <button id=\"reload\">Reload the config file</button></form>",
        );
    }
    cluster(state, now_ms, &mut html);
    streams(state, now_ms, edit, &mut html);
    ingest(state, &mut html);
    balancers(state, &mut html);
    actors(state, now_ms, &mut html);
    html.push_str("</body></html>");
    html
}

fn state_cell(alive: bool, text: &str) -> Cell {
    let class = if alive { "alive" } else { "down" };
    Cell::Html(format!("<span class=\"{class}\">{}</span>", escape(text)))
}

fn link(url: &str, text: &str) -> Cell {
    match url.starts_with("http://") || url.starts_with("https://") {
        true => Cell::Html(format!(
            "<a href=\"{}/flotilla/console\">{}</a>",
            escape(url.trim_end_matches('/')),
            escape(text)
        )),
        false => Cell::text(text),
    }
}

/// Every node: this one, then its peers as the mesh view has them.
fn cluster(state: &ApiState, now_ms: u64, html: &mut String) {
    html.push_str("<h2 id=\"cluster\">Cluster</h2>");
    let own = state.stats.snapshot();
    let captured_here = state
        .ingest
        .snapshot()
        .local
        .values()
        .filter(|part| part.role == IngestRole::Capturing)
        .count();
    let mut rows = vec![vec![
        Cell::text(format!("{} (this node)", state.identity.id)),
        state_cell(true, "alive"),
        Cell::text(format!("{:.0} %", own.cpu_usage)),
        Cell::text(format!("{:.0} %", own.memory_usage)),
        Cell::text(own.total_clients),
        Cell::text(captured_here),
        Cell::text(format!("{:.1}", own.output_kbit as f64 / 1000.0)),
        Cell::text(format!("{:.0} %", own.bandwidth_usage)),
        Cell::text(duration(own.uptime)),
        Cell::Html("<a href=\"/flotilla/console\">here</a>".into()),
    ]];
    if let Some(mesh) = &state.mesh {
        let view = mesh.view().read().unwrap_or_else(|p| p.into_inner());
        for (peer, peer_state) in view.peers(now_ms) {
            let alive = peer_state == PeerState::Alive;
            let captured = peer
                .streams
                .values()
                .filter(|s| s.ingest == IngestRole::Capturing)
                .count();
            let load = &peer.load;
            let state_name = match peer_state {
                PeerState::Alive => "alive",
                PeerState::Stale => "down",
                PeerState::Connecting => "connecting",
                PeerState::Unauthorized => "unauthorized",
            };
            rows.push(vec![
                Cell::text(&peer.name),
                state_cell(alive, state_name),
                Cell::text(format!("{:.0} %", load.cpu_usage)),
                Cell::text(format!("{:.0} %", load.memory_usage)),
                Cell::text(load.total_clients),
                Cell::text(captured),
                Cell::text(format!("{:.1}", load.output_kbit as f64 / 1000.0)),
                Cell::text(format!("{:.0} %", load.bandwidth_usage)),
                Cell::text(duration(load.uptime)),
                link(&peer.public_url, "console"),
            ]);
        }
    }
    html.push_str(&table(
        "nodes",
        &[
            "Node",
            "State",
            "CPU",
            "Memory",
            "Clients",
            "Captured streams",
            "Output Mbit/s",
            "Network",
            "Uptime",
            "Console",
        ],
        rows,
    ));
}

/// Every stream of the cluster and each node's part in it.
fn streams(state: &ApiState, now_ms: u64, edit: bool, html: &mut String) {
    html.push_str("<h2 id=\"streams\">Streams</h2>");
    // stream → (node, what it does there, clients, input kbit/s)
    let mut by_stream: BTreeMap<String, Vec<(String, &'static str, u64, u64)>> = BTreeMap::new();
    let me = state.identity.id.clone();
    for live in state.directory.all() {
        let part = match (live.relay, live.is_alive(now_ms, ALIVE_WITHIN_MS)) {
            (true, _) => "relayed",
            (false, true) => "captured",
            (false, false) => "waiting for its source",
        };
        by_stream.entry(live.name.clone()).or_default().push((
            me.clone(),
            part,
            live.counters.clients.load(Ordering::Relaxed),
            live.counters.input_bitrate.load(Ordering::Relaxed) / 1000,
        ));
    }
    if let Some(mesh) = &state.mesh {
        let view = mesh.view().read().unwrap_or_else(|p| p.into_inner());
        for (peer, peer_state) in view.peers(now_ms) {
            if peer_state != PeerState::Alive {
                continue;
            }
            for (name, stream) in &peer.streams {
                let part = match (stream.relayed, stream.alive, stream.ondemand) {
                    (true, _, _) => "relayed",
                    (false, true, _) => "captured",
                    (false, false, true) => "on demand",
                    _ => continue,
                };
                by_stream.entry(name.clone()).or_default().push((
                    peer.name.clone(),
                    part,
                    stream.clients,
                    stream.bitrate_kbit,
                ));
            }
        }
    }
    let total = by_stream.len();
    let rows = by_stream
        .into_iter()
        .take(MAX_PAGE_STREAMS)
        .map(|(name, parts)| {
            let mut places = String::new();
            for (i, (node, part, _, _)) in parts.iter().enumerate() {
                if i > 0 {
                    places.push_str("<br>");
                }
                let _ = write!(places, "{}: {}", escape(node), escape(part));
            }
            let clients: u64 = parts.iter().map(|p| p.2).sum();
            let bitrate = parts.iter().map(|p| p.3).max().unwrap_or(0);
            let local = parts.iter().any(|p| p.0 == me && p.1 != "relayed");
            let action = match edit && local {
                true => Cell::Html(format!(
                    "<form method=\"post\" action=\"/flotilla/console/restart/{}\"><button>Restart</button></form>",
                    escape(&name)
                )),
                false => Cell::text(""),
            };
            vec![
                Cell::text(&name),
                Cell::Html(places),
                Cell::text(clients),
                Cell::text(bitrate),
                action,
            ]
        })
        .collect();
    html.push_str(&table(
        "streams-table",
        &["Stream", "Where", "Clients", "Input kbit/s", ""],
        rows,
    ));
    if total > MAX_PAGE_STREAMS {
        let _ = write!(
            html,
            "<p>{} more streams (the streams API lists them all).</p>",
            total - MAX_PAGE_STREAMS
        );
    }
}

/// The cluster_ingest ownership table as this node computes it.
fn ingest(state: &ApiState, html: &mut String) {
    html.push_str("<h2 id=\"ingest\">cluster_ingest</h2>");
    let board = state.ingest.snapshot();
    let rows = board
        .rows
        .iter()
        .map(|row| {
            let (reason, local) = (row.reason.name(), row.local.name());
            vec![
                Cell::text(&row.stream),
                Cell::text(row.owner.as_deref().unwrap_or("none")),
                Cell::text(row.capturer.as_deref().unwrap_or("none")),
                Cell::text(row.epoch),
                Cell::text(reason),
                Cell::text(format!("{local} (epoch {})", row.local_epoch)),
            ]
        })
        .collect();
    let _ = write!(
        html,
        "<p>{}{}</p>",
        if board.settled { "settled" } else { "settling" },
        if board.restrained {
            ", held back (this node sees a minority of the cluster)"
        } else {
            ""
        }
    );
    html.push_str(&table(
        "ingest-table",
        &["Stream", "Owner", "Running on", "Epoch", "Why", "This node"],
        rows,
    ));
}

/// Each balancer's servers and recent decisions.
fn balancers(state: &ApiState, html: &mut String) {
    html.push_str("<h2 id=\"balancers\">Balancers</h2>");
    let names: Vec<String> = state
        .balancers
        .decision_counts()
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    if names.is_empty() {
        html.push_str("<p class=\"none\">none</p>");
    }
    for name in names {
        let Some(report) = state.balancers.report(&name) else {
            continue;
        };
        let _ = write!(
            html,
            "<h3>{} <small>(mode {})</small></h3>",
            escape(&name),
            escape(report["mode"].as_str().unwrap_or_default())
        );
        let text = |value: &serde_json::Value| match value {
            serde_json::Value::String(text) => text.clone(),
            serde_json::Value::Null => String::new(),
            other => other.to_string(),
        };
        let servers = report["servers"]
            .as_array()
            .map(|servers| {
                servers
                    .iter()
                    .map(|server| {
                        vec![
                            Cell::text(text(&server["server"])),
                            state_cell(server["state"] == "up", &text(&server["state"])),
                            Cell::text(text(&server["clients"])),
                            Cell::text(text(&server["output_kbit"])),
                            Cell::text(text(&server["metric"])),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        html.push_str(&table(
            &format!("balancer-{name}"),
            &["Server", "State", "Clients", "Output kbit/s", "Metric"],
            servers,
        ));
        let decisions = report["recent_decisions"]
            .as_array()
            .map(|decisions| {
                decisions
                    .iter()
                    .rev()
                    .take(MAX_PAGE_DECISIONS)
                    .map(|decision| {
                        vec![
                            Cell::text(crate::format::rfc3339(
                                decision["at_ms"].as_u64().unwrap_or(0),
                            )),
                            Cell::text(text(&decision["stream"])),
                            Cell::text(text(&decision["country"])),
                            Cell::text(text(&decision["outcome"])),
                        ]
                    })
                    .collect()
            })
            .unwrap_or_default();
        html.push_str(&table(
            &format!("decisions-{name}"),
            &["Time", "Stream", "Country", "Outcome"],
            decisions,
        ));
    }
}

/// This node's supervision tree.
fn actors(state: &ApiState, now_ms: u64, html: &mut String) {
    html.push_str("<h2 id=\"actors\">Actors of this node</h2>");
    match state.node.registry.tree(&ActorPath::root(), now_ms) {
        Some(root) => {
            html.push_str("<ul class=\"tree\" id=\"actor-tree\">");
            actor(&root, html);
            html.push_str("</ul>");
        }
        None => html.push_str("<p class=\"none\">the actor tree is not running</p>"),
    }
}

fn actor(info: &ActorInfo, html: &mut String) {
    let name = info.path.to_string();
    let leaf = name.rsplit('/').next().unwrap_or(&name).to_string();
    let _ = write!(
        html,
        "<li><b>{}</b> {} · restarts {} · mailbox {} · {}",
        escape(&leaf),
        escape(info.kind),
        info.restarts,
        info.mailbox_depth,
        escape(&info.summary)
    );
    if let Some(failure) = &info.last_failure {
        let _ = write!(html, " · <span class=\"down\">{}</span>", escape(failure));
    }
    if !info.children.is_empty() {
        html.push_str("<ul class=\"tree\">");
        for child in &info.children {
            actor(child, html);
        }
        html.push_str("</ul>");
    }
    html.push_str("</li>");
}
