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

/// ffmpeg sending a two-program MPEG-TS (what a headend sends) to `output`, live:
/// program 1 a 320x180 pattern, program 2 a 160x90 one.
fn ffmpeg_mpts(output: &str) -> KillOnDrop {
    let child = Command::new("ffmpeg")
        .args(["-v", "error", "-re"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x180:rate=25"])
        .args(["-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25"])
        .args(["-map", "0:v", "-map", "1:v", "-c:v", "libx264"])
        .args(["-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p"])
        .args(["-program", "program_num=1:title=one:st=0"])
        .args(["-program", "program_num=2:title=two:st=1"])
        .args(["-f", "mpegts", output])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg is installed by scripts/test.sh");
    KillOnDrop(child)
}

/// Two streams take one program each of a multi-program stream (`program=N`), a third
/// takes the first program by default; none mixes two programs, and a program the
/// stream does not have is a clear error naming the ones it has.
#[test]
fn each_program_of_a_multi_program_stream_is_its_own_stream() {
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let port = free_port();
    let config = format!(
        "http 127.0.0.1:{port};
         stream one {{ input udp://127.0.0.1:{} program=1; segment_duration 1; }}
         stream two {{ input udp://127.0.0.1:{} program=2; segment_duration 1; }}
         stream first {{ input udp://127.0.0.1:{}; segment_duration 1; }}
         stream none {{ input udp://127.0.0.1:{} program=5; segment_duration 1; }}
",
        ports[0], ports[1], ports[2], ports[3]
    );
    let node = Node::start(&config, addr(port), &[], &[]);
    let _sources: Vec<KillOnDrop> = ports
        .iter()
        .map(|p| ffmpeg_mpts(&format!("udp://127.0.0.1:{p}?pkt_size=1316")))
        .collect();
    // (stream, its program's picture, the other program's)
    let expected = [
        ("one", "320x180", "160x90"),
        ("two", "160x90", "320x180"),
        ("first", "320x180", "160x90"),
    ];
    for (stream, size, other) in expected {
        assert!(
            playlist_with_segments(addr(port), stream, 2).is_some(),
            "{stream}: no segments\n{}",
            node.log_tail()
        );
        let probed = ffprobe_streams(&format!("http://{}/{stream}/index.m3u8", addr(port)));
        let picture = |size: &str| {
            let (width, height) = size.split_once('x').unwrap();
            format!("width={width}|height={height}")
        };
        assert!(probed.contains(&picture(size)), "{stream}: {probed}");
        assert!(
            !probed.contains(&picture(other)),
            "{stream} mixes in the other program: {probed}"
        );
    }
    let missing = poll_until(Duration::from_secs(20), || {
        let log = node.log_tail();
        log.contains("program 5 is not in the stream")
            .then_some(log)
    })
    .expect("a missing program is named");
    assert!(missing.contains("its programs: 1, 2"), "{missing}");
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
