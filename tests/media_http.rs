//! The media plane end to end on a real node: the built-in test source served over HLS
//! and HTTP-MPEG-TS, checked with our own TS parser and with ffprobe/ffmpeg as real
//! clients.

mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::*;
use flotilla::media::ts::demux::Demuxer;
use flotilla::media::ts::{STREAM_TYPE_ADTS_AAC, STREAM_TYPE_H264};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn test_node() -> (Node, SocketAddr) {
    let port = free_port();
    let config = format!(
        "http 127.0.0.1:{port};\nstream test {{ input test://; segment_duration 1; segment_count 3; }}\n\
         stream live/cam {{ input file://{}; segment_duration 1; }}\n",
        concat!(env!("CARGO_MANIFEST_DIR"), "/assets/testsrc.ts")
    );
    let node = Node::start(&config, addr(port), &[], &[]);
    (node, addr(port))
}

/// Waits until the stream has published enough segments.
fn wait_for_playlist(at: SocketAddr, path: &str, segments: usize) -> m3u8_rs::MediaPlaylist {
    poll_until(Duration::from_secs(20), || {
        let (status, _, body) = http_get(at, path, &[]).ok()?;
        if status != 200 {
            return None;
        }
        let playlist = m3u8_rs::parse_media_playlist_res(body.as_bytes()).ok()?;
        (playlist.segments.len() >= segments).then_some(playlist)
    })
    .expect("the stream did not publish segments in time")
}

fn get_bytes(at: SocketAddr, path: &str) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(at).unwrap();
    stream.set_read_timeout(Some(REQUEST_DEADLINE)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&response[..split]).to_string();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, response[split + 4..].to_vec())
}

#[test]
fn hls_serves_a_valid_live_window_of_the_test_source() {
    let (node, at) = test_node();
    let media = wait_for_playlist(at, "/test/tracks-v1a1/mono.m3u8", 3);
    assert_eq!(media.segments.len(), 3, "segment_count");
    assert!(media.target_duration >= 1 && media.target_duration <= 2);
    for segment in &media.segments {
        assert!(segment.program_date_time.is_some());
        assert!((segment.duration - 1.0).abs() < 0.1, "{}", segment.duration);
    }

    let (status, _, master) = http_get(at, "/test/index.m3u8", &[]).unwrap();
    assert_eq!(status, 200);
    let master = match m3u8_rs::parse_playlist_res(master.as_bytes()).unwrap() {
        m3u8_rs::Playlist::MasterPlaylist(master) => master,
        other => panic!("index.m3u8 is not a master playlist: {other:?}"),
    };
    let variant = &master.variants[0];
    assert_eq!(variant.uri, "tracks-v1a1/mono.m3u8");
    assert_eq!(
        variant.resolution.map(|r| (r.width, r.height)),
        Some((640, 360))
    );
    assert!(
        variant.codecs.as_deref().unwrap().contains("avc1.42"),
        "{variant:?}"
    );

    // Every advertised segment starts with PAT/PMT and a keyframe, and carries both tracks.
    for segment in &media.segments {
        let (status, bytes) = get_bytes(at, &format!("/test/tracks-v1a1/{}", segment.uri));
        assert_eq!(status, 200);
        assert_eq!(bytes.len() % 188, 0);
        let mut demuxer = Demuxer::new();
        let mut packets = Vec::new();
        demuxer.push(&bytes, &mut packets);
        demuxer.flush(&mut packets);
        let first_video = packets
            .iter()
            .find(|p| p.stream_type == STREAM_TYPE_H264)
            .unwrap();
        assert!(flotilla::media::h264::is_keyframe(&first_video.data));
        assert!(
            packets
                .iter()
                .any(|p| p.stream_type == STREAM_TYPE_ADTS_AAC)
        );
        assert_eq!(demuxer.stats.dropped_pes, 0);
    }

    // The segments just served live in sealed memory files (sent with sendfile), one
    // per segment held.
    let sealed = std::fs::read_dir(format!("/proc/{}/fd", node.child.id()))
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains("memfd:flotilla-segment"))
        .count();
    assert!(
        sealed >= media.segments.len(),
        "{sealed} sealed segment files"
    );
}

