//! Restreaming other clusters (`source` on an edge), with real nodes on loopback: the
//! edge offers a source cluster's streams on demand without joining it, reaches the
//! cluster through any of its nodes, filters names with only/except, and keeps its
//! viewers playing when the origin it relays from dies and another source has the stream.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::play::{ffmpeg_plays, media_playlist, stream_stats, watch_sequences};
use common::*;
use serde_json::Value;

const EDGE_KEY: &str = "source-test-edge-key-0123456789abcdef";
const KEY_A: &str = "source-test-cluster-a-0123456789abcdef";
const KEY_B: &str = "source-test-cluster-b-0123456789abcdef";

/// A stream with 1 s segments from the built-in test source.
fn test_stream(name: &str) -> String {
    format!("stream {name} {{ input test://; segment_duration 1; }}\n")
}

/// The edge's `/cluster/sources` answer.
fn sources(edge: SocketAddr) -> Option<Value> {
    let (status, _, body) = http_get(edge, "/streamer/api/v3/cluster/sources", &[]).ok()?;
    (status == 200).then(|| serde_json::from_str(&body).ok())?
}

/// Two independent origins have `live/tv`; the edge restreams both (`source` twice): its
/// viewers play from the first, and when that one is killed (-9) the edge takes the
/// stream from the second, the viewers staying connected and the playlist's media
/// sequence never going back. `except` hides a stream, and the edge joins neither cluster.
#[test]
fn two_sources_give_origin_ha_and_viewers_play_across_the_loss_of_one() {
    let (port, rtmp) = (free_port(), free_port());
    let origin =
        |key: &str, extra: &str| format!("cluster_key {key};\n{}{extra}", test_stream("live/tv"));
    let mut one = member(
        41,
        "one",
        port,
        rtmp,
        &origin(KEY_A, &test_stream("live/secret")),
    );
    let _two = member(42, "two", port, rtmp, &origin(KEY_B, ""));
    let edge_config = format!(
        "cluster_key {EDGE_KEY};\n\
         source 127.0.0.41:{port} {{ only live/*; except live/secret; cluster_key {KEY_A}; clients_timeout 5; }}\n\
         source 127.0.0.42:{port} {{ cluster_key {KEY_B}; }}\n"
    );
    let edge = member(43, "edge", port, rtmp, &edge_config);

    // Offered before anyone plays it (on demand), and only what the rules take.
    let listed = |name: &str| -> Option<Value> {
        let (_, _, body) = http_get(edge.http, "/streamer/api/v3/streams", &[]).ok()?;
        let streams: Value = serde_json::from_str(&body).ok()?;
        streams["streams"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
    };
    let offered = poll_until(Duration::from_secs(20), || listed("live/tv"))
        .expect("the edge lists the sources' stream before anyone plays it");
    assert_eq!(offered["named_by"], "remote", "{offered}");
    assert_eq!(
        offered["stats"]["alive"], false,
        "not running yet: {offered}"
    );
    assert!(
        listed("live/secret").is_none(),
        "`except` hides live/secret"
    );

    poll_until(Duration::from_secs(30), || {
        media_playlist(edge.http, "live/tv")
    })
    .expect("the edge restreams live/tv");
    // A node no `peer` line names is `HOSTNAME:PORT`.
    let one_id = format!("one:{port}");
    assert_eq!(
        stream_stats(edge.http, "live/tv").unwrap()["relayed_from"].as_str(),
        Some(one_id.as_str()),
        "the first source that has it"
    );
    let (status, _, _) = http_get(edge.http, "/live/secret/index.m3u8", &[]).unwrap();
    assert_eq!(status, 404, "`except` hides live/secret");
    let listed = sources(edge.http).expect("the sources API");
    assert_eq!(listed["sources"][0]["health"], "answering", "{listed}");
    assert_eq!(listed["sources"][1]["health"], "answering", "{listed}");
    let (_, _, peers) = http_get(one.http, "/streamer/api/v3/cluster/peers", &[]).unwrap();
    let peers: Value = serde_json::from_str(&peers).unwrap();
    assert_eq!(
        peers["peers"].as_array().map(Vec::len),
        Some(0),
        "the edge is no peer of the origin's cluster: {peers}"
    );

    let url = format!("http://{}/live/tv/index.m3u8", edge.http);
    let player = std::thread::spawn(move || ffmpeg_plays(&url, 20));
    let mut sequences = Vec::new();
    watch_sequences(edge.http, "live/tv", 5, &mut sequences);
    drop(one.node.take()); // kill -9
    watch_sequences(edge.http, "live/tv", 15, &mut sequences);
    assert!(
        sequences.windows(2).all(|w| w[1] >= w[0]),
        "the media sequence went back: {sequences:?}"
    );
    assert!(
        sequences.last() > sequences.first(),
        "the playlist moves on: {sequences:?}"
    );
    let from = stream_stats(edge.http, "live/tv").unwrap()["relayed_from"].clone();
    assert_eq!(
        from.as_str(),
        Some(format!("two:{port}").as_str()),
        "follows the second source"
    );
    let (played, errors) = player.join().unwrap();
    assert!(
        played,
        "ffmpeg across the loss of a source: {errors}\n{}",
        edge.node.as_ref().map(Node::log_tail).unwrap_or_default()
    );
}

/// A source is a whole cluster, reached through any of its nodes: the edge names node a1,
/// the stream runs on a2, and the edge still offers it after a1 dies (it asks a2, which
/// a1's catalog named). The edge shares the cluster's key (as Flussonic's docs set it up)
/// and is still no peer of it.
#[test]
fn a_source_cluster_is_reached_through_any_of_its_nodes() {
    let (port, rtmp) = (free_port(), free_port());
    let shared = shared_config(port, KEY_A, &[51, 52]);
    let mut a1 = member(51, "a1", port, rtmp, &shared);
    let a2 = member_with(52, "a2", port, rtmp, &shared, &test_stream("live/cam"));
    let edge_config = format!("cluster_key {KEY_A};\nsource 127.0.0.51:{port};\n");
    let edge = member(53, "edge", port, rtmp, &edge_config);

    poll_until(Duration::from_secs(30), || {
        media_playlist(edge.http, "live/cam")
    })
    .expect("the edge restreams a2's stream through a1");
    assert_eq!(
        stream_stats(edge.http, "live/cam").unwrap()["relayed_from"].as_str(),
        Some(a2.http.to_string().as_str())
    );
    let probe = ffprobe_streams(&format!("http://{}/live/cam/index.m3u8", edge.http));
    assert!(probe.contains("h264"), "ffprobe through the edge: {probe}");

    drop(a1.node.take()); // kill -9 the node the config names
    let a2_address = a2.http.to_string();
    let answered_by = poll_until(Duration::from_secs(20), || {
        let listed = sources(edge.http)?;
        let source = &listed["sources"][0];
        (source["health"] == "answering" && source["answered_by"] == a2_address.as_str())
            .then(|| source.clone())
    });
    assert!(
        answered_by.is_some(),
        "the edge asks a2 once a1 is gone: {:?}",
        sources(edge.http)
    );
    let (_, _, peers) = http_get(a2.http, "/streamer/api/v3/cluster/peers", &[]).unwrap();
    assert!(
        !peers.contains(&edge.http.ip().to_string()),
        "the edge is no peer of the cluster: {peers}"
    );
    let (played, errors) = ffmpeg_plays(&format!("http://{}/live/cam/index.m3u8", edge.http), 3);
    assert!(played, "a new viewer after a1's loss: {errors}");
}
