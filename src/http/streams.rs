//! `GET /streamer/api/v3/streams` and `GET /streamer/api/v3/config/stats`: what runs here
//! and how loaded the node is, in Flussonic's field names (bitrates in kbit/s).

use std::sync::atomic::Ordering;

use axum::Json;
use axum::extract::{RawQuery, State};
use serde_json::{Value, json};

use flotilla_cluster::source::book::SourceHealth;

use super::api::ApiState;
use crate::stats::ALIVE_WITHIN_MS;

pub async fn node_stats(State(state): State<ApiState>) -> Json<Value> {
    Json(serde_json::to_value(state.stats.snapshot()).unwrap_or(Value::Null))
}

/// The streams list; as OpenMetrics (Flussonic's metric names) when the request asks so
/// (`?format=openmetrics`, or `Accept: application/openmetrics-text`).
pub async fn list(
    State(state): State<ApiState>,
    headers: axum::http::HeaderMap,
    RawQuery(query): RawQuery,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    if super::metrics::wants_openmetrics(&headers, query.as_deref()) {
        return super::metrics::streams(&state);
    }
    list_json(&state).into_response()
}

fn list_json(state: &ApiState) -> Json<Value> {
    let now_ms = state.node.runtime.wall_clock_ms();
    let config = state.config.get();
    let mut streams: Vec<Value> = config
        .streams
        .iter()
        .map(|stream| {
            let live = state.directory.get(&stream.name);
            let disabled = stream.options.disabled == Some(true);
            let inputs = stream
                .options
                .inputs
                .iter()
                .map(|i| json!({ "url": crate::media::input::redacted(&i.url) }))
                .collect();
            let mut entry = entry(
                state,
                &stream.name,
                !stream.ondemand,
                inputs,
                live,
                disabled,
                now_ms,
            );
            entry["named_by"] = json!("config");
            entry
        })
        .collect();
    // Streams running here without a config entry: published to a template, relayed
    // from another node.
    let mut listed: std::collections::HashSet<String> =
        config.streams.iter().map(|s| s.name.clone()).collect();
    for live in state.directory.all() {
        if !listed.insert(live.name.clone()) {
            continue;
        }
        let name = live.name.clone();
        // Flussonic's `named_by`: `remote` came from another server, `user` was
        // published to a template.
        let named_by = if live.relay { "remote" } else { "user" };
        let mut entry = entry(state, &name, true, Vec::new(), Some(live), false, now_ms);
        entry["named_by"] = json!(named_by);
        streams.push(entry);
    }
    // Streams the sources offer that no viewer asked for yet: available on demand.
    if let Some(sources) = &state.sources {
        let book = sources.book();
        for source in book.sources() {
            if book.health(source, now_ms) == SourceHealth::Stale {
                continue;
            }
            for name in source.streams.keys() {
                if !listed.insert(name.clone()) {
                    continue;
                }
                let mut entry = entry(state, name, false, Vec::new(), None, false, now_ms);
                entry["named_by"] = json!("remote");
                entry["source"] = json!(source.name);
                streams.push(entry);
            }
        }
    }
    let count = streams.len();
    Json(json!({ "streams": streams, "estimated_count": count }))
}

/// One stream's entry: its config and what runs here.
fn entry(
    state: &ApiState,
    name: &str,
    is_static: bool,
    inputs: Vec<Value>,
    live: Option<std::sync::Arc<crate::media::live::LiveStream>>,
    disabled: bool,
    now_ms: u64,
) -> Value {
    let alive = live
        .as_ref()
        .is_some_and(|l| l.is_alive(now_ms, ALIVE_WITHIN_MS));
    let counter = |read: &dyn Fn(&crate::media::live::LiveCounters) -> u64| {
        live.as_ref().map_or(0, |l| read(&l.counters))
    };
    let last_frame_ms = counter(&|c| c.last_frame_ms.load(Ordering::Relaxed));
    let status = match (alive, disabled) {
        (_, true) => "disabled",
        (true, _) => "running",
        (false, _) if last_frame_ms == 0 => "waiting",
        (false, _) => "error",
    };
    let relayed = live.as_ref().is_some_and(|l| l.relay);
    json!({
        "name": name,
        "static": is_static,
        "inputs": inputs,
        "stats": {
            "alive": alive,
            "status": status,
            "input_bitrate": counter(&|c| c.input_bitrate.load(Ordering::Relaxed)) / 1000,
            "online_clients": counter(&|c| c.clients.load(Ordering::Relaxed)),
            "bytes_in": counter(&|c| c.bytes_in.load(Ordering::Relaxed)),
            "bytes_out": counter(&|c| c.bytes_out.load(Ordering::Relaxed)),
            "last_frame_at": (last_frame_ms != 0).then_some(last_frame_ms),
            "running_on": running_on(state, name, alive && !relayed),
            "epoch": state.ingest.row(name).map(|row| row.epoch),
            "active_input": live.as_ref().and_then(|l| l.active_input()),
            // flotilla: media between nodes. `relayed_from`: the node this copy follows;
            // `relay_subscribers`: nodes relaying it from here, `relay_bytes_out` what
            // they were sent.
            "relayed": relayed,
            "relayed_from": live.as_ref().and_then(|l| l.relayed_from()),
            "relay_subscribers": counter(&|c| c.relay_subscribers.load(Ordering::Relaxed)),
            "relay_bytes_out": counter(&|c| c.relay_bytes_out.load(Ordering::Relaxed)),
            "media_info": { "tracks": live.as_ref().map(|l| tracks(l)).unwrap_or_default() },
        },
    })
}

