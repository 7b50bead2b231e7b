//! Media between real nodes: a node serves a stream another node has by relaying it over
//! the mesh (HLS, HTTP-MPEG-TS and RTMP viewers alike), from one upstream per stream
//! whatever its viewers, with the origin's segments byte for byte; and a relay follows
//! the stream when its owner changes, its viewers staying connected.

mod common;

use std::time::Duration;

use common::ffmpeg::Ffmpeg;
use common::play::{ffmpeg_plays, media_playlist, stream_stats, watch_sequences};
use common::*;
use flotilla::rtmp::client::RtmpClient;
use flotilla::rtmp::flv::Depacketizer;
use serde_json::Value;

const KEY: &str = "relay-test-cluster-key-0123456789abcdef";

/// An origin and two edges (`cluster_play relay`): viewers on the edges play the origin's
/// stream through them, the origin carries one upstream per edge whatever the edges'
/// viewers, and every node serves the same playlist and the same segment bytes, so a
/// viewer may take its playlist from one node and its segments from another.
#[test]
fn edges_serve_the_origins_hls_byte_for_byte_from_one_upstream_each() {
    let (port, rtmp) = (free_port(), free_port());
    let config = shared_config(port, KEY, &[21, 22, 23]) + "cluster_play relay;\n";
    let origin = member(21, "origin", port, rtmp, &config);
    let edge1 = member(22, "edge1", port, rtmp, &config);
    let edge2 = member(23, "edge2", port, rtmp, &config);
    let _publisher = Ffmpeg::publish_clip(&format!("rtmp://{}/live/news", origin.rtmp));
    poll_until(Duration::from_secs(20), || {
        media_playlist(origin.http, "live/news")
    })
    .expect("the origin has the stream");

    // Edges answer 200 (a relay), never 302, once they know the origin has it.
    for edge in [&edge1, &edge2] {
        poll_until(Duration::from_secs(20), || {
            let (status, head, _) = http_get(edge.http, "/live/news/index.m3u8", &[]).ok()?;
            assert_ne!(status, 302, "relay mode never redirects: {head}");
            (status == 200).then_some(())
        })
        .expect("the edge relays the stream");
    }

    // Many viewers on each edge: still one upstream per edge at the origin.
    let viewers: Vec<_> = (0..16)
        .map(|i| {
            let at = if i % 2 == 0 { edge1.http } else { edge2.http };
            std::thread::spawn(move || {
                http_get(at, "/live/news/tracks-v1a1/mono.m3u8", &[])
                    .map(|(status, head, _)| (status == 200).then_some(()).ok_or(head))
            })
        })
        .collect();
    for viewer in viewers {
        let answer = viewer.join().unwrap();
        assert!(
            matches!(answer, Ok(Ok(()))),
            "{answer:?}\n{}",
            edge1.node.as_ref().map(Node::log_tail).unwrap_or_default()
        );
    }
    let subscribers =
        stream_stats(origin.http, "live/news").expect("listed")["relay_subscribers"].as_u64();
    assert_eq!(subscribers, Some(2), "one upstream per edge");
    let edge_stats = stream_stats(edge1.http, "live/news").expect("listed");
    assert_eq!(edge_stats["relayed"], true, "{edge_stats}");
    assert_eq!(
        edge_stats["relayed_from"].as_str(),
        Some(origin.http.to_string().as_str()),
        "{edge_stats}"
    );

    // The cluster overview on the origin shows who captures and who relays.
    let overview = poll_until(Duration::from_secs(10), || {
        let (_, _, body) = http_get(origin.http, "/streamer/api/v3/cluster/streams", &[]).ok()?;
        let overview: Value = serde_json::from_str(&body).ok()?;
        let nodes = overview["streams"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == "live/news")?["nodes"]
            .as_array()?
            .clone();
        let relaying = nodes.iter().filter(|n| n["relayed"] == true).count();
        let capturing = nodes.iter().filter(|n| n["alive"] == true).count();
        (relaying == 2 && capturing == 1).then_some(nodes)
    });
    assert!(
        overview.is_some(),
        "the origin's overview shows both relays"
    );

    // The same playlist everywhere: each segment has the same number and the same bytes
    // on every node (a segment sealed after the edges subscribed, and the older ones
    // they received whole).
    let numbered = |(sequence, names): (u64, Vec<String>)| {
        names
            .into_iter()
            .enumerate()
            .map(move |(i, name)| (name, sequence + i as u64))
    };
    let (on_origin, on_edge) = poll_until(Duration::from_secs(20), || {
        let origin_list = media_playlist(origin.http, "live/news")?;
        let edge_list = media_playlist(edge1.http, "live/news")?;
        // Wait until the edge has a segment it muxed itself (two cuts after subscribing).
        (edge_list.1.len() >= 3).then_some((origin_list, edge_list))
    })
    .expect("playlists on both");
    let origin_numbers: std::collections::BTreeMap<_, _> = numbered(on_origin).collect();
    let mut compared = 0;
    for (name, number) in numbered(on_edge) {
        let Some(origin_number) = origin_numbers.get(&name) else {
            continue;
        };
        assert_eq!(*origin_number, number, "{name} numbered alike");
        let path = format!("/live/news/tracks-v1a1/{name}");
        let (status, from_origin) = http_get_bytes(origin.http, &path).unwrap();
        assert_eq!(status, 200);
        for edge in [edge1.http, edge2.http] {
            let (status, from_edge) = http_get_bytes(edge, &path).unwrap();
            assert_eq!(status, 200, "{name} on {edge}");
            assert!(
                from_edge == from_origin,
                "{name}: {} bytes on {edge}, {} on the origin",
                from_edge.len(),
                from_origin.len()
            );
        }
        compared += 1;
    }
    assert!(compared >= 2, "segments compared: {compared}");

    // Real players through the edges: HLS and HTTP-MPEG-TS.
    let probed = ffprobe_streams(&format!("http://{}/live/news/index.m3u8", edge2.http));
    assert!(
        probed.contains("h264") && probed.contains("aac"),
        "{probed}"
    );
    let (played, errors) = ffmpeg_plays(&format!("http://{}/live/news/index.m3u8", edge1.http), 4);
    assert!(played, "ffmpeg through the edge: {errors}");
    let (played, errors) = ffmpeg_plays(&format!("http://{}/live/news/mpegts", edge2.http), 3);
    assert!(played, "HTTP-MPEG-TS through the edge: {errors}");
    assert_eq!(
        stream_stats(origin.http, "live/news").unwrap()["relay_subscribers"].as_u64(),
        Some(2),
        "still one upstream per edge"
    );
}

