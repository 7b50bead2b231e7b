//! CMAF outputs against real clients: an RTMP publish by ffmpeg served as LL-HLS and
//! DASH, read by ffprobe, and LL-HLS playlists checked against the spec's rules as a
//! client sees them over many blocking reloads (RFC 8216bis: part durations within
//! PART-TARGET, media sequence never going back, parts complete when listed, the
//! segment the concatenation of its parts, far-future requests refused at once).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::ffmpeg::Ffmpeg;
use common::{Node, ffprobe_streams, free_port, http_get, http_get_bytes, poll_until};

/// How long a published stream may take to have its first CMAF parts.
const FIRST_PARTS_DEADLINE: Duration = Duration::from_secs(20);

/// What the checker reads of a media playlist.
#[derive(Debug, Default)]
struct Playlist {
    part_target: f64,
    media_sequence: u64,
    /// (uri, duration) of every part listed, in order.
    parts: Vec<(String, f64)>,
    /// Complete segments' URIs, in order.
    segments: Vec<String>,
    preload_hint: Option<String>,
    text: String,
}

fn attribute<'l>(line: &'l str, name: &str) -> Option<&'l str> {
    let start = line.find(&format!("{name}="))? + name.len() + 1;
    let rest = &line[start..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next(),
        None => rest.split(',').next(),
    }
}

fn parse(text: &str) -> Playlist {
    let mut playlist = Playlist {
        text: text.to_string(),
        ..Playlist::default()
    };
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#EXT-X-PART-INF:") {
            playlist.part_target = attribute(rest, "PART-TARGET").unwrap().parse().unwrap();
        } else if let Some(rest) = line.strip_prefix("#EXT-X-MEDIA-SEQUENCE:") {
            playlist.media_sequence = rest.parse().unwrap();
        } else if let Some(rest) = line.strip_prefix("#EXT-X-PART:") {
            playlist.parts.push((
                attribute(rest, "URI").unwrap().to_string(),
                attribute(rest, "DURATION").unwrap().parse().unwrap(),
            ));
        } else if let Some(rest) = line.strip_prefix("#EXT-X-PRELOAD-HINT:") {
            playlist.preload_hint = attribute(rest, "URI").map(str::to_string);
        } else if !line.starts_with('#') && !line.is_empty() {
            playlist.segments.push(line.to_string());
        }
    }
    playlist
}

/// The (msn, part) after the last part `playlist` lists.
fn next_part(playlist: &Playlist) -> (u64, u64) {
    let hint = playlist.preload_hint.as_deref().expect("a preload hint");
    let numbers = hint.trim_end_matches(".m4s").split_once('-').unwrap().1;
    let (msn, part) = numbers.split_once('.').unwrap();
    (msn.parse().unwrap(), part.parse().unwrap())
}

fn start_publish() -> (Node, SocketAddr, Ffmpeg) {
    let (http, rtmp) = (free_port(), free_port());
    let at = SocketAddr::from(([127, 0, 0, 1], http));
    let config = format!(
        "http 127.0.0.1:{http};\nrtmp 127.0.0.1:{rtmp};\n\
         template live {{ prefix live; segment_duration 1; chunk_duration 200; }}\n"
    );
    let node = Node::start(&config, at, &[], &[]);
    let publisher = Ffmpeg::publish_pattern(&format!("rtmp://127.0.0.1:{rtmp}/live/cam"), 0.0);
    let ready = poll_until(FIRST_PARTS_DEADLINE, || {
        let (status, _, body) = http_get(at, "/live/cam/v1.ll.m3u8", &[]).ok()?;
        (status == 200 && body.contains("#EXT-X-PART:")).then_some(())
    });
    assert!(ready.is_some(), "no LL-HLS parts: {}", node.log_tail());
    (node, at, publisher)
}