/// A running stream's tracks as Flussonic's `media_info.tracks` lists them: `track_id`
/// (`v1`, `a1`, `a2`…), content, codec (Flussonic's names: `h264`, `hevc`, `mp2v`, `aac`,
/// `mp2a`, `ac3`, `eac3`), picture size or sample rate and channels, language, and bitrate
/// in kbit/s (the stream's input bitrate shared by the bytes each track brought); flotilla
/// adds `codec_string` (RFC 6381, as HLS's CODECS says it).
fn tracks(live: &crate::media::live::LiveStream) -> Vec<Value> {
    let counters = &live.counters;
    let total = counters.bytes_in.load(Ordering::Relaxed).max(1);
    let bitrate = counters.input_bitrate.load(Ordering::Relaxed);
    let share = |bytes: u64| bitrate.saturating_mul(bytes) / total / 1000;
    let facts = live.track_facts();
    let mut audio_index = 0;
    live.program()
        .iter()
        .map(|(number, track)| {
            let bytes = counters
                .track_bytes_in
                .get(usize::from(number))
                .map_or(0, |b| b.load(Ordering::Relaxed));
            let known = facts.get(number).filter(|f| f.codec == track.codec);
            let codec_string = known.and_then(|f| f.codec_string.clone());
            if track.codec.is_video() {
                json!({
                    "track_id": "v1",
                    "content": "video",
                    "codec": flussonic_codec(track.codec),
                    "codec_string": codec_string,
                    "width": known.and_then(|f| f.width),
                    "height": known.and_then(|f| f.height),
                    "bitrate": share(bytes),
                })
            } else {
                audio_index += 1;
                json!({
                    "track_id": format!("a{audio_index}"),
                    "content": "audio",
                    "codec": flussonic_codec(track.codec),
                    "codec_string": codec_string,
                    "sample_rate": known.and_then(|f| f.sample_rate),
                    "channels": known.and_then(|f| f.channels),
                    "language": track.language.map(|l| l.as_str().to_string()),
                    "bitrate": share(bytes),
                })
            }
        })
        .collect()
}

/// Flussonic's name of a codec in `media_info`.
fn flussonic_codec(codec: crate::media::frame::Codec) -> &'static str {
    use crate::media::frame::Codec;
    match codec {
        Codec::H264 => "h264",
        Codec::H265 => "hevc",
        Codec::Mpeg2Video => "mp2v",
        Codec::Aac => "aac",
        Codec::MpegAudio => "mp2a",
        Codec::Ac3 => "ac3",
        Codec::Eac3 => "eac3",
        Codec::Opus => "opus",
    }
}

/// Nodes (by identity, `host:port`) running `stream`: this node when frames flow here; for a cluster_ingest
/// stream, its current capturer wherever it is.
fn running_on(state: &ApiState, stream: &str, alive_here: bool) -> Vec<String> {
    if let Some(row) = state.ingest.row(stream) {
        return row.capturer.into_iter().collect();
    }
    if alive_here {
        vec![state.identity.id.clone()]
    } else {
        Vec::new()
    }
}

/// Most sessions listed (the newest first); the total is reported beside them.
const MAX_LISTED_SESSIONS: usize = 1_000;

/// `GET /streamer/api/v3/sessions`: viewer sessions, newest first, bounded.
pub async fn sessions(State(state): State<ApiState>) -> Json<Value> {
    let mut all = state.sessions.all();
    let total = all.len();
    all.sort_by_key(|session| std::cmp::Reverse(session.opened_ms));
    let sessions: Vec<Value> = all
        .iter()
        .take(MAX_LISTED_SESSIONS)
        .map(|session| {
            json!({
                "id": session.id,
                "stream": session.stream,
                "protocol": session.protocol,
                "ip": session.ip.map(|ip| ip.to_string()),
                "user_agent": session.user_agent,
                "opened_at": session.opened_ms,
                "last_seen_at": session.last_seen_ms.load(Ordering::Relaxed),
                "bytes": session.bytes.load(Ordering::Relaxed),
            })
        })
        .collect();
    Json(json!({ "sessions": sessions, "estimated_count": total }))
}