/// Plays `live/NAME` over RTMP on `member` until the first frame arrives.
fn rtmp_player(member: &Member, name: &str) -> (tokio::runtime::Runtime, RtmpClient, Depacketizer) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut depacketizer = Depacketizer::new();
    let log = || member.node.as_ref().map(Node::log_tail).unwrap_or_default();
    let client = runtime.block_on(async {
        let mut player = RtmpClient::connect(&member.rtmp, "live").await.unwrap();
        if let Err(error) = player.play(name).await {
            panic!("the relay does not play: {error:?}\n{}", log());
        }
        player
            .next_frame(&mut depacketizer)
            .await
            .expect("a frame through the relay");
        player
    });
    (runtime, client, depacketizer)
}

/// The `location` of a 302 (lower-cased header name).
fn location(head: &str) -> Option<String> {
    head.lines().find_map(|line| {
        line.to_ascii_lowercase()
            .strip_prefix("location: ")
            .map(str::to_string)
    })
}

/// RTMP players of a peer's stream are relayed from its owner (HTTP viewers elsewhere
/// are still sent to the owner, never to a copy: `cluster_play` is `redirect` by
/// default), and a relay follows its stream when the publisher goes and comes back: the
/// player stays connected and frames flow again.
#[test]
fn rtmp_players_are_relayed_from_the_owner_and_the_relay_follows_the_stream() {
    let (port, rtmp) = (free_port(), free_port());
    let config = shared_config(port, KEY, &[4, 5, 6]);
    let a = member(4, "a", port, rtmp, &config);
    let b = member(5, "b", port, rtmp, &config);
    let c = member(6, "c", port, rtmp, &config);
    let publisher = Ffmpeg::publish_clip(&format!("rtmp://{}/live/news", a.rtmp));
    poll_until(Duration::from_secs(20), || {
        let (status, head, _) = http_get(b.http, "/live/news/index.m3u8", &[]).ok()?;
        (status == 302).then(|| location(&head)).flatten()
    })
    .expect("b learns that a has the stream");
    let (b_runtime, mut b_player, mut b_frames) = rtmp_player(&b, "news");
    let b_stats = stream_stats(b.http, "live/news").expect("b lists its copy");
    assert_eq!(
        b_stats["relayed_from"].as_str(),
        Some(a.http.to_string().as_str())
    );
    // Nobody is sent to a copy: c's viewers go to the owner, however often c asks.
    for _ in 0..10 {
        let (status, head, _) = http_get(c.http, "/live/news/index.m3u8", &[]).unwrap();
        assert_eq!(status, 302, "{head}");
        let to = location(&head).unwrap();
        assert!(to.starts_with(&format!("http://{}/", a.http)), "{to}");
    }

    // The publisher goes and comes back (to the same owner): b's player stays on, and
    // frames flow again through the same relay.
    drop(publisher);
    std::thread::sleep(Duration::from_secs(2));
    let _republished = Ffmpeg::publish_clip(&format!("rtmp://{}/live/news", a.rtmp));
    b_runtime.block_on(async {
        // What was queued before the publisher left drains first; then the pause (no
        // frame for a second); then frames again, through the same connection.
        let mut silent_seconds = 0;
        let mut after_pause = 0;
        while after_pause < 50 {
            assert!(
                silent_seconds < 30,
                "no frames after the publisher came back"
            );
            let paused = silent_seconds > 0;
            match tokio::time::timeout(Duration::from_secs(1), b_player.next_frame(&mut b_frames))
                .await
            {
                Err(_) => silent_seconds += 1,
                Ok(frame) => {
                    frame.expect("the player stays connected");
                    if paused {
                        after_pause += 1;
                    }
                }
            }
        }
    });
}

