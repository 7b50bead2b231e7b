//! WebRTC with a real browser on both ends: headless Chromium publishes over WHIP (its
//! fake camera and microphone, H.264 and Opus) and plays over WHEP, against node
//! processes on loopback; ffprobe reads the WHIP stream over HLS and HTTP-MPEG-TS. Its
//! own test binary, like the other browser tests: a browser's encoder and decoder need
//! the machine's cores.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::browser::{Browser, PageServer, wait_for_status};
use common::ffmpeg::Ffmpeg;
use common::*;

/// Chromium's flags for WebRTC on loopback: a fake camera and microphone without a
/// permission prompt, and host candidates on 127.0.0.1.
const WEBRTC_FLAGS: [&str; 3] = [
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--allow-loopback-in-peer-connection",
];

/// How long a page may take to connect and show its first frames.
const CONNECT_DEADLINE: Duration = Duration::from_secs(30);

/// The page's WHIP and WHEP clients (as a browser app would write them, RFC 9725): POST
/// the offer, set the answer, report the connection's stats to the test every 500 ms.
const CLIENTS: &str = r#"
const report = (body) => fetch('/report', { method: 'POST', body: JSON.stringify(body) });
const state = { errors: [] };
window.onerror = (message) => state.errors.push(String(message));
async function negotiate(pc, url) {
  const offer = await pc.createOffer();
  await pc.setLocalDescription(offer);
  const response = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/sdp' }, body: offer.sdp });
  const answer = await response.text();
  if (response.status !== 201) throw new Error(`${url}: ${response.status} ${answer}`);
  await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  return new URL(response.headers.get('Location'), response.url).href;
}
async function whip(url) {
  const media = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 360 }, audio: true });
  const pc = new RTCPeerConnection();
  for (const track of media.getTracks()) {
    const transceiver = pc.addTransceiver(track, { direction: 'sendonly' });
    if (track.kind === 'video') {
      transceiver.setCodecPreferences(RTCRtpSender.getCapabilities('video').codecs.filter((c) => c.mimeType === 'video/H264'));
    }
  }
  state.whipResource = await negotiate(pc, url);
  state.whipPc = pc;
}
async function whep(url) {
  const started = performance.now();
  const pc = new RTCPeerConnection();
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  state.whepResource = await negotiate(pc, url);
  state.whepPc = pc;
  state.whepStarted = started;
  // The first decoded frame, to within 10 ms.
  const first = setInterval(async () => {
    let decoded = 0;
    (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') decoded = s.framesDecoded || 0; });
    if (decoded > 0 && state.firstFrameMs === undefined) state.firstFrameMs = performance.now() - started;
    if (state.firstFrameMs !== undefined) clearInterval(first);
  }, 10);
}
async function stats() {
  const out = { errors: state.errors, whepResource: state.whepResource || null };
  if (state.whipPc) {
    out.whipState = state.whipPc.connectionState;
  }
  if (state.whepPc) {
    out.whepState = state.whepPc.connectionState;
    (await state.whepPc.getStats()).forEach((s) => {
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') {
        out.framesDecoded = s.framesDecoded || 0;
        out.frameWidth = s.frameWidth || 0;
      } else {
        out.audioPackets = s.packetsReceived || 0;
      }
    });
    out.firstFrameMs = state.firstFrameMs === undefined ? null : state.firstFrameMs;
  }
  return out;
}
async function run(steps) {
  try { await steps(); } catch (error) { state.errors.push(String(error)); }
  setInterval(async () => report(await stats()), 500);
}
"#;

fn page_html(steps: &str) -> String {
    format!(
        "<!doctype html><html><body><script>{CLIENTS}\nrun(async () => {{ {steps} }});</script></body></html>"
    )
}

/// Reads reports until `done` holds of one; panics with the last report on a page
/// error or when `deadline` passes.
#[allow(clippy::disallowed_methods)] // A real browser runs in real time.
fn wait_for(
    page: &PageServer,
    deadline: Duration,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let until = Instant::now() + deadline;
    let mut last = serde_json::Value::Null;
    while Instant::now() < until {
        let Some(report) = page.next_report(Duration::from_secs(2)) else {
            continue;
        };
        let errors = report["errors"].as_array().map_or(0, Vec::len);
        assert_eq!(errors, 0, "the page failed: {report}");
        if done(&report) {
            return report;
        }
        last = report;
    }
    panic!("{what} within {deadline:?}; last report: {last}");
}

