//! What a scrape reads: the same shared state the JSON APIs read (the stream directory,
//! the session table, the mesh view, the ingest board, the balancers, the actor registry),
//! at the moment of the scrape, never through a mailbox.
//!
//! Label cardinality is bounded by what the node runs: `name` by its streams (at most
//! [`MAX_METRIC_STREAMS`] series per family; the rest are counted in
//! `flotilla_metrics_streams_omitted`), `protocol` by the three served, `peer` by the
//! configured and learnt peers, `balancer` by the config, `kind` by the actor kinds of the
//! code (never an actor's path: sessions are actors too). No label carries a client
//! address, a token or a user agent.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use flotilla_otp::registry::ActorPath;

use super::family::{Family, Labels};
use crate::http::api::ApiState;

/// Streams with their own series in one scrape; beyond, they are counted, not listed.
pub const MAX_METRIC_STREAMS: usize = 10_000;

/// Flussonic's families (its metric names, labels `server_id` and `name`): what
/// dashboards built for Flussonic's `/streams?format=openmetrics` query.
pub fn flussonic(state: &ApiState) -> Vec<Family> {
    let server_id = state.identity.id.to_string();
    let server = || -> Labels { vec![("server_id", server_id.clone())] };
    let stats = state.stats.snapshot();
    let mut families = vec![
        Family::gauge("server_cpu_usage", "Host CPU usage, percent.")
            .with(server(), f64::from(stats.cpu_usage)),
        Family::gauge("server_memory_usage", "Host memory usage, percent.")
            .with(server(), f64::from(stats.memory_usage)),
        Family::gauge("server_total_clients", "Viewer sessions on this node.")
            .with(server(), stats.total_clients as f64),
        Family::gauge(
            "server_online_streams",
            "Streams receiving media on this node.",
        )
        .with(server(), stats.online_streams as f64),
        Family::gauge("server_input_bitrate", "Input of all streams, kbit/s.")
            .with(server(), stats.input_kbit as f64),
        Family::gauge("server_output_bitrate", "Output to viewers, kbit/s.")
            .with(server(), stats.output_kbit as f64),
        Family::gauge(
            "server_bandwidth_usage",
            "Output against total_bandwidth, percent (0 without total_bandwidth).",
        )
        .with(server(), f64::from(stats.bandwidth_usage)),
        Family::gauge("server_opened_files", "File descriptors the process holds.")
            .with(server(), opened_files() as f64),
    ];
    let mut bitrate = Family::gauge("stream_bitrate", "Input bitrate, kbit/s.");
    let mut online = Family::gauge("stream_online_clients", "Viewers now.");
    let mut client_count = Family::gauge(
        "stream_client_count",
        "Viewers now (Flussonic's older name).",
    );
    let mut bytes_in = Family::untyped(
        "stream_bytes_in",
        "Bytes received since the stream started.",
    );
    let mut bytes_out = Family::untyped(
        "stream_bytes_out",
        "Bytes sent to viewers since the stream started.",
    );
    let mut retries = Family::untyped(
        "stream_retry_count",
        "Restarts of the stream by its supervisor.",
    );
    let streams = state.directory.all();
    let streams_node = ActorPath::root().child("streams");
    for live in streams.iter().take(MAX_METRIC_STREAMS) {
        let labels = vec![
            ("server_id", server_id.clone()),
            ("name", live.name.clone()),
        ];
        let counters = &live.counters;
        bitrate.push(
            labels.clone(),
            (counters.input_bitrate.load(Ordering::Relaxed) / 1000) as f64,
        );
        let clients = counters.clients.load(Ordering::Relaxed) as f64;
        online.push(labels.clone(), clients);
        client_count.push(labels.clone(), clients);
        bytes_in.push(
            labels.clone(),
            counters.bytes_in.load(Ordering::Relaxed) as f64,
        );
        bytes_out.push(
            labels.clone(),
            counters.bytes_out.load(Ordering::Relaxed) as f64,
        );
        let restarts = state
            .node
            .registry
            .get(&streams_node.child(&live.name))
            .map_or(0, |entry| entry.restarts());
        retries.push(labels, restarts as f64);
    }
    families.extend([bitrate, online, client_count, bytes_in, bytes_out, retries]);
    families
}