#[test]
#[allow(clippy::disallowed_methods)] // Blocking reloads are timed against the live stream.
fn ll_hls_follows_the_spec_over_blocking_reloads_and_ffprobe_reads_every_output() {
    let (_node, at, _publisher) = start_publish();
    for track in ["v1", "a1"] {
        let path = format!("/live/cam/{track}.ll.m3u8");
        let (_, _, body) = http_get(at, &path, &[]).unwrap();
        let mut playlist = parse(&body);
        let mut reloads = 0;
        while reloads < 12 {
            let (msn, part) = next_part(&playlist);
            let asked = Instant::now();
            let (status, _, body) =
                http_get(at, &format!("{path}?_HLS_msn={msn}&_HLS_part={part}"), &[]).unwrap();
            assert_eq!(status, 200, "{body}");
            // Held until the part exists: about a part duration, never seconds.
            assert!(
                asked.elapsed() < Duration::from_millis(1_500),
                "{:?}",
                asked.elapsed()
            );
            let next = parse(&body);
            assert!(
                next.text.contains(&format!("{track}-{msn}.{part}.m4s"))
                    || next.segments.contains(&format!("{track}-{msn}.m4s")),
                "the blocking reload for {msn}.{part} came back without it:\n{}",
                next.text
            );
            assert!(next.media_sequence >= playlist.media_sequence, "went back");
            for (uri, duration) in &next.parts {
                assert!(
                    *duration <= next.part_target + 0.0005,
                    "{uri} lasts {duration} > PART-TARGET {}",
                    next.part_target
                );
            }
            playlist = next;
            reloads += 1;
        }
        // Every listed part is complete and served at once; a sealed segment is its
        // parts, byte for byte.
        let mut by_segment: std::collections::BTreeMap<String, Vec<u8>> = Default::default();
        for (uri, _) in &playlist.parts {
            let (status, bytes) = http_get_bytes(at, &format!("/live/cam/{uri}")).unwrap();
            assert_eq!(status, 200, "{uri}");
            assert_eq!(&bytes[4..8], b"moof", "{uri}");
            let segment = uri.rsplit_once('.').unwrap().0.rsplit_once('.').unwrap().0;
            by_segment
                .entry(format!("{segment}.m4s"))
                .or_default()
                .extend_from_slice(&bytes);
        }
        let mut compared = 0;
        for segment in &playlist.segments {
            if let Some(parts) = by_segment.get(segment) {
                let (status, bytes) = http_get_bytes(at, &format!("/live/cam/{segment}")).unwrap();
                assert_eq!(status, 200);
                assert!(bytes == *parts, "{segment} is not its parts");
                compared += 1;
            }
        }
        assert!(compared >= 2, "{}", playlist.text);
        // The hinted part is held until it exists, then served.
        let hint = playlist.preload_hint.clone().unwrap();
        let (status, bytes) = http_get_bytes(at, &format!("/live/cam/{hint}")).unwrap();
        assert_eq!(status, 200, "{hint}");
        assert!(!bytes.is_empty());
        // More than two segments ahead: refused at once, not held.
        let (msn, _) = next_part(&playlist);
        let asked = Instant::now();
        let (status, _, body) = http_get(at, &format!("{path}?_HLS_msn={}", msn + 3), &[]).unwrap();
        assert_eq!(status, 400, "{body}");
        assert!(asked.elapsed() < Duration::from_millis(500));
    }
    let probed = ffprobe_streams(&format!("http://{at}/live/cam/index.ll.m3u8"));
    assert!(
        probed.contains("codec_name=h264|width=320|height=180") && probed.contains("aac"),
        "{probed}"
    );
    let probed = ffprobe_streams(&format!("http://{at}/live/cam/index.mpd"));
    assert!(
        probed.contains("codec_name=h264|width=320|height=180") && probed.contains("aac"),
        "{probed}"
    );
    let (status, head, mpd) = http_get(at, "/live/cam/index.mpd", &[]).unwrap();
    assert_eq!(status, 200);
    assert!(head.to_ascii_lowercase().contains("application/dash+xml"));
    assert!(mpd.contains("type=\"dynamic\"") && mpd.contains("<SegmentTimeline>"));
    // Delta updates skip nothing in a window this short, and say so by leaving
    // EXT-X-SKIP out.
    let (status, _, skipped) = http_get(at, "/live/cam/v1.ll.m3u8?_HLS_skip=YES", &[]).unwrap();
    assert_eq!(status, 200);
    assert!(!skipped.contains("#EXT-X-SKIP"), "{skipped}");
}

