//! CMAF players in a real browser: hls.js (the node's embedded build) in low-latency
//! mode on LL-HLS, and dash.js (from the npm registry) on DASH, in headless Chromium,
//! against a node fed by an ffmpeg RTMP publish. Their own test binary: two players at
//! a time on the machine's cores, whose low-latency playback a crowd of other browsers
//! would starve.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::browser::{
    Browser, LOW_LATENCY_STALLS_TOLERATED, PageServer, dashjs_page, dashjs_script, hlsjs_page_with,
    plays_in, plays_in_tolerating, wait_for_status,
};
use common::ffmpeg::Ffmpeg;
use common::{Node, free_port, http_get, poll_until};

/// A node with an ffmpeg RTMP publish of `live/NAME` (1 s segments, 200 ms parts),
/// once its `entry` (a playlist or manifest) answers 200 and it has run a few seconds.
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
    // The viewer joins a running stream (three complete segments), as viewers do. One
    // that joins within the stream's first second may see hls.js nudge over a hole: the
    // first segment's audio can start a few frames before its first video keyframe.
    let running = poll_until(Duration::from_secs(20), || {
        let (_, _, playlist) = http_get(at, &format!("/live/{name}/v1.ll.m3u8"), &[]).ok()?;
        (playlist.matches("#EXTINF").count() >= 3).then_some(())
    });
    assert!(running.is_some(), "{}", node.log_tail());
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
    let report = plays_in_tolerating(&page, "hlsjs", 30.0, LOW_LATENCY_STALLS_TOLERATED);
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
