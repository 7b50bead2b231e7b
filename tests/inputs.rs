//! Inputs fed by ffmpeg as a real source: MPEG-TS served over HTTP, MPEG-TS over UDP,
//! and failover from a silent input to a backup.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

const CLIP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/testsrc.ts");

/// ffmpeg sending the test clip, looped in real time, to `output` in `format`.
fn ffmpeg_source(extra: &[&str], output: &str) -> KillOnDrop {
    let child = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-re",
            "-stream_loop",
            "-1",
            "-i",
            CLIP,
            "-c",
            "copy",
            "-f",
            "mpegts",
        ])
        .args(extra)
        .arg(output)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg is installed by scripts/test.sh");
    KillOnDrop(child)
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn playlist_with_segments(at: SocketAddr, stream: &str, wanted: usize) -> Option<String> {
    poll_until(Duration::from_secs(30), || {
        let (status, _, body) = http_get(at, &format!("/{stream}/mono.m3u8"), &[]).ok()?;
        (status == 200 && body.matches("#EXTINF").count() >= wanted).then_some(body)
    })
}

#[test]
fn mpegts_pulled_over_http_from_ffmpeg() {
    let source_port = free_port();
    let _source = ffmpeg_source(
        &["-listen", "1"],
        &format!("http://127.0.0.1:{source_port}/cam"),
    );
    let port = free_port();
    let config = format!(
        "http 127.0.0.1:{port};\nstream cam {{ input tshttp://127.0.0.1:{source_port}/cam; segment_duration 1; }}\n"
    );
    let _node = Node::start(&config, addr(port), &[], &[]);
    assert!(
        playlist_with_segments(addr(port), "cam", 3).is_some(),
        "no segments from the HTTP source"
    );
}

#[test]
fn mpegts_over_udp_from_ffmpeg() {
    let source_port = free_port();
    let port = free_port();
    let config = format!(
        "http 127.0.0.1:{port};\nstream u {{ input udp://127.0.0.1:{source_port}; segment_duration 1; }}\n"
    );
    let _node = Node::start(&config, addr(port), &[], &[]);
    let _source = ffmpeg_source(&[], &format!("udp://127.0.0.1:{source_port}?pkt_size=1316"));
    assert!(
        playlist_with_segments(addr(port), "u", 3).is_some(),
        "no segments from the UDP source"
    );
}

#[test]
fn a_silent_input_fails_over_to_the_backup() {
    let silent = free_port();
    let port = free_port();
    let config = format!(
        "http 127.0.0.1:{port};\nstream f {{ input udp://127.0.0.1:{silent} source_timeout=1; input test://; segment_duration 1; }}\n"
    );
    let _node = Node::start(&config, addr(port), &[], &[]);
    assert!(
        playlist_with_segments(addr(port), "f", 2).is_some(),
        "the backup input never took over"
    );
}

fn active_input(at: SocketAddr, stream: &str) -> Option<String> {
    let (_, _, body) = http_get(at, "/streamer/api/v3/streams", &[]).ok()?;
    let value: serde_json::Value = serde_json::from_str(&body).ok()?;
    let found = value["streams"]
        .as_array()?
        .iter()
        .find(|s| s["name"] == stream)?
        .clone();
    found["stats"]["active_input"].as_str().map(str::to_string)
}

#[test]
fn the_stream_returns_to_its_primary_input_when_it_is_back() {
    let primary = free_port();
    let port = free_port();
    let primary_url = format!("udp://127.0.0.1:{primary}");
    let config = format!(
        "http 127.0.0.1:{port};\nstream r {{ input {primary_url} source_timeout=1; input test://; segment_duration 1; }}\n"
    );
    let _node = Node::start(&config, addr(port), &[], &[]);
    let at = addr(port);
    let on_backup = poll_until(Duration::from_secs(20), || {
        (active_input(at, "r")? == "test://").then_some(())
    });
    assert!(
        on_backup.is_some(),
        "the silent primary hands over to the backup"
    );
    let _source = ffmpeg_source(&[], &format!("{primary_url}?pkt_size=1316"));
    let back = poll_until(Duration::from_secs(30), || {
        (active_input(at, "r")? == primary_url).then_some(())
    });
    assert!(
        back.is_some(),
        "the stream returns to the primary once it sends again"
    );
    // The switches are marked for players, and the window keeps growing.
    let playlist = playlist_with_segments(at, "r", 3).unwrap();
    assert!(playlist.contains("#EXTINF"));
}