/// flotilla's own families: viewers by protocol, streams' liveness and frames, peers,
/// cluster_ingest, balancers, actors.
pub fn flotilla(state: &ApiState) -> Vec<Family> {
    let now_ms = state.node.runtime.wall_clock_ms();
    let streams = state.directory.all();
    let omitted = streams.len().saturating_sub(MAX_METRIC_STREAMS);
    let mut alive = Family::gauge(
        "flotilla_stream_alive",
        "1 while the stream receives media (relayed copies: 0).",
    );
    let mut frames = Family::counter("flotilla_stream_frames_in", "Frames received.");
    let mut relayed = Family::gauge(
        "flotilla_stream_relayed",
        "1 for a copy relayed from another node.",
    );
    let mut last_error = Family::gauge(
        "flotilla_stream_failed",
        "1 when the stream's last run ended with a failure (its reason: the actor tree).",
    );
    let streams_node = ActorPath::root().child("streams");
    for live in streams.iter().take(MAX_METRIC_STREAMS) {
        let labels = vec![("name", live.name.clone())];
        let running = !live.relay && live.is_alive(now_ms, crate::stats::ALIVE_WITHIN_MS);
        alive.push(labels.clone(), f64::from(u8::from(running)));
        relayed.push(labels.clone(), f64::from(u8::from(live.relay)));
        frames.push(
            labels.clone(),
            live.counters.frames_in.load(Ordering::Relaxed) as f64,
        );
        let failed = state
            .node
            .registry
            .get(&streams_node.child(&live.name))
            .is_some_and(|entry| entry.info(now_ms).last_failure.is_some());
        last_error.push(labels, f64::from(u8::from(failed)));
    }
    let open = state.stats.connections();
    let connections = Family::gauge(
        "flotilla_open_connections",
        "Client connections open now, by listener kind (TLS ones included).",
    )
    .with(
        vec![("listener", "http".into())],
        open.http.load(Ordering::Relaxed) as f64,
    )
    .with(
        vec![("listener", "rtmp".into())],
        open.rtmp.load(Ordering::Relaxed) as f64,
    );
    let stats = state.stats.snapshot();
    let mut families = vec![
        Family::counter(
            "flotilla_node_received_bytes",
            "Bytes every stream received since the node started (as of the last stats sample).",
        )
        .with(Vec::new(), stats.bytes_in as f64),
        Family::counter(
            "flotilla_node_sent_bytes",
            "Bytes sent to viewers since the node started (as of the last stats sample).",
        )
        .with(Vec::new(), stats.bytes_out as f64),
        connections,
        alive,
        relayed,
        frames,
        last_error,
        viewers(state),
        Family::gauge(
            "flotilla_metrics_streams_omitted",
            "Streams left out of this scrape's per-stream series (over the bound).",
        )
        .with(Vec::new(), omitted as f64),
    ];
    families.extend(peers(state, now_ms));
    families.extend(ingest(state));
    families.push(balancers(state));
    families.extend(event_sinks(state));
    families.push(log_lines_dropped(state));
    families.extend(held_requests(state));
    families.extend(webrtc(state));
    families.extend(actors(state, now_ms));
    families
}

/// LL-HLS requests held for a part or a playlist update, and those refused at the bound.
fn held_requests(state: &ApiState) -> Vec<Family> {
    vec![
        Family::gauge(
            "flotilla_llhls_held_requests",
            "LL-HLS requests held now for a part or a playlist update.",
        )
        .with(Vec::new(), state.held.count() as f64),
        Family::counter(
            "flotilla_llhls_held_refused",
            "LL-HLS requests answered 503 because the node held its bound of waiting requests.",
        )
        .with(Vec::new(), state.held.refused() as f64),
    ]
}