#[test]
fn http_mpegts_starts_on_a_keyframe() {
    let (_node, at) = test_node();
    wait_for_playlist(at, "/test/mono.m3u8", 1);
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(at).unwrap();
    stream.set_read_timeout(Some(REQUEST_DEADLINE)).unwrap();
    write!(stream, "GET /test/mpegts HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 65536];
    while received.len() < 300_000 {
        let n = stream.read(&mut buffer).unwrap();
        assert!(n > 0, "the stream ended");
        received.extend_from_slice(&buffer[..n]);
    }
    let split = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&received[..split]).to_string();
    assert!(
        head.contains("200 OK") && head.contains("video/mp2t"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    let body = dechunk(&received[split + 4..]);
    assert_eq!(body[0], 0x47);
    let mut demuxer = Demuxer::new();
    let mut packets = Vec::new();
    demuxer.push(&body, &mut packets);
    assert_eq!(demuxer.stats.resyncs, 0, "the body is whole TS packets");
    let first_video = packets
        .iter()
        .find(|p| p.stream_type == STREAM_TYPE_H264)
        .expect("video");
    assert!(
        flotilla::media::h264::is_keyframe(&first_video.data),
        "viewers start on a keyframe"
    );
}

/// Removes HTTP/1.1 chunked framing (complete chunks only).
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = body.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap().trim(), 16)
                .unwrap();
        let start = line_end + 2;
        if size == 0 || body.len() < start + size + 2 {
            break;
        }
        out.extend_from_slice(&body[start..start + size]);
        body = &body[start + size + 2..];
    }
    out
}

#[test]
fn unknown_streams_and_traversal_are_refused() {
    let (_node, at) = test_node();
    let (status, _, _) = http_get(at, "/nothing/index.m3u8", &[]).unwrap();
    assert_eq!(status, 404);
    let (status, _, _) = http_get(at, "/test/../../etc/passwd", &[]).unwrap();
    assert!(status == 400 || status == 404, "{status}");
    let (status, _, _) = http_get(at, "/test/2020/01/01/00/00/00-01000.ts", &[]).unwrap();
    assert_eq!(status, 404);
    let (status, _, page) = http_get(at, "/live/cam/embed.html", &[]).unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("index.m3u8"));
}

fn ffprobe(args: &[&str]) -> String {
    let output = Command::new("ffprobe")
        .args(args)
        .output()
        .expect("ffprobe is installed by scripts/test.sh");
    assert!(
        output.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).to_string()
}

#[test]
fn ffmpeg_plays_hls_and_mpegts_with_monotonic_timestamps() {
    let (_node, at) = test_node();
    wait_for_playlist(at, "/live/cam/mono.m3u8", 3);
    let streams = ffprobe(&[
        "-v",
        "error",
        "-show_entries",
        "stream=codec_name,width,height",
        "-of",
        "compact",
        &format!("http://{at}/live/cam/index.m3u8"),
    ]);
    assert!(
        streams.contains("codec_name=h264|width=640|height=360"),
        "{streams}"
    );
    assert!(streams.contains("codec_name=aac"), "{streams}");

    // Record 4 s of HLS with ffmpeg (a real player's fetch loop), then check every dts.
    let dir = TempDir::new("ffmpeg");
    let recorded = dir.0.join("hls.ts");
    let status = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-i",
            &format!("http://{at}/test/index.m3u8"),
            "-t",
            "4",
            "-c",
            "copy",
        ])
        .arg(&recorded)
        .status()
        .unwrap();
    assert!(status.success());
    let dts = ffprobe(&[
        "-v",
        "error",
        "-select_streams",
        "v",
        "-show_entries",
        "packet=dts",
        "-of",
        "csv=p=0",
        recorded.to_str().unwrap(),
    ]);
    let values: Vec<i64> = dts
        .lines()
        .filter_map(|l| l.trim().trim_end_matches(',').parse().ok())
        .collect();
    assert!(values.len() >= 75, "4 s at 25 fps: {}", values.len());
    assert!(
        values.windows(2).all(|w| w[1] > w[0]),
        "video dts must increase: {values:?}"
    );

    let live = ffprobe(&[
        "-v",
        "error",
        "-show_entries",
        "stream=codec_name,width,height",
        "-of",
        "compact",
        &format!("http://{at}/test/mpegts"),
    ]);
    assert!(
        live.contains("codec_name=h264|width=640|height=360"),
        "{live}"
    );
}

