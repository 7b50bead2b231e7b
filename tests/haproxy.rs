//! Three nodes behind HAProxy (Debian's package), round-robin without cookies or any
//! stickiness, as operators put Ant Media or Flussonic clusters behind it: RTMP publish
//! through its TCP frontend lands on one node, and HLS and HTTP-MPEG-TS viewers through
//! its HTTP frontend are served by whichever node each request reaches. With
//! `cluster_play relay` every node serves the same playlists and segments, so every
//! request through HAProxy answers 200.

mod common;

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::ffmpeg::Ffmpeg;
use common::*;

const KEY: &str = "haproxy-test-cluster-key-0123456789abcdef";

/// HAProxy in the foreground, killed on drop (with the directory of its config).
struct Haproxy {
    child: Child,
    _dir: TempDir,
}

impl Haproxy {
    fn start(config: &str) -> Haproxy {
        let dir = TempDir::new("haproxy");
        let path = dir.write("haproxy.cfg", config);
        let child = Command::new("haproxy")
            .arg("-f")
            .arg(&path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("haproxy is installed by scripts/test.sh");
        Haproxy { child, _dir: dir }
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// HAProxy's config: TCP round-robin for RTMP, HTTP round-robin for the rest, no
/// cookies; a new connection per request reaches the next node.
fn haproxy_config(front: &str, http_port: u16, rtmp_port: u16, nodes: &[&str]) -> String {
    let servers = |port: u16| {
        nodes
            .iter()
            .enumerate()
            .map(|(i, host)| format!("    server n{i} {host}:{port}\n"))
            .collect::<String>()
    };
    format!(
        "global\n    maxconn 1000\n\
         defaults\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n\
         frontend rtmp\n    mode tcp\n    bind {front}:{rtmp_port}\n    default_backend rtmp_nodes\n\
         backend rtmp_nodes\n    mode tcp\n    balance roundrobin\n{}\
         frontend web\n    mode http\n    bind {front}:{http_port}\n    default_backend web_nodes\n\
         backend web_nodes\n    mode http\n    balance roundrobin\n{}",
        servers(rtmp_port),
        servers(http_port),
    )
}

/// The segment names of a media playlist's body.
fn segments(playlist: &str) -> Vec<String> {
    playlist
        .lines()
        .filter(|line| line.ends_with(".ts"))
        .map(str::to_string)
        .collect()
}

#[test]
fn behind_haproxy_round_robin_every_request_answers_200() {
    let (port, rtmp) = (free_port(), free_port());
    let config = shared_config(port, KEY, &[41, 42, 43]) + "cluster_play relay;\n";
    let nodes = [
        member(41, "a", port, rtmp, &config),
        member(42, "b", port, rtmp, &config),
        member(43, "c", port, rtmp, &config),
    ];
    let _haproxy = Haproxy::start(&haproxy_config(
        "127.0.0.40",
        port,
        rtmp,
        &["127.0.0.41", "127.0.0.42", "127.0.0.43"],
    ));
    let front: SocketAddr = format!("127.0.0.40:{port}").parse().unwrap();
    let _publisher = Ffmpeg::publish_clip(&format!("rtmp://127.0.0.40:{rtmp}/live/news"));
    // Once every node knows where the stream is (the mesh spreads it within a
    // fetch_timeout), whichever node a request reaches serves it.
    for node in &nodes {
        poll_until(Duration::from_secs(30), || {
            let (status, _, _) =
                http_get(node.http, "/live/news/tracks-v1a1/mono.m3u8", &[]).ok()?;
            (status == 200).then_some(())
        })
        .unwrap_or_else(|| panic!("{} serves the stream", node.http));
    }

    // A viewer through HAProxy for ~12 s: playlists and every new segment, each request
    // on a new connection (so each reaches the next node).
    let mut fetched = std::collections::BTreeSet::new();
    let mut requests = 0;
    for _ in 0..24 {
        let (status, head, body) =
            http_get(front, "/live/news/tracks-v1a1/mono.m3u8", &[]).expect("HAProxy answers");
        requests += 1;
        assert_eq!(status, 200, "playlist through HAProxy: {head}");
        for name in segments(&body) {
            if fetched.contains(&name) {
                continue;
            }
            let path = format!("/live/news/tracks-v1a1/{name}");
            let (status, bytes) = http_get_bytes(front, &path).expect("HAProxy answers");
            requests += 1;
            assert_eq!(status, 200, "{name} through HAProxy");
            assert!(!bytes.is_empty() && bytes[0] == 0x47, "{name} is MPEG-TS");
            fetched.insert(name);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(fetched.len() >= 10, "segments fetched: {}", fetched.len());
    assert!(requests >= 30);

    // Real players through HAProxy.
    let hls = format!("http://{front}/live/news/index.m3u8");
    let probed = ffprobe_streams(&hls);
    assert!(
        probed.contains("h264") && probed.contains("aac"),
        "{probed}"
    );
    for url in [hls, format!("http://{front}/live/news/mpegts")] {
        let output = Command::new("ffmpeg")
            .args(["-v", "error", "-i", &url, "-t", "4", "-f", "null", "-"])
            .stdin(Stdio::null())
            .output()
            .expect("ffmpeg is installed by scripts/test.sh");
        assert!(
            output.status.success(),
            "{url}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// HAProxy in TCP mode with `send-proxy` (v1) in front of RTMP and `send-proxy-v2` in
/// front of HTTP, connecting to the node from 127.0.0.2, the node's one trusted proxy:
/// the node sees each viewer's own address (127.0.0.1) in its sessions, publishers and
/// players get through; a PROXY header from anyone else is refused.
#[test]
fn behind_haproxy_send_proxy_the_node_sees_the_viewers_address() {
    let (port, rtmp) = (free_port(), free_port());
    let (front_http, front_rtmp) = (free_port(), free_port());
    let at = SocketAddr::from(([127, 0, 0, 1], port));
    let config = format!(
        "http 127.0.0.1:{port};\nrtmp 127.0.0.1:{rtmp};\ntrusted_proxies 127.0.0.2;\n\
         stream cam {{ input publish://; segment_duration 1; }}\n"
    );
    let node = Node::start(&config, at, &[], &[]);
    let _haproxy = Haproxy::start(&format!(
        "global\n    maxconn 100\n\
         defaults\n    mode tcp\n    timeout connect 2s\n    timeout client 60s\n    timeout server 60s\n\
         listen rtmp\n    bind 127.0.0.1:{front_rtmp}\n    server n 127.0.0.1:{rtmp} send-proxy source 127.0.0.2\n\
         listen web\n    bind 127.0.0.1:{front_http}\n    server n 127.0.0.1:{port} send-proxy-v2 source 127.0.0.2\n"
    ));
    // ffmpeg does not retry: HAProxy must listen before it connects.
    for front in [front_rtmp, front_http] {
        poll_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", front)).ok()
        })
        .expect("HAProxy listens");
    }
    let _publisher = Ffmpeg::publish_clip(&format!("rtmp://127.0.0.1:{front_rtmp}/static/cam"));
    let front = SocketAddr::from(([127, 0, 0, 1], front_http));
    poll_until(Duration::from_secs(20), || {
        let (status, _, _) = http_get(front, "/cam/tracks-v1a1/mono.m3u8", &[]).ok()?;
        (status == 200).then_some(())
    })
    .unwrap_or_else(|| panic!("published and played through HAProxy:\n{}", node.log_tail()));
    // An RTMP player through HAProxy, watched in the sessions API while it plays.
    let player = std::thread::spawn(move || {
        common::play::ffmpeg_plays(&format!("rtmp://127.0.0.1:{front_rtmp}/static/cam"), 4)
    });
    let sessions = poll_until(Duration::from_secs(10), || {
        let (_, _, body) = http_get(at, "/streamer/api/v3/sessions", &[]).ok()?;
        let sessions: serde_json::Value = serde_json::from_str(&body).ok()?;
        let list = sessions["sessions"].as_array()?.clone();
        list.iter().any(|s| s["protocol"] == "rtmp").then_some(list)
    })
    .expect("the RTMP player has a session");
    for session in &sessions {
        assert_eq!(
            session["ip"], "127.0.0.1",
            "the viewer's address, not HAProxy's: {session}"
        );
    }
    let (played, stderr) = player.join().unwrap();
    assert!(played, "ffmpeg plays RTMP through HAProxy: {stderr}");
    // A PROXY header from an address that is not a trusted proxy is not believed.
    let (status, _, _) = {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(at).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream
            .write_all(b"PROXY TCP4 192.0.2.9 127.0.0.1 5000 80\r\nGET /cam/index.m3u8 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        let status: u16 = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        (status, (), ())
    };
    assert_eq!(status, 400, "an untrusted PROXY header is a bad request");
}
