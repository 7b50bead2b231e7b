//! Real players in a real browser: hls.js (the build the node serves) in headless
//! Chromium, on a page of another origin, against real node processes fed by ffmpeg.
//!
//! These are the paths a first user tries: a site embedding a stream published a moment
//! ago, and a player sent by a node without the stream to the node that has it.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::browser::{
    Browser, PageServer, dashjs_page, dashjs_script, hlsjs_page, hlsjs_page_with,
};
use common::ffmpeg::Ffmpeg;
use common::{Node, free_port, http_get, member, poll_until, shared_config};

/// How long the playback a test asks for may take, start-up included.
const PLAYBACK_DEADLINE: Duration = Duration::from_secs(60);
/// How long a published stream may take to have its first segment.
const FIRST_SEGMENT_DEADLINE: Duration = Duration::from_secs(20);

/// Waits until `path` on `at` answers `wanted`.
fn wait_for_status(at: SocketAddr, path: &str, wanted: u16) {
    let answered = poll_until(FIRST_SEGMENT_DEADLINE, || {
        matches!(http_get(at, path, &[]), Ok((status, _, _)) if status == wanted).then_some(())
    });
    assert!(answered.is_some(), "{path} on {at} never answered {wanted}");
}

/// Reads the page's reports until the video has played `seconds`; returns the last
/// report. Panics with the report on any hls.js error event or when time runs out.
fn plays_without_errors(page: &PageServer, seconds: f64) -> serde_json::Value {
    plays_in(page, "hlsjs", seconds)
}

/// Like [`plays_without_errors`], for the player the page reports as `player`.
#[allow(clippy::disallowed_methods)] // A real browser plays in real time.
fn plays_in(page: &PageServer, player: &str, seconds: f64) -> serde_json::Value {
    let start = Instant::now();
    let mut last = serde_json::Value::Null;
    while start.elapsed() < PLAYBACK_DEADLINE {
        let Some(report) = page.next_report(Duration::from_secs(5)) else {
            continue;
        };
        assert_eq!(report[player], true, "{player} did not load: {report}");
        let errors = report["errors"].as_array().cloned().unwrap_or_default();
        assert!(errors.is_empty(), "the player saw errors: {report}");
        if report["time"].as_f64().unwrap_or(0.0) >= seconds {
            return report;
        }
        last = report;
    }
    panic!("the video did not play {seconds} s in time; last report: {last}");
}

#[test]
fn hlsjs_joining_right_after_an_rtmp_publish_plays_without_errors() {
    let (http, rtmp) = (free_port(), free_port());
    let at = SocketAddr::from(([127, 0, 0, 1], http));
    let config = format!(
        "http 127.0.0.1:{http};\nrtmp 127.0.0.1:{rtmp};\n\
         template live {{ prefix live; segment_duration 1; }}\n"
    );
    let _node = Node::start(&config, at, &[], &[]);
    // The tone starts 1.5 s after the picture: the publish begins with video only, and the
    // first segment must still name (and carry) the audio track.
    let _publisher = Ffmpeg::publish_pattern(&format!("rtmp://127.0.0.1:{rtmp}/live/cam"), 1.5);
    // The viewer arrives with the first segment: the one whose PMT decides the player's
    // buffers.
    wait_for_status(at, "/live/cam/index.m3u8", 200);
    let page = PageServer::start(hlsjs_page(at, &format!("http://{at}/live/cam/index.m3u8")));
    let _browser = Browser::open(&format!("{}/", page.origin));
    let report = plays_without_errors(&page, 15.0);
    assert!(report["videoWidth"].as_u64() == Some(320), "{report}");
}

#[test]
fn a_page_on_another_origin_plays_through_a_redirect() {
    let port = free_port();
    let (rtmp_a, rtmp_b) = (free_port(), free_port());
    let key = "0f4c5d3b2a1908f7e6d5c4b3a2918070";
    let config = shared_config(port, key, &[2, 3]);
    let a = member(2, "a", port, rtmp_a, &config);
    let b = member(3, "b", port, rtmp_b, &config);
    let _publisher = Ffmpeg::publish_pattern(&format!("rtmp://{}/live/news", a.rtmp), 1.5);
    wait_for_status(a.http, "/live/news/index.m3u8", 200);
    // Node b does not have the stream: it sends the player to a once it hears of it.
    wait_for_status(b.http, "/live/news/index.m3u8", 302);
    let page = PageServer::start(hlsjs_page(
        b.http,
        &format!("http://{}/live/news/index.m3u8", b.http),
    ));
    let _browser = Browser::open(&format!("{}/", page.origin));
    plays_without_errors(&page, 8.0);
}

#[test]
fn the_player_page_loads_its_script_from_the_node_only() {
    let http = free_port();
    let at = SocketAddr::from(([127, 0, 0, 1], http));
    let config = format!("http 127.0.0.1:{http};\nstream clip {{ input test://; }}\n");
    let _node = Node::start(&config, at, &[], &[]);
    let (status, _, page) = http_get(at, "/clip/embed.html", &[]).unwrap();
    assert_eq!(status, 200);
    let sources: Vec<&str> = page
        .split("src=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(!sources.is_empty(), "{page}");
    for source in &sources {
        assert!(
            source.starts_with('/') && !source.starts_with("//"),
            "the page loads {source} from another host"
        );
    }
    let (status, head, script) = http_get(at, "/flotilla/player/hls.js", &[]).unwrap();
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("text/javascript"),
        "{head}"
    );
    // The embedded hls.js build, not an empty stand-in.
    assert!(script.len() > 100_000, "{} bytes", script.len());
    assert!(script.contains("Hls"));
}