/// The test source loops a 4 s clip: ffmpeg decoding 9 s of it (two seams) finds every
/// track's time moving forward. Before each loop's period counted the clip's last audio
/// frame whole, every seam put an AAC frame 128 samples into the one before it, and
/// ffmpeg said "non monotonically increasing dts" at each.
#[test]
fn ffmpeg_decodes_the_looping_test_source_across_its_seams_without_a_timestamp_going_back() {
    let (_node, at) = test_node();
    wait_for_playlist(at, "/test/mono.m3u8", 3);
    let output = Command::new("ffmpeg")
        .args(["-v", "warning", "-i"])
        .arg(format!("http://{at}/test/index.m3u8"))
        .args(["-t", "9", "-f", "null", "-"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let errors = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{errors}");
    assert!(
        !errors.contains("non monotonically increasing"),
        "a track's time went back at a seam:\n{errors}"
    );
}

#[test]
fn the_streams_and_stats_apis_report_live_streams() {
    let (_node, at) = test_node();
    wait_for_playlist(at, "/test/mono.m3u8", 1);
    let streams = poll_until(Duration::from_secs(20), || {
        let (_, _, body) = http_get(at, "/streamer/api/v3/streams", &[]).ok()?;
        let value: serde_json::Value = serde_json::from_str(&body).ok()?;
        let test = value["streams"]
            .as_array()?
            .iter()
            .find(|s| s["name"] == "test")?
            .clone();
        (test["stats"]["alive"] == true && test["stats"]["input_bitrate"].as_u64()? > 0)
            .then_some(value)
    })
    .expect("the test stream never showed alive with a bitrate");
    let test = streams["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "test")
        .unwrap();
    assert_eq!(test["stats"]["status"], "running");
    assert_eq!(test["stats"]["running_on"].as_array().unwrap().len(), 1);
    let bitrate = test["stats"]["input_bitrate"].as_u64().unwrap();
    assert!(
        (150..800).contains(&bitrate),
        "~300 kbit/s test clip, got {bitrate}"
    );
    // Its tracks, as Flussonic's media_info lists them.
    let tracks = &test["stats"]["media_info"]["tracks"];
    assert_eq!(tracks[0]["content"], "video", "{tracks}");
    assert_eq!(tracks[0]["codec"], "h264", "{tracks}");
    assert!(
        tracks[0]["codec_string"]
            .as_str()
            .unwrap()
            .starts_with("avc1."),
        "{tracks}"
    );
    assert_eq!(
        (tracks[0]["width"].as_u64(), tracks[0]["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert_eq!(tracks[1]["content"], "audio", "{tracks}");
    assert_eq!(tracks[1]["codec"], "aac");
    assert_eq!(tracks[1]["codec_string"], "mp4a.40.2");
    assert_eq!(tracks[1]["track_id"], "a1");
    assert_eq!(tracks[1]["sample_rate"], 48_000);
    assert_eq!(tracks[1]["channels"], 1);
    let video = tracks[0]["bitrate"].as_u64().unwrap();
    let audio = tracks[1]["bitrate"].as_u64().unwrap();
    assert!(video > audio && audio > 0, "{tracks}");
    assert!(video + audio <= bitrate, "{tracks}");

    let stats = poll_until(Duration::from_secs(20), || {
        let (_, _, body) = http_get(at, "/streamer/api/v3/config/stats", &[]).ok()?;
        let value: serde_json::Value = serde_json::from_str(&body).ok()?;
        (value["online_streams"] == 2 && value["input_kbit"].as_u64()? > 100).then_some(value)
    })
    .expect("config/stats never showed both streams online");
    assert_eq!(stats["total_streams"], 2);
    assert!(stats["input_kbit"].as_u64().unwrap() > 100, "{stats}");
    assert!(stats["memory_usage"].as_f64().unwrap() > 0.0, "{stats}");
}

#[test]
fn tokens_and_max_sessions_are_enforced_and_sessions_are_actors() {
    let port = free_port();
    let config = format!(
        "http 127.0.0.1:{port};\nno_auto_token;\nmax_sessions 1;\n\
         stream test {{ input test://; segment_duration 1; }}\n"
    );
    let _node = Node::start(&config, addr(port), &[], &[]);
    let at = addr(port);
    let playlist = poll_until(Duration::from_secs(20), || {
        let (status, _, body) = http_get(at, "/test/mono.m3u8?token=alice", &[]).ok()?;
        (status == 200).then_some(body)
    })
    .expect("the token holder plays");
    assert!(playlist.contains("#EXTINF"));

    let (status, _, body) = http_get(at, "/test/index.m3u8", &[]).unwrap();
    assert_eq!(status, 403);
    assert!(body.contains("a play token is required"), "{body}");

    let (status, _, body) = http_get(at, "/test/index.m3u8?token=bob", &[]).unwrap();
    assert_eq!(status, 403);
    assert!(body.contains("max_sessions (1) reached"), "{body}");

    // Alice's requests share one session, which is an actor under node/sessions.
    let (status, _, _) = http_get(at, "/test/index.m3u8?token=alice", &[]).unwrap();
    assert_eq!(status, 200);
    let tree = poll_until(Duration::from_secs(5), || {
        let (_, _, tree) = http_get(at, "/flotilla/api/actors/node/sessions", &[]).ok()?;
        tree.contains("\"kind\":\"session\"").then_some(tree)
    })
    .expect("the session shows in the tree");
    assert_eq!(tree.matches("\"kind\":\"session\"").count(), 1, "{tree}");
    assert!(tree.contains("Hls test from 127.0.0.1"), "{tree}");
}

#[test]
fn an_ondemand_stream_starts_with_its_first_viewer_and_stops_after_the_last() {
    let port = free_port();
    let config = format!(
        "http 127.0.0.1:{port};\nondemand od {{ input test://; segment_duration 1; clients_timeout 2; }}\n"
    );
    let _node = Node::start(&config, addr(port), &[], &[]);
    let at = addr(port);
    let alive = |at| {
        let (_, _, body) = http_get(at, "/streamer/api/v3/streams", &[]).unwrap();
        let value: serde_json::Value = serde_json::from_str(&body).unwrap();
        value["streams"][0]["stats"]["alive"] == true
    };
    assert!(!alive(at), "an on-demand stream is idle until asked");
    // The first request waits for the first segment and gets a playlist.
    let (status, _, body) = http_get(at, "/od/index.m3u8", &[]).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("tracks-v1a1/mono.m3u8"));
    assert!(alive(at));
    // Nobody asks any more: the HLS session expires after 30 s without requests, then the
    // 2 s clients_timeout runs out and the stream goes idle.
    let stopped = poll_until(Duration::from_secs(60), || {
        let (_, _, body) = http_get(at, "/streamer/api/v3/streams", &[]).ok()?;
        let value: serde_json::Value = serde_json::from_str(&body).ok()?;
        (value["streams"][0]["stats"]["alive"] == false).then_some(())
    });
    assert!(
        stopped.is_some(),
        "the stream stops after its viewers are gone"
    );
}