/// A 4 s MPEG-TS clip of a 320×240 test pattern and a tone in `dir`, encoded with
/// `codecs` (ffmpeg's codec arguments).
fn make_clip(dir: &common::TempDir, name: &str, codecs: &[&str]) -> std::path::PathBuf {
    let clip = dir.0.join(format!("{name}.ts"));
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(["-f", "lavfi", "-i", "testsrc=size=320x240:rate=25"])
        .args(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"])
        .args(["-t", "4"])
        .args(codecs)
        .args(["-f", "mpegts"])
        .arg(&clip)
        .stdin(std::process::Stdio::null())
        .status()
        .expect("ffmpeg is installed by scripts/test.sh");
    assert!(status.success(), "ffmpeg made no {name} clip");
    clip
}

/// An H.265 + AAC source (an MPEG-TS file input): its LL-HLS and DASH carry the video as
/// `hvc1` with its `hvcC`, and ffmpeg decodes both without an error.
#[test]
fn h265_reaches_ll_hls_and_dash_and_ffmpeg_decodes_it() {
    let dir = common::TempDir::new("cmaf-hevc");
    let clip = make_clip(
        &dir,
        "hevc",
        &[
            "-c:v",
            "libx265",
            "-pix_fmt",
            "yuv420p",
            "-x265-params",
            "keyint=25:log-level=error",
            "-c:a",
            "aac",
        ],
    );
    let http = free_port();
    let at = SocketAddr::from(([127, 0, 0, 1], http));
    let config = format!(
        "http 127.0.0.1:{http};\nstream hevc {{ input file://{}; segment_duration 1; chunk_duration 250; }}\n",
        clip.display()
    );
    let node = Node::start(&config, at, &[], &[]);
    let ready = poll_until(FIRST_PARTS_DEADLINE, || {
        let (status, _, body) = http_get(at, "/hevc/index.ll.m3u8", &[]).ok()?;
        (status == 200).then_some(body)
    })
    .unwrap_or_else(|| panic!("no LL-HLS: {}", node.log_tail()));
    assert!(ready.contains("CODECS=\"hvc1.1.6.L"), "{ready}");
    for url in [
        format!("http://{at}/hevc/index.ll.m3u8"),
        format!("http://{at}/hevc/index.mpd"),
    ] {
        let probed = ffprobe_streams(&url);
        assert!(
            probed.contains("codec_name=hevc|width=320|height=240") && probed.contains("aac"),
            "{url}: {probed}"
        );
        let decoded = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-i", &url, "-t", "2", "-f", "null", "-"])
            .stdin(std::process::Stdio::null())
            .output()
            .expect("ffmpeg runs");
        assert!(
            decoded.status.success() && decoded.stderr.is_empty(),
            "{url}: {}",
            String::from_utf8_lossy(&decoded.stderr)
        );
    }
}

/// A stream with no codec CMAF carries (MPEG-2 video, MP2 audio): its CMAF URLs answer
/// 404 with the reason as soon as it has a segment, not after a wait; TS HLS plays.
#[test]
#[allow(clippy::disallowed_methods)] // How long the answer takes is what is checked.
fn a_stream_without_cmaf_codecs_says_so_at_once() {
    let dir = common::TempDir::new("cmaf-none");
    let clip = make_clip(
        &dir,
        "mpeg2",
        &["-c:v", "mpeg2video", "-g", "25", "-c:a", "mp2"],
    );
    let http = free_port();
    let at = SocketAddr::from(([127, 0, 0, 1], http));
    let config = format!(
        "http 127.0.0.1:{http};\nstream old {{ input file://{}; segment_duration 1; }}\n",
        clip.display()
    );
    let node = Node::start(&config, at, &[], &[]);
    poll_until(FIRST_PARTS_DEADLINE, || {
        let (status, _, _) = http_get(at, "/old/index.m3u8", &[]).ok()?;
        (status == 200).then_some(())
    })
    .unwrap_or_else(|| panic!("no TS HLS: {}", node.log_tail()));
    for path in ["/old/index.ll.m3u8", "/old/index.mpd", "/old/v1.ll.m3u8"] {
        let asked = Instant::now();
        let (status, _, body) = http_get(at, path, &[]).unwrap();
        assert_eq!(status, 404, "{path}: {body}");
        assert!(asked.elapsed() < Duration::from_secs(2), "{path} waited");
        if !path.contains("v1") {
            assert!(
                body.contains("no track with CMAF packaging"),
                "{path}: {body}"
            );
        }
    }
}