/// A node with an ffmpeg RTMP publish of `live/NAME` (1 s segments, 200 ms parts),
/// once its `entry` (a playlist or manifest) answers 200.
fn publish_live(name: &str, entry: &str) -> (Node, SocketAddr, Ffmpeg) {
    let (http, rtmp) = (free_port(), free_port());
    let at = SocketAddr::from(([127, 0, 0, 1], http));
    let config = format!(
        "http 127.0.0.1:{http};\nrtmp 127.0.0.1:{rtmp};\nloglevel error;\n\
         template live {{ prefix live; segment_duration 1; chunk_duration 200; }}\n"
    );
    let node = Node::start(&config, at, &[], &[]);
    let publisher = Ffmpeg::publish_pattern(&format!("rtmp://127.0.0.1:{rtmp}/live/{name}"), 0.0);
    wait_for_status(at, &format!("/live/{name}/{entry}"), 200);
    (node, at, publisher)
}

/// A published stream as LL-HLS in CMAF (1 s segments, 200 ms parts) for hls.js in
/// low-latency mode: 30 s of playback without an error event, the playhead close to
/// the live edge.
#[test]
fn hlsjs_plays_ll_hls_in_low_latency_mode_for_30_s() {
    let (_node, at, _publisher) = publish_live("ll", "index.ll.m3u8");
    let page = PageServer::start(hlsjs_page_with(
        at,
        &format!("http://{at}/live/ll/index.ll.m3u8"),
        "{ lowLatencyMode: true }",
    ));
    let _browser = Browser::open(&format!("{}/", page.origin));
    let report = plays_in(&page, "hlsjs", 30.0);
    assert!(report["videoWidth"].as_u64() == Some(320), "{report}");
    let latency = report["latency"].as_f64().unwrap_or(f64::MAX);
    assert!(
        latency < 4.0,
        "hls.js plays {latency} s behind the live edge: {report}"
    );
}

/// The same stream as DASH for dash.js (from the npm registry, served by the test's
/// page server): 30 s of playback without an error event.
#[test]
fn dashjs_plays_the_dash_manifest_for_30_s() {
    let script = std::sync::Arc::new(dashjs_script());
    let (_node, at, _publisher) = publish_live("dash", "index.mpd");
    let page = PageServer::with_scripts(
        dashjs_page(&format!("http://{at}/live/dash/index.mpd")),
        vec![("dash.all.min.js", script)],
    );
    let _browser = Browser::open(&format!("{}/", page.origin));
    let report = plays_in(&page, "dashjs", 30.0);
    assert!(report["videoWidth"].as_u64() == Some(320), "{report}");
}

/// A benchmark, not a check (`scripts/bench-llhls.sh` runs it): LL-HLS latency in
/// Chromium with hls.js in low-latency mode, 1 s segments and 200 ms parts, for
/// `FLOTILLA_BENCH_SECONDS` (default 60). Prints the playhead's distance from the live
/// edge (hls.js's `latency`) and from the wall clock (now minus the program date of the
/// frame on screen: the frame's arrival at the node), median and 95th percentile over
/// the reports after the first 10 s.
#[test]
#[ignore = "a benchmark: scripts/bench-llhls.sh"]
fn llhls_latency_in_chromium() {
    let seconds: f64 = std::env::var("FLOTILLA_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60.0);
    let (_node, at, _publisher) = publish_live("ll", "index.ll.m3u8");
    let page = PageServer::start(hlsjs_page_with(
        at,
        &format!("http://{at}/live/ll/index.ll.m3u8"),
        "{ lowLatencyMode: true }",
    ));
    let _browser = Browser::open(&format!("{}/", page.origin));
    let (mut edge, mut wall) = (Vec::new(), Vec::new());
    let mut errors = 0;
    loop {
        let Some(report) = page.next_report(Duration::from_secs(10)) else {
            panic!("the page stopped reporting");
        };
        errors = errors.max(report["errors"].as_array().map_or(0, Vec::len));
        let time = report["time"].as_f64().unwrap_or(0.0);
        if time >= 10.0 {
            edge.extend(report["latency"].as_f64());
            wall.extend(
                report["behind_program_date_ms"]
                    .as_f64()
                    .map(|ms| ms / 1000.0),
            );
        }
        if time >= seconds {
            break;
        }
    }
    let summary = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        let at = |p: f64| values[((values.len() as f64 * p) as usize).min(values.len() - 1)];
        format!("median {:.2} s, p95 {:.2} s", at(0.5), at(0.95))
    };
    println!(
        "llhls_latency: {} reports; behind the live edge: {}; behind the wall clock: {}; player errors: {errors}",
        edge.len(),
        summary(&mut edge),
        summary(&mut wall)
    );
}
