//! Every codec from input to output on real nodes: clips made by ffmpeg with H.265,
//! MPEG-2 video, AC-3, E-AC-3, MP2 and AAC, several audio tracks with languages, played
//! back over HLS and HTTP-MPEG-TS by ffprobe, listed by the streams API, relayed to
//! another node with their tracks intact, and refused with the reason to RTMP players.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::play::stream_stats;
use common::*;

const KEY: &str = "codecs-test-cluster-key-0123456789abcdef";

/// A 4 s clip of `video` with two audio tracks, `(encoder, language)` each, made by
/// ffmpeg into `dir/name.ts`.
fn make_clip(dir: &Path, name: &str, video: &[&str], audio: [(&str, &str); 2]) -> PathBuf {
    let path = dir.join(format!("{name}.ts"));
    let mut command = Command::new("ffmpeg");
    command.args(["-v", "error", "-y"]);
    command.args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"]);
    command.args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    command.args(["-f", "lavfi", "-i", "sine=frequency=880:sample_rate=48000"]);
    command.args(["-t", "4", "-map", "0:v", "-map", "1:a", "-map", "2:a"]);
    command.args(video);
    for (index, (encoder, language)) in audio.iter().enumerate() {
        command.arg(format!("-c:a:{index}")).arg(encoder);
        command
            .arg(format!("-metadata:s:a:{index}"))
            .arg(format!("language={language}"));
    }
    command.args(["-f", "mpegts"]).arg(&path);
    let status = command
        .stdin(Stdio::null())
        .status()
        .expect("ffmpeg is installed by scripts/test.sh");
    assert!(status.success(), "ffmpeg made no {name} clip");
    path
}

/// H.265 (x265) with AC-3 in English and MP2 in French.
fn hevc_clip(dir: &Path) -> PathBuf {
    let video = [
        "-c:v",
        "libx265",
        "-pix_fmt",
        "yuv420p",
        "-x265-params",
        "keyint=25:log-level=error",
    ];
    make_clip(dir, "hevc", &video, [("ac3", "eng"), ("mp2", "fra")])
}

/// MPEG-2 video with E-AC-3 in German and AAC in English.
fn mpeg2_clip(dir: &Path) -> PathBuf {
    let video = ["-c:v", "mpeg2video", "-g", "25", "-b:v", "1M"];
    make_clip(dir, "mpeg2", &video, [("eac3", "deu"), ("aac", "eng")])
}

/// ffprobe's view of a URL: `codec,width,height,language` per stream, sorted.
fn probe(url: &str) -> Vec<String> {
    let output = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height:stream_tags=language",
            "-of",
            "json",
        ])
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .expect("ffprobe is installed by scripts/test.sh");
    let parsed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    let text = |value: &serde_json::Value| match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let mut lines: Vec<String> = parsed["streams"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|stream| {
            let fields = [
                text(&stream["codec_name"]),
                text(&stream["width"]),
                text(&stream["height"]),
                text(&stream["tags"]["language"]),
            ];
            fields.join(",").trim_end_matches(',').to_string()
        })
        .collect();
    lines.sort();
    lines
}

fn wait_for_segments(at: SocketAddr, name: &str) {
    poll_until(Duration::from_secs(30), || {
        let (status, _, body) = http_get(at, &format!("/{name}/index.m3u8"), &[]).ok()?;
        let media = format!("/{name}/tracks-v1a1/mono.m3u8");
        let (media_status, _, media_body) = http_get(at, &media, &[]).ok()?;
        (status == 200 && media_status == 200 && media_body.matches(".ts").count() >= 2)
            .then_some(body)
    })
    .unwrap_or_else(|| panic!("{name} published no segments"));
}

const HEVC_TRACKS: [&str; 3] = ["ac3,,,eng", "hevc,320,240", "mp2,,,fra"];
const MPEG2_TRACKS: [&str; 3] = ["aac,,,eng", "eac3,,,deu", "mpeg2video,320,240"];

/// The tracks without their languages: ffmpeg's HLS reader does not pass the language
/// descriptors of the segments' PMT on (HLS names languages in EXT-X-MEDIA).
fn without_languages(tracks: &[&str]) -> Vec<String> {
    let mut out: Vec<String> = tracks
        .iter()
        .map(|t| {
            let fields: Vec<&str> = t.split(',').take(3).collect();
            fields.join(",").trim_end_matches(',').to_string()
        })
        .collect();
    out.sort();
    out
}