/// WebRTC peer connections by side, and what the node refused or ignored.
fn webrtc(state: &ApiState) -> Vec<Family> {
    let Some(side) = &state.webrtc else {
        return Vec::new();
    };
    let engine = &side.engine;
    let counters = engine.counters();
    let mut running = Family::gauge(
        "flotilla_webrtc_peer_connections",
        "WebRTC peer connections running: WHIP publishers and WHEP viewers.",
    );
    for kind in [crate::webrtc::Kind::Whip, crate::webrtc::Kind::Whep] {
        running = running.with(
            vec![("kind", kind.path_word().into())],
            engine.running(kind) as f64,
        );
    }
    vec![
        running,
        Family::counter(
            "flotilla_webrtc_refused",
            "WHIP/WHEP offers refused for the node's sake (no free port, too many connections).",
        )
        .with(Vec::new(), counters.refused.load(Ordering::Relaxed) as f64),
        Family::counter(
            "flotilla_webrtc_stray_datagrams",
            "Datagrams at a peer connection's port that were not its peer's (ignored).",
        )
        .with(
            Vec::new(),
            counters.stray_datagrams.load(Ordering::Relaxed) as f64,
        ),
    ]
}

/// Viewer sessions by stream and protocol.
fn viewers(state: &ApiState) -> Family {
    let mut counts: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    for session in state.sessions.all() {
        let protocol = crate::auth::access::protocol_name(session.protocol);
        *counts
            .entry((session.stream.clone(), protocol))
            .or_default() += 1;
    }
    let mut family = Family::gauge("flotilla_stream_viewers", "Viewer sessions by protocol.");
    let mut streams = 0;
    let mut last: Option<String> = None;
    for ((stream, protocol), count) in counts {
        if last.as_ref() != Some(&stream) {
            streams += 1;
            last = Some(stream.clone());
        }
        if streams > MAX_METRIC_STREAMS {
            break;
        }
        family.push(
            vec![("name", stream), ("protocol", protocol.into())],
            count as f64,
        );
    }
    family
}

fn peers(state: &ApiState, now_ms: u64) -> Vec<Family> {
    let mut up = Family::gauge(
        "flotilla_peer_up",
        "1 while the peer exchanged within its stale_timeout.",
    );
    let mut age = Family::gauge(
        "flotilla_peer_last_exchange_age_seconds",
        "Seconds since the last good exchange with the peer (absent: never).",
    );
    let mut clients = Family::gauge("flotilla_peer_clients", "Viewers the peer reported.");
    let mut rtt = Family::gauge(
        "flotilla_peer_rtt_seconds",
        "Round-trip time of the mesh connection to the peer at the last exchange this node called.",
    );
    if let Some(mesh) = &state.mesh {
        let view = mesh.view().read().unwrap_or_else(|p| p.into_inner());
        for (peer, peer_state) in view.peers(now_ms) {
            let labels = vec![("peer", peer.name.clone())];
            let is_up = peer_state == flotilla_cluster::mesh::view::PeerState::Alive;
            up.push(labels.clone(), f64::from(u8::from(is_up)));
            if peer.last_seen_ms != 0 {
                age.push(
                    labels.clone(),
                    now_ms.saturating_sub(peer.last_seen_ms) as f64 / 1000.0,
                );
            }
            if let Some(rtt_ms) = peer.rtt_ms {
                rtt.push(labels.clone(), rtt_ms as f64 / 1000.0);
            }
            clients.push(labels, peer.load.total_clients as f64);
        }
    }
    vec![up, age, clients, rtt]
}