/// The capturer of a cluster_ingest stream is killed (`kill -9`) while viewers play it
/// through a relaying node: the relay follows the new capturer, ffmpeg plays across the
/// failover without a fatal error, and the playlist's media sequence never goes back.
/// (The edge declares no cluster_ingest stream, so it never captures `cam` itself.)
#[test]
fn viewers_of_a_relaying_node_play_across_a_failover_of_the_capturer() {
    let (port, rtmp) = (free_port(), free_port());
    let shared = shared_config(port, KEY, &[31, 32, 33]) + "cluster_play relay;\n";
    let cam = format!(
        "stream cam {{ input test://; segment_duration 1; cluster_ingest capture_at=127.0.0.31:{port}; }}\n"
    );
    let mut a = member_with(31, "a", port, rtmp, &shared, &cam);
    let b = member_with(32, "b", port, rtmp, &shared, &cam);
    let edge = member(33, "edge", port, rtmp, &shared);
    poll_until(Duration::from_secs(30), || media_playlist(edge.http, "cam"))
        .expect("the edge relays cam");
    let a_id = a.http.to_string();
    assert_eq!(
        stream_stats(edge.http, "cam").unwrap()["relayed_from"].as_str(),
        Some(a_id.as_str())
    );
    let url = format!("http://{}/cam/index.m3u8", edge.http);
    let player = std::thread::spawn(move || ffmpeg_plays(&url, 20));
    let mut sequences = Vec::new();
    watch_sequences(edge.http, "cam", 5, &mut sequences);
    drop(a.node.take()); // kill -9
    watch_sequences(edge.http, "cam", 15, &mut sequences);
    assert!(
        sequences.windows(2).all(|w| w[1] >= w[0]),
        "the media sequence went back: {sequences:?}"
    );
    let from = stream_stats(edge.http, "cam").unwrap()["relayed_from"].clone();
    assert_eq!(
        from.as_str(),
        Some(b.http.to_string().as_str()),
        "follows b"
    );
    assert!(
        sequences.last() > sequences.first(),
        "the playlist moves on: {sequences:?}"
    );
    let (played, errors) = player.join().unwrap();
    assert!(played, "ffmpeg across the failover: {errors}");
}