#[test]
fn every_codec_and_language_reaches_hls_and_http_mpegts_and_the_api() {
    let dir = TempDir::new("codecs");
    let (hevc, mpeg2) = (hevc_clip(&dir.0), mpeg2_clip(&dir.0));
    let (port, rtmp) = (free_port(), free_port());
    let at = SocketAddr::from(([127, 0, 0, 1], port));
    let config = format!(
        "http 127.0.0.1:{port};\nrtmp 127.0.0.1:{rtmp};\n\
         stream hevc {{ input file://{}; segment_duration 1; }}\n\
         stream mpeg2 {{ input file://{}; segment_duration 1; }}\n\
         stream picked {{ input file://{} pids=256,258; segment_duration 1; }}\n",
        hevc.display(),
        mpeg2.display(),
        hevc.display()
    );
    let node = Node::start(&config, at, &[], &[]);
    // `pids=`: the video and the second audio stream (ffmpeg's PIDs 0x100, 0x102) only.
    wait_for_segments(at, "picked");
    let picked = probe(&format!("http://{at}/picked/mpegts"));
    assert_eq!(picked, ["hevc,320,240", "mp2,,,fra"], "{}", node.log_tail());
    for (name, expected) in [("hevc", HEVC_TRACKS), ("mpeg2", MPEG2_TRACKS)] {
        wait_for_segments(at, name);
        let hls = format!("http://{at}/{name}/index.m3u8");
        assert_eq!(
            probe(&hls),
            without_languages(&expected),
            "{}",
            node.log_tail()
        );
        let http_mpegts = format!("http://{at}/{name}/mpegts");
        assert_eq!(probe(&http_mpegts), expected, "{}", node.log_tail());
    }

    // The streams API lists each track: codec, size or sample rate, language.
    let tracks = poll_until(Duration::from_secs(10), || {
        let tracks = stream_stats(at, "hevc")?["media_info"]["tracks"].clone();
        (tracks.as_array()?.len() == 3 && tracks[1]["sample_rate"] == 48_000).then_some(tracks)
    })
    .unwrap_or_else(|| panic!("{:?}", stream_stats(at, "hevc")));
    assert_eq!(tracks[0]["codec"], "hevc");
    assert_eq!(
        (tracks[0]["width"].clone(), tracks[0]["height"].clone()),
        (320.into(), 240.into())
    );
    let codec_string = tracks[0]["codec_string"].as_str().unwrap_or_default();
    assert!(codec_string.starts_with("hvc1.1.6.L"), "{tracks}");
    assert_eq!(tracks[1]["codec"], "ac3");
    assert_eq!(tracks[1]["language"], "eng");
    assert_eq!(tracks[2]["codec"], "mp2a");
    assert_eq!(tracks[2]["language"], "fra");
    assert_eq!(tracks[2]["track_id"], "a2");

    // RTMP carries neither H.265 nor MPEG-2 video: the player is refused with the reason.
    for (name, codec) in [("hevc", "H.265"), ("mpeg2", "MPEG-2 video")] {
        let url = format!("rtmp://127.0.0.1:{rtmp}/static/{name}");
        let (played, stderr) = common::play::ffmpeg_plays(&url, 2);
        assert!(!played, "RTMP played {name}: {stderr}");
        let reason = format!("this stream's video is {codec}");
        let logged = poll_until(Duration::from_secs(5), || {
            node.log_tail().contains(&reason).then_some(())
        });
        assert!(logged.is_some(), "{reason}\n{}", node.log_tail());
    }
}

/// A node relaying another node's multi-track H.265 stream serves the same tracks and
/// languages (the relay carries track numbers and the program, wire v8).
#[test]
fn a_relayed_copy_keeps_every_track_and_language() {
    let dir = TempDir::new("codecs-relay");
    let hevc = hevc_clip(&dir.0);
    let (port, rtmp) = (free_port(), free_port());
    let config = shared_config(port, KEY, &[31, 32]) + "cluster_play relay;\n";
    let origin_stream = format!(
        "stream hevc {{ input file://{}; segment_duration 1; }}\n",
        hevc.display()
    );
    let origin = member_with(31, "origin", port, rtmp, &config, &origin_stream);
    let edge = member(32, "edge", port, rtmp, &config);
    wait_for_segments(origin.http, "hevc");
    wait_for_segments(edge.http, "hevc");
    let hls = format!("http://{}/hevc/index.m3u8", edge.http);
    assert_eq!(probe(&hls), without_languages(&HEVC_TRACKS));
    let http_mpegts = format!("http://{}/hevc/mpegts", edge.http);
    let (played, stderr) = common::play::ffmpeg_plays(&http_mpegts, 1);
    assert!(played, "{stderr}");
    assert_eq!(probe(&http_mpegts), HEVC_TRACKS);
}
