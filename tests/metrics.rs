//! Metrics as Prometheus reads them: a node with a published stream, an HLS viewer and an
//! RTMP player is scraped on `/flotilla/api/metrics` and on the streams list in its
//! OpenMetrics form (by query and by `Accept`), and each text is parsed by Prometheus's
//! own Python parser (`prometheus_client.openmetrics`), which refuses anything that is not
//! valid OpenMetrics. The scrape is behind view_auth like the rest of the API.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::ffmpeg::Ffmpeg;
use common::play::media_playlist;
use common::*;

/// The samples of an OpenMetrics text, parsed by prometheus_client:
/// sample name → [(labels, value)].
type Samples = HashMap<String, Vec<(HashMap<String, String>, f64)>>;

fn parse(text: &str) -> Samples {
    const PARSER: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
samples = {}
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        samples.setdefault(s.name, []).append([s.labels, s.value])
print(json.dumps(samples))
"#;
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", PARSER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3-prometheus-client is installed by scripts/test.sh");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "Prometheus's parser refuses the text: {}\n{text}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the parser's JSON")
}

fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples.get(name)?.iter().find_map(|(have, value)| {
        labels
            .iter()
            .all(|(k, v)| have.get(*k).map(String::as_str) == Some(*v))
            .then_some(*value)
    })
}

#[test]
fn prometheus_parses_the_scrapes_and_they_count_what_runs() {
    let (port, rtmp) = (free_port(), free_port());
    let at = SocketAddr::from(([127, 0, 0, 1], port));
    let config = format!(
        "http 127.0.0.1:{port};\nrtmp 127.0.0.1:{rtmp};\nview_auth watcher s3e;\n\
         stream cam {{ input publish://; segment_duration 1; }}\n\
         stream waiting/one {{ input publish://; }}\n"
    );
    let node = Node::start(&config, at, &[], &[]);
    let _publisher = Ffmpeg::publish_clip(&format!("rtmp://127.0.0.1:{rtmp}/static/cam"));
    poll_until(Duration::from_secs(20), || media_playlist(at, "cam"))
        .unwrap_or_else(|| panic!("cam is published:\n{}", node.log_tail()));
    let rtmp_url = format!("rtmp://127.0.0.1:{rtmp}/static/cam");
    let player = std::thread::spawn(move || common::play::ffmpeg_plays(&rtmp_url, 4));
    let auth = [("Authorization", basic("watcher", "s3e"))];
    let auth: Vec<(&str, &str)> = auth.iter().map(|(k, v)| (*k, v.as_str())).collect();
    // Without credentials: refused like the rest of the API.
    let (status, _, _) = http_get(at, "/flotilla/api/metrics", &[]).unwrap();
    assert_eq!(status, 401);
    let scrape = poll_until(Duration::from_secs(10), || {
        let (status, head, body) = http_get(at, "/flotilla/api/metrics", &auth).ok()?;
        assert_eq!(status, 200);
        assert!(head.contains("application/openmetrics-text"), "{head}");
        let samples = parse(&body);
        let player = [("name", "cam"), ("protocol", "rtmp")];
        // The node's totals come from its stats sampler, a moment behind the sessions.
        (value(&samples, "flotilla_stream_viewers", &player) == Some(1.0)
            && value(&samples, "server_total_clients", &[]).unwrap_or(0.0) >= 2.0)
            .then_some(samples)
    })
    .expect("the RTMP player is counted");
    // The HLS viewer of media_playlist() and the RTMP player.
    assert_eq!(
        value(
            &scrape,
            "flotilla_stream_viewers",
            &[("name", "cam"), ("protocol", "hls")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&scrape, "stream_online_clients", &[("name", "cam")]),
        Some(2.0)
    );
    assert_eq!(
        value(&scrape, "flotilla_stream_alive", &[("name", "cam")]),
        Some(1.0)
    );
    assert!(value(&scrape, "stream_bytes_in", &[("name", "cam")]).unwrap_or(0.0) > 10_000.0);
    assert!(
        value(
            &scrape,
            "flotilla_stream_frames_in_total",
            &[("name", "cam")]
        )
        .unwrap_or(0.0)
            > 10.0
    );
    assert!(value(&scrape, "server_opened_files", &[]).unwrap_or(0.0) > 5.0);
    assert!(value(&scrape, "flotilla_node_received_bytes_total", &[]).unwrap_or(0.0) > 10_000.0);
    assert!(value(&scrape, "flotilla_actors", &[("kind", "session")]).unwrap_or(0.0) >= 2.0);
    // A stream nobody publishes to is listed, not alive.
    assert_eq!(
        value(&scrape, "flotilla_stream_alive", &[("name", "waiting/one")]),
        Some(0.0)
    );
    // The streams list in its OpenMetrics form: Flussonic's families only.
    for (path, headers) in [
        ("/streamer/api/v3/streams?format=openmetrics", auth.clone()),
        (
            "/flussonic/api/v3/streams",
            [
                auth.clone(),
                vec![("Accept", "application/openmetrics-text; version=1.0.0")],
            ]
            .concat(),
        ),
    ] {
        let (status, _, body) = http_get(at, path, &headers).unwrap();
        assert_eq!(status, 200, "{path}");
        let samples = parse(&body);
        assert!(
            value(&samples, "stream_bitrate", &[("name", "cam")]).unwrap_or(0.0) > 0.0,
            "{path}: {body}"
        );
        assert!(
            samples.keys().all(|name| !name.starts_with("flotilla_")),
            "{path}"
        );
    }
    let (played, stderr) = player.join().unwrap();
    assert!(played, "{stderr}");
}

/// Two meshed nodes: each one's scrape shows the other up, with the age of the last
/// exchange and the mesh connection's round-trip time.
#[test]
fn peers_are_scraped_with_their_state_and_round_trip() {
    const KEY: &str = "metrics-test-cluster-key-0123456789abcdef";
    let (port, rtmp) = (free_port(), free_port());
    let config = shared_config(port, KEY, &[91, 92]);
    let a = member(91, "a", port, rtmp, &config);
    let _b = member(92, "b", port, rtmp, &config);
    let peer = format!("127.0.0.92:{port}");
    let samples = poll_until(Duration::from_secs(15), || {
        let (_, _, body) = http_get(a.http, "/flotilla/api/metrics", &[]).ok()?;
        let samples = parse(&body);
        let labels = [("peer", peer.as_str())];
        (value(&samples, "flotilla_peer_up", &labels) == Some(1.0)
            && value(&samples, "flotilla_peer_rtt_seconds", &labels).is_some())
        .then_some(samples)
    })
    .expect("the peer is up, with a round-trip time");
    let labels = [("peer", peer.as_str())];
    let age = value(&samples, "flotilla_peer_last_exchange_age_seconds", &labels).unwrap();
    assert!(
        (0.0..1.5).contains(&age),
        "exchanged within stale_timeout: {age}"
    );
    let rtt = value(&samples, "flotilla_peer_rtt_seconds", &labels).unwrap();
    assert!((0.0..0.5).contains(&rtt), "loopback: {rtt}");
    // Open connections: at least the scrape's own.
    assert!(
        value(
            &samples,
            "flotilla_open_connections",
            &[("listener", "http")]
        )
        .unwrap()
            >= 1.0
    );
}