/// The same with the relaying node declaring the stream too, and no other node left that
/// could capture it (a third node keeps the majority but declares no such stream): the
/// relaying node becomes the capturer, its capture goes on from the relayed copy's
/// window, and its viewers' playlist continues.
#[test]
fn a_relaying_node_that_becomes_the_capturer_keeps_its_viewers_playlist() {
    let (port, rtmp) = (free_port(), free_port());
    let config = shared_config(port, KEY, &[35, 36, 37]) + "cluster_play relay;\n";
    let cam = format!(
        "stream cam {{ input test://; segment_duration 1; cluster_ingest capture_at=127.0.0.35:{port}; }}\n"
    );
    let mut a = member_with(35, "a", port, rtmp, &config, &cam);
    let edge = member_with(36, "edge", port, rtmp, &config, &cam);
    let _third = member(37, "third", port, rtmp, &config);
    poll_until(Duration::from_secs(30), || {
        let playlist = media_playlist(edge.http, "cam")?;
        (stream_stats(edge.http, "cam")?["relayed"] == true).then_some(playlist)
    })
    .unwrap_or_else(|| {
        panic!(
            "the edge relays cam from a: {:?} {:?}\n{}",
            stream_stats(edge.http, "cam"),
            http_get(edge.http, "/cam/index.m3u8", &[]),
            edge.node.as_ref().map(Node::log_tail).unwrap_or_default()
        )
    });
    let url = format!("http://{}/cam/index.m3u8", edge.http);
    let player = std::thread::spawn(move || ffmpeg_plays(&url, 20));
    let mut sequences = Vec::new();
    for step in 0..100 {
        if step == 25 {
            drop(a.node.take()); // kill -9: the edge is the only node left
        }
        if let Some((sequence, _)) = media_playlist(edge.http, "cam") {
            sequences.push(sequence);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        sequences.windows(2).all(|w| w[1] >= w[0]),
        "the media sequence went back: {sequences:?}"
    );
    let stats = stream_stats(edge.http, "cam").unwrap();
    assert_eq!(
        stats["alive"],
        true,
        "the edge captures cam now: {stats}\n{}",
        edge.node.as_ref().map(Node::log_tail).unwrap_or_default()
    );
    assert_eq!(
        stats["relayed"], false,
        "the edge captures cam now: {stats}"
    );
    assert_eq!(stats["alive"], true, "{stats}");
    assert!(sequences.last() > sequences.first(), "{sequences:?}");
    let (played, errors) = player.join().unwrap();
    assert!(played, "ffmpeg across the takeover: {errors}");
}

/// The sealed part of an LL-HLS playlist: everything up to its last complete segment
/// (the parts of the segment being written, the preload hint and the rendition reports
/// move from one moment to the next).
fn sealed_part(playlist: &str) -> Option<String> {
    let end = playlist.rfind(".m4s\n")? + ".m4s\n".len();
    Some(playlist[..end].to_string())
}

/// An edge relaying a stream serves the origin's LL-HLS playlists and DASH manifest
/// text for text, and its init segments, segments and parts byte for byte: a viewer
/// behind a load balancer may take each request from either node.
#[test]
fn edges_serve_the_origins_ll_hls_and_dash_byte_for_byte() {
    let (port, rtmp) = (free_port(), free_port());
    let config = shared_config(port, KEY, &[25, 26]) + "cluster_play relay;\n";
    let origin = member(25, "origin", port, rtmp, &config);
    let edge = member(26, "edge", port, rtmp, &config);
    let _publisher = Ffmpeg::publish_clip(&format!("rtmp://{}/live/ll", origin.rtmp));
    for at in [origin.http, edge.http] {
        poll_until(Duration::from_secs(30), || {
            let (status, _, _) = http_get(at, "/live/ll/index.ll.m3u8", &[]).ok()?;
            (status == 200).then_some(())
        })
        .unwrap_or_else(|| panic!("no LL-HLS on {at}"));
    }
    for track in ["v1", "a1"] {
        let path = format!("/live/ll/{track}.ll.m3u8");
        let same = poll_until(Duration::from_secs(20), || {
            let (_, _, on_origin) = http_get(origin.http, &path, &[]).ok()?;
            let (_, _, on_edge) = http_get(edge.http, &path, &[]).ok()?;
            let sealed = sealed_part(&on_origin)?;
            let full = sealed.matches("#EXTINF").count() >= 3;
            (full && Some(&sealed) == sealed_part(&on_edge).as_ref()).then_some(on_origin)
        })
        .unwrap_or_else(|| panic!("{path} differs between the origin and the edge"));
        let uris: Vec<&str> = same
            .lines()
            .filter_map(|line| {
                if line.starts_with('#') {
                    line.split("URI=\"").nth(1)?.split('"').next()
                } else {
                    Some(line)
                }
            })
            .filter(|uri| uri.ends_with(".m4s") || uri.ends_with(".mp4"))
            .collect();
        assert!(uris.len() >= 5, "{same}");
        for uri in uris {
            let path = format!("/live/ll/{uri}");
            let (status, from_origin) = http_get_bytes(origin.http, &path).unwrap();
            assert_eq!(status, 200, "{path} on the origin");
            let (status, from_edge) = http_get_bytes(edge.http, &path).unwrap();
            assert_eq!(status, 200, "{path} on the edge");
            assert!(from_edge == from_origin, "{path} differs");
        }
    }
    let mut last = (String::new(), String::new());
    let same = poll_until(Duration::from_secs(20), || {
        let (_, _, on_origin) = http_get(origin.http, "/live/ll/index.mpd", &[]).ok()?;
        let (_, _, on_edge) = http_get(edge.http, "/live/ll/index.mpd", &[]).ok()?;
        let same = on_origin.contains("<SegmentTimeline>") && on_origin == on_edge;
        last = (on_origin, on_edge);
        same.then_some(())
    });
    assert!(
        same.is_some(),
        "the DASH manifests differ:\n{}\n---\n{}",
        last.0,
        last.1
    );
    let probed = ffprobe_streams(&format!("http://{}/live/ll/index.mpd", edge.http));
    assert!(
        probed.contains("h264") && probed.contains("aac"),
        "{probed}"
    );
}
