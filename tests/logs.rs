//! `logrequests` and `session_log` on a real node: ffmpeg plays over HLS and
//! HTTP-MPEG-TS, and after SIGTERM both files hold every request and session as JSON
//! lines (the node flushes them as it stops).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::play::{ffmpeg_plays, media_playlist};
use common::{Node, free_port, poll_until, wait_with_deadline};
use serde_json::Value;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn json_lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("every line is one JSON object"))
        .collect()
}

#[test]
fn requests_and_sessions_are_logged_and_flushed_when_the_node_stops() {
    let port = free_port();
    let config = format!(
        "http 127.0.0.1:{port};\nlogrequests access.log;\nsession_log logs;\nstream clip {{ input test://; segment_duration 1; }}\n"
    );
    let mut node = Node::start(&config, addr(port), &[], &[]);
    let at = addr(port);
    assert!(poll_until(Duration::from_secs(15), || media_playlist(at, "clip")).is_some());
    let (played, errors) = ffmpeg_plays(&format!("http://{at}/clip/index.m3u8"), 2);
    assert!(played, "{errors}");
    let (played, errors) = ffmpeg_plays(&format!("http://{at}/clip/mpegts"), 2);
    assert!(played, "{errors}");
    node.signal("TERM");
    let status = wait_with_deadline(&mut node.child, Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{}", node.log_tail());

    let requests = json_lines(&node.dir.0.join("access.log"));
    let segment = requests
        .iter()
        .find(|line| line["path"].as_str().is_some_and(|p| p.ends_with(".ts")))
        .unwrap_or_else(|| panic!("a segment request is logged: {requests:?}"));
    assert_eq!(segment["method"], "GET");
    assert_eq!(segment["status"], 200);
    assert_eq!(segment["client"], "127.0.0.1");
    assert!(
        segment["bytes"].as_u64().is_some_and(|b| b > 1000),
        "{segment}"
    );
    assert!(
        segment["user_agent"]
            .as_str()
            .is_some_and(|ua| ua.contains("Lavf"))
    );
    assert!(segment["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(
        requests.iter().any(|line| line["path"] == "/clip/mpegts"),
        "{requests:?}"
    );

    let sessions = json_lines(&node.dir.0.join("logs").join("sessions.log"));
    let by_protocol = |protocol: &str| {
        sessions
            .iter()
            .find(|line| line["protocol"] == protocol)
            .unwrap_or_else(|| panic!("a {protocol} session is logged: {sessions:?}"))
            .clone()
    };
    let hls = by_protocol("hls");
    let ts = by_protocol("mpegts");
    for session in [&hls, &ts] {
        assert_eq!(session["stream"], "clip");
        assert_eq!(session["client"], "127.0.0.1");
        assert!(
            session["bytes"].as_u64().is_some_and(|b| b > 10_000),
            "{session}"
        );
        assert!(session["duration_ms"].as_u64().is_some(), "{session}");
    }
    // The HTTP-MPEG-TS viewer left: closed; the HLS session was still open at SIGTERM.
    assert_eq!(ts["end"], "closed", "{ts}");
    assert_eq!(hls["end"], "node stopped", "{hls}");
}