fn ingest(state: &ApiState) -> Vec<Family> {
    let board = state.ingest.snapshot();
    let mut epoch = Family::gauge(
        "flotilla_ingest_epoch",
        "The current capture's epoch of a cluster_ingest stream (it grows with each move).",
    );
    let mut here = Family::gauge(
        "flotilla_ingest_captured_here",
        "1 when this node is the stream's current capturer.",
    );
    let me = state.identity.id.to_string();
    for row in board.rows.iter().take(MAX_METRIC_STREAMS) {
        let labels = vec![("name", row.stream.clone())];
        epoch.push(labels.clone(), row.epoch as f64);
        here.push(
            labels,
            f64::from(u8::from(row.capturer.as_deref() == Some(me.as_str()))),
        );
    }
    vec![epoch, here]
}

fn balancers(state: &ApiState) -> Family {
    let mut decisions = Family::counter(
        "flotilla_balancer_decisions",
        "Balancer answers by outcome: redirect, local (served here), all_down, all_full (503).",
    );
    for (name, counts) in state.balancers.decision_counts() {
        for (outcome, count) in counts {
            decisions.push(
                vec![("balancer", name.clone()), ("outcome", outcome.into())],
                count as f64,
            );
        }
    }
    decisions
}

fn log_lines_dropped(state: &ApiState) -> Family {
    let mut dropped = Family::counter(
        "flotilla_log_lines_dropped",
        "Access or session log lines dropped because the disk fell behind.",
    );
    if let Some(log) = &state.access_log {
        dropped.push(vec![("log", "access".into())], log.dropped() as f64);
    }
    if let Some(count) = state.sessions.log_dropped() {
        dropped.push(vec![("log", "session".into())], count as f64);
    }
    dropped
}

fn event_sinks(state: &ApiState) -> Vec<Family> {
    let mut queued = Family::gauge(
        "flotilla_event_sink_queued",
        "Events waiting for delivery, by event_sink and kind.",
    );
    let mut delivered = Family::counter(
        "flotilla_event_sink_delivered",
        "Events a webhook accepted (2xx).",
    );
    let mut dropped = Family::counter(
        "flotilla_event_sink_dropped",
        "Events dropped because a sink's queue was full (its receiver down or slow).",
    );
    let mut failed = Family::counter(
        "flotilla_event_sink_failed_attempts",
        "Webhook POSTs that failed (status, connection or timeout) and were retried.",
    );
    for stats in state.events.sink_stats() {
        let labels = || vec![("sink", stats.sink.clone()), ("kind", stats.kind.into())];
        queued.push(labels(), stats.queued as f64);
        delivered.push(labels(), stats.delivered as f64);
        dropped.push(labels(), stats.dropped as f64);
        failed.push(labels(), stats.failed_attempts as f64);
    }
    vec![queued, delivered, dropped, failed]
}

fn actors(state: &ApiState, now_ms: u64) -> Vec<Family> {
    let mut by_kind: BTreeMap<&'static str, (u64, u64, u64)> = BTreeMap::new();
    for info in state.node.registry.list(now_ms) {
        let entry = by_kind.entry(info.kind).or_default();
        entry.0 += 1;
        entry.1 += info.restarts;
        entry.2 = entry.2.max(info.mailbox_depth);
    }
    let mut count = Family::gauge(
        "flotilla_actors",
        "Actors in the supervision tree, by kind.",
    );
    let mut restarts = Family::counter(
        "flotilla_actor_restarts",
        "Restarts by their supervisors, by kind.",
    );
    let mut mailbox = Family::gauge(
        "flotilla_actor_mailbox_depth_max",
        "The deepest mailbox among the actors of a kind.",
    );
    for (kind, (actors, restarted, deepest)) in by_kind {
        let labels = vec![("kind", kind.to_string())];
        count.push(labels.clone(), actors as f64);
        restarts.push(labels.clone(), restarted as f64);
        mailbox.push(labels, deepest as f64);
    }
    vec![count, restarts, mailbox]
}

/// File descriptors the process holds (Linux's /proc; 0 elsewhere).
fn opened_files() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |dir| dir.count())
}