/// Plays for `seconds`: frames keep being decoded and the connection stays up.
#[allow(clippy::disallowed_methods)] // A real browser runs in real time.
fn keeps_playing(page: &PageServer, seconds: u64) -> serde_json::Value {
    let start = wait_for(page, CONNECT_DEADLINE, "a first decoded frame", |r| {
        r["framesDecoded"].as_u64().unwrap_or(0) > 0
    });
    let first = start["framesDecoded"].as_u64().unwrap_or(0);
    let until = Instant::now() + Duration::from_secs(seconds);
    let mut last = start.clone();
    while Instant::now() < until {
        last = wait_for(page, Duration::from_secs(5), "a report", |_| true);
        assert_eq!(last["whepState"], "connected", "{last}");
    }
    let decoded = last["framesDecoded"].as_u64().unwrap_or(0) - first;
    // 25 fps sources: at least half of the frames of the time played.
    assert!(
        decoded >= seconds * 25 / 2,
        "{decoded} frames decoded in {seconds} s: {last}"
    );
    last
}

/// A browser publishes over WHIP; the stream plays over HLS and HTTP-MPEG-TS (ffprobe:
/// H.264, and Opus in the MPEG-TS), LL-HLS and DASH (H.264 and Opus in CMAF) and, in the
/// same browser, over WHEP with its audio.
#[test]
fn a_browsers_whip_stream_plays_over_hls_mpegts_and_whep() {
    let http = free_port();
    let at = SocketAddr::from(([127, 0, 0, 1], http));
    let config = format!(
        "http 127.0.0.1:{http};\nloglevel error;\nstream live {{ input publish://; segment_duration 2; }}\n"
    );
    let node = Node::start(&config, at, &[], &[]);
    let page = PageServer::start(page_html(&format!(
        "await whip('http://{at}/live/whip'); \
         await new Promise((done) => setTimeout(done, 3000)); \
         await whep('http://{at}/live/whep');"
    )));
    let _browser = Browser::open_with(&format!("{}/", page.origin), &WEBRTC_FLAGS);
    let report = wait_for(&page, CONNECT_DEADLINE, "WHEP audio and video", |r| {
        r["framesDecoded"].as_u64().unwrap_or(0) > 0 && r["audioPackets"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(report["whipState"], "connected", "{report}");
    keeps_playing(&page, 20);

    wait_for_status(at, "/live/index.m3u8", 200);
    let hls = ffprobe_streams(&format!("http://{at}/live/index.m3u8"));
    assert!(
        hls.contains("codec_name=h264"),
        "{hls}\n{}",
        node.log_tail()
    );
    let mpegts = ffprobe_streams(&format!("http://{at}/live/mpegts"));
    assert!(
        mpegts.contains("codec_name=h264") && mpegts.contains("codec_name=opus"),
        "{mpegts}"
    );
    for cmaf in ["index.ll.m3u8", "index.mpd"] {
        let probed = ffprobe_streams(&format!("http://{at}/live/{cmaf}"));
        assert!(
            probed.contains("codec_name=h264") && probed.contains("codec_name=opus"),
            "{cmaf}: {probed}"
        );
    }
    // The viewer's session is counted like any other protocol's.
    let (_, _, sessions) = http_get(at, "/streamer/api/v3/sessions", &[]).unwrap();
    assert!(sessions.contains("\"webrtc\""), "{sessions}");
}

/// An RTMP stream (H.264 + AAC) plays over WHEP: video only (browsers take no AAC over
/// WebRTC), 20 s without an error; the first frame comes quickly.
#[test]
fn an_rtmp_stream_plays_over_whep_in_chromium() {
    let (http, rtmp) = (free_port(), free_port());
    let at = SocketAddr::from(([127, 0, 0, 1], http));
    let config = format!(
        "http 127.0.0.1:{http};\nrtmp 127.0.0.1:{rtmp};\nloglevel error;\n\
         template live {{ prefix live; segment_duration 1; }}\n"
    );
    let _node = Node::start(&config, at, &[], &[]);
    let _publisher = Ffmpeg::publish_pattern(&format!("rtmp://127.0.0.1:{rtmp}/live/rtmp"), 0.0);
    wait_for_status(at, "/live/rtmp/index.m3u8", 200);
    let page = PageServer::start(page_html(&format!(
        "await whep('http://{at}/live/rtmp/whep');"
    )));
    let _browser = Browser::open_with(&format!("{}/", page.origin), &WEBRTC_FLAGS);
    let last = keeps_playing(&page, 20);
    assert_eq!(last["frameWidth"], 320, "{last}");
    assert_eq!(last["audioPackets"].as_u64().unwrap_or(0), 0, "{last}");
    let first_frame_ms = last["firstFrameMs"].as_f64().unwrap_or(f64::MAX);
    assert!(
        first_frame_ms < 5_000.0,
        "first frame after {first_frame_ms} ms: {last}"
    );
}

/// WHIP and WHEP POSTs to a balancer are redirected (307) to a server of the cluster;
/// the browser follows with its offer, publishes there, and plays from there.
#[test]
fn a_balancers_whip_and_whep_redirects_are_followed() {
    const KEY: &str = "shared-cluster-key-for-tests-0123456789";
    let (port, rtmp) = (free_port(), free_port());
    let mut config = format!("cluster_key {KEY};\n");
    for index in 1..=2 {
        config.push_str(&format!(
            "peer 127.0.0.{index}:{port} {{ fetch_timeout 300; stale_timeout 1500; }}\n"
        ));
    }
    config.push_str("stream news { input test://; segment_duration 1; }\n");
    config.push_str("template live { prefix live; segment_duration 1; }\n");
    config.push_str(&format!("balancer lb {{ server 127.0.0.2:{port}; }}\n"));
    let balancer = member(1, "balancer", port, rtmp, &config);
    let server = member(2, "server", port, rtmp, &config);
    wait_for_status(server.http, "/news/index.m3u8", 200);
    let redirected = poll_until(Duration::from_secs(20), || {
        let (status, head, _) = http_post(balancer.http, "/lb/news/whep", &[]).ok()?;
        (status == 307 && head.contains(&format!("127.0.0.2:{port}/news/whep"))).then_some(())
    });
    assert!(
        redirected.is_some(),
        "the balancer sends WHEP to the server"
    );
    let page = PageServer::start(page_html(&format!(
        "await whep('http://{}/lb/news/whep');",
        balancer.http
    )));
    let browser = Browser::open_with(&format!("{}/", page.origin), &WEBRTC_FLAGS);
    let last = keeps_playing(&page, 10);
    let resource = last["whepResource"].as_str().unwrap_or_default();
    assert!(
        resource.starts_with(&format!("http://127.0.0.2:{port}/news/whep/")),
        "the resource lives on the server: {last}"
    );
    drop(browser);

    // A browser's WHIP publish through the balancer, played back through it.
    let round_trip = PageServer::start(page_html(&format!(
        "await whip('http://{0}/lb/live/web/whip'); \
         await new Promise((done) => setTimeout(done, 3000)); \
         await whep('http://{0}/lb/live/web/whep');",
        balancer.http
    )));
    let _browser = Browser::open_with(&format!("{}/", round_trip.origin), &WEBRTC_FLAGS);
    let report = wait_for(
        &round_trip,
        CONNECT_DEADLINE,
        "WHEP of the WHIP stream",
        |r| {
            r["framesDecoded"].as_u64().unwrap_or(0) > 0
                && r["audioPackets"].as_u64().unwrap_or(0) > 0
        },
    );
    assert_eq!(report["whipState"], "connected", "{report}");
    let (_, _, streams) = http_get(server.http, "/streamer/api/v3/streams", &[]).unwrap();
    assert!(
        streams.contains("\"live/web\""),
        "published on the server: {streams}"
    );
}

/// WHEP on a node that relays the stream from its owner (`cluster_play relay`): a
/// browser publishes over WHIP to the origin (into a template's stream), and plays the
/// edge's relayed copy over WHEP, video and Opus audio.
#[test]
fn whep_plays_a_relayed_copy_of_a_whip_stream() {
    const KEY: &str = "shared-cluster-key-for-tests-0123456789";
    let (port, rtmp) = (free_port(), free_port());
    let config = shared_config(port, KEY, &[41, 42]) + "cluster_play relay;\n";
    let origin = member(41, "origin", port, rtmp, &config);
    let edge = member(42, "edge", port, rtmp, &config);
    let page = PageServer::start(page_html(&format!(
        "await whip('http://{}/live/web/whip'); \
         await new Promise((done) => setTimeout(done, 4000)); \
         await whep('http://{}/live/web/whep');",
        origin.http, edge.http
    )));
    let _browser = Browser::open_with(&format!("{}/", page.origin), &WEBRTC_FLAGS);
    let report = wait_for(
        &page,
        CONNECT_DEADLINE,
        "WHEP audio and video from the edge",
        |r| {
            r["framesDecoded"].as_u64().unwrap_or(0) > 0
                && r["audioPackets"].as_u64().unwrap_or(0) > 0
        },
    );
    let resource = report["whepResource"].as_str().unwrap_or_default();
    assert!(
        resource.starts_with(&format!("http://{}/live/web/whep/", edge.http)),
        "played on the edge, not redirected: {report}"
    );
    keeps_playing(&page, 10);
    let (_, _, streams) = http_get(edge.http, "/streamer/api/v3/streams", &[]).unwrap();
    assert!(streams.contains("\"relayed\":true"), "{streams}");
}

/// A benchmark, not a check (`scripts/bench-webrtc.sh` runs it): WHEP time to first
/// frame in Chromium, from the offer to the first decoded frame, for 10 viewers one after
/// another on one page, of an RTMP publish by ffmpeg (25 fps, a keyframe every 2 s).
#[test]
#[ignore]
fn whep_time_to_first_frame_in_chromium() {
    let (http, rtmp) = (free_port(), free_port());
    let at = SocketAddr::from(([127, 0, 0, 1], http));
    let config = format!(
        "http 127.0.0.1:{http};\nrtmp 127.0.0.1:{rtmp};\nloglevel error;\n\
         template live {{ prefix live; segment_duration 2; }}\n"
    );
    let _node = Node::start(&config, at, &[], &[]);
    let _publisher = Ffmpeg::publish_pattern(&format!("rtmp://127.0.0.1:{rtmp}/live/ttff"), 0.0);
    wait_for_status(at, "/live/ttff/index.m3u8", 200);
    let mut firsts = Vec::new();
    for _ in 0..10 {
        let page = PageServer::start(page_html(&format!(
            "await whep('http://{at}/live/ttff/whep');"
        )));
        let _browser = Browser::open_with(&format!("{}/", page.origin), &WEBRTC_FLAGS);
        let report = wait_for(&page, CONNECT_DEADLINE, "a first frame", |r| {
            r["firstFrameMs"].as_f64().is_some()
        });
        firsts.push(report["firstFrameMs"].as_f64().unwrap_or(f64::MAX));
    }
    firsts.sort_by(f64::total_cmp);
    println!(
        "whep_first_frame_ms in Chromium over {} viewers: min {:.0}, median {:.0}, max {:.0}",
        firsts.len(),
        firsts[0],
        firsts[firsts.len() / 2],
        firsts[firsts.len() - 1]
    );
}

/// A browser's WHIP stream (H.264 + Opus) plays in hls.js over LL-HLS: Opus in fMP4
/// beside the video, 15 s without an error event.
#[test]
fn a_browsers_whip_stream_plays_in_hlsjs_over_ll_hls() {
    let http = free_port();
    let at = SocketAddr::from(([127, 0, 0, 1], http));
    let config = format!(
        "http 127.0.0.1:{http};\nloglevel error;\n\
         stream live {{ input publish://; segment_duration 1; chunk_duration 200; }}\n"
    );
    let node = Node::start(&config, at, &[], &[]);
    let publishing = PageServer::start(page_html(&format!("await whip('http://{at}/live/whip');")));
    let _publisher = Browser::open_with(&format!("{}/", publishing.origin), &WEBRTC_FLAGS);
    let running = poll_until(Duration::from_secs(30), || {
        let (_, _, playlist) = http_get(at, "/live/a1.ll.m3u8", &[]).ok()?;
        (playlist.matches("#EXTINF").count() >= 3).then_some(())
    });
    assert!(
        running.is_some(),
        "no Opus LL-HLS playlist\n{}",
        node.log_tail()
    );
    let (_, _, master) = http_get(at, "/live/index.ll.m3u8", &[]).unwrap();
    assert!(master.contains("opus"), "{master}");
    let player = PageServer::start(common::browser::hlsjs_page_with(
        at,
        &format!("http://{at}/live/index.ll.m3u8"),
        "{ lowLatencyMode: true }",
    ));
    let _viewer = Browser::open(&format!("{}/", player.origin));
    let report = common::browser::plays_recovering_from(
        &player,
        "hlsjs",
        15.0,
        2 * common::browser::LOW_LATENCY_STALLS_TOLERATED,
        &common::browser::LOW_LATENCY_RECOVERIES,
    );
    assert_eq!(report["videoWidth"], 640, "{report}");
}
