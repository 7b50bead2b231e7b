//! The cluster mesh with real nodes on loopback: three nodes run one shared config file
//! (each with its own hostname and, in its fragment directory, its own listen address),
//! redirect viewers to the node that has a stream, notice a dead node within
//! stale_timeout, refuse a node with another key, and learn peers from a seed.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use flotilla::rtmp::client::RtmpClient;
use flotilla::rtmp::flv::Depacketizer;

const KEY: &str = "shared-cluster-key-for-tests-0123456789";

fn peers_of(at: SocketAddr) -> serde_json::Value {
    let (_, _, body) = http_get(at, "/streamer/api/v3/cluster/peers", &[]).unwrap();
    serde_json::from_str(&body).unwrap()
}

fn state_of(at: SocketAddr, hostname_or_address: &str) -> Option<String> {
    let peers = peers_of(at);
    peers["peers"]
        .as_array()?
        .iter()
        .find(|p| p["hostname"] == hostname_or_address || p["address"] == hostname_or_address)
        .map(|p| p["state"].as_str().unwrap_or_default().to_string())
}

fn publish(to: &str, name: &str) -> std::process::Child {
    Command::new("ffmpeg")
        .args(["-v", "error", "-re", "-stream_loop", "-1", "-i"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/testsrc.ts"))
        .args(["-c", "copy", "-f", "flv"])
        .arg(format!("rtmp://{to}/live/{name}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ffmpeg is installed by scripts/test.sh")
}

#[test]
#[allow(clippy::disallowed_methods)] // Measures a real detection time.
fn three_nodes_redirect_viewers_and_notice_a_dead_peer() {
    let (port, rtmp) = (free_port(), free_port());
    let config = shared_config(port, KEY, &[1, 2, 3]);
    let a = member(1, "a", port, rtmp, &config);
    let mut b = member(2, "b", port, rtmp, &config);
    // C sends RTMP players the RTMP 302 instead of relaying.
    let c = member_with(3, "c", port, rtmp, &config, "rtmp_redirect true;\n");
    let alive = poll_until(Duration::from_secs(20), || {
        (state_of(a.http, "b")? == "alive" && state_of(a.http, "c")? == "alive").then_some(())
    });
    assert!(
        alive.is_some(),
        "a sees b and c alive: {}",
        peers_of(a.http)
    );

    // A stream on B only; A redirects to B, keeping the query.
    let mut publisher = publish(&b.rtmp, "news");
    let redirect = poll_until(Duration::from_secs(20), || {
        let (status, head, _) = http_get(a.http, "/live/news/index.m3u8?token=abc", &[]).ok()?;
        (status == 302).then_some(head)
    })
    .expect("a never redirected to b");
    let location = redirect
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("location:"))
        .unwrap()
        .to_string();
    assert!(
        location.contains(&format!("http://{}/live/news/index.m3u8?token=abc", b.http)),
        "{location}"
    );
    // ffprobe follows the redirect and plays.
    let output = ffprobe_streams(&format!("http://{}/live/news/index.m3u8?token=abc", a.http));
    assert!(output.contains("codec_name=h264|width=640"));
    // RTMP players cannot follow an HTTP redirect: A relays B's stream to them.
    let output = ffprobe_streams(&format!("rtmp://{}/static/live/news", a.rtmp));
    assert!(output.contains("codec_name=h264|width=640"), "rtmp relay");
    // C answers the play with the RTMP 302 to B; the player follows it and plays there.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let mut player = RtmpClient::connect(&c.rtmp, "live").await.unwrap();
        player.play("news").await.expect("the redirect is followed");
        assert_eq!(
            player.server(),
            b.rtmp,
            "played on the node that has the stream"
        );
        let mut depacketizer = Depacketizer::new();
        let frame = player.next_frame(&mut depacketizer).await.unwrap();
        assert!(
            frame.dts > 0 || frame.keyframe,
            "media arrives after the redirect"
        );
    });
    // A request redirected before (a load balancer sent it on to a node without the
    // stream) is sent to the owner again, its hops counted; past the limit it is told to
    // retry, never bounced forever; a stream nobody has is not found.
    let (status, head, _) = http_get(
        c.http,
        "/live/news/index.m3u8?flotilla_hop=1&token=abc",
        &[],
    )
    .unwrap();
    assert_eq!(status, 302, "{head}");
    assert!(
        head.contains(&format!(
            "http://{}/live/news/index.m3u8?token=abc&flotilla_hop=2",
            b.http
        )),
        "{head}"
    );
    // (C, not A: A serves its own relayed copy of the stream since its RTMP player.)
    let (status, head, _) = http_get(c.http, "/live/news/index.m3u8?flotilla_hop=3", &[]).unwrap();
    assert_eq!(status, 503, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    let (status, _, _) = http_get(a.http, "/live/nothing/index.m3u8?flotilla_hop=1", &[]).unwrap();
    assert_eq!(status, 404);

    // B dies: A calls it stale within stale_timeout (plus one exchange) and stops redirecting.
    let _ = publisher.kill();
    drop(b.node.take());
    let killed = Instant::now();
    let stale = poll_until(Duration::from_secs(10), || {
        (state_of(a.http, "b")? == "stale").then_some(())
    });
    let detection = killed.elapsed();
    assert!(stale.is_some(), "b never went stale on a");
    assert!(
        detection < Duration::from_millis(1500 + 300 + 1000),
        "stale after {detection:?}"
    );
    // Once C calls b stale too, it answers 404, not a redirect.
    poll_until(Duration::from_secs(5), || {
        (state_of(c.http, "b")? == "stale").then_some(())
    })
    .expect("c calls b stale");
    let (status, _, _) = http_get(c.http, "/live/news/index.m3u8", &[]).unwrap();
    assert_eq!(status, 404, "never redirect to a stale peer");
    println!("dead-peer detection: {detection:?} with stale_timeout 1500 ms, fetch_timeout 300 ms");
    let _ = publisher.wait();
}

#[test]
fn a_node_with_another_key_is_refused_and_a_seed_peer_teaches_the_rest() {
    let (port, rtmp) = (free_port(), free_port());
    let config = shared_config(port, KEY, &[1, 2]);
    let a = member(1, "a", port, rtmp, &config);
    let _b = member(2, "b", port, rtmp, &config);
    // C knows only A (a seed) and learns B from it.
    let seed_only = shared_config(port, KEY, &[1]);
    let c = member(3, "c", port, rtmp, &seed_only);
    let learnt = poll_until(Duration::from_secs(20), || {
        (state_of(c.http, "b")? == "alive").then_some(())
    });
    assert!(
        learnt.is_some(),
        "c learnt b through a: {}",
        peers_of(c.http)
    );

    // D holds another key: it never becomes alive, and A says why.
    let wrong = shared_config(port, "a-completely-different-key-987654", &[1, 4]);
    let d = member(4, "d", port, rtmp, &wrong);
    let a_address = format!("127.0.0.1:{port}");
    let refused = poll_until(Duration::from_secs(20), || {
        (state_of(d.http, &a_address)? == "unauthorized").then_some(())
    });
    assert!(
        refused.is_some(),
        "d sees a as unauthorized: {}",
        peers_of(d.http)
    );
    assert_ne!(state_of(a.http, "d").as_deref(), Some("alive"));
}

/// A QUIC v1 Initial packet of `MIN_INITIAL_BYTES` whose header reads well and whose
/// payload is noise: quinn takes it as a connection attempt (an `Incoming`) and refuses
/// it only when it cannot decrypt the payload, the refusal each spoofed packet used to
/// log (issue 30.11). About a quarter pass quinn's header checks (its reserved bits are
/// noise after header protection is removed).
fn spoofed_initial(noise: &mut impl FnMut() -> u8) -> Vec<u8> {
    /// Servers drop Initial datagrams shorter than this (RFC 9000 §14.1).
    const MIN_INITIAL_BYTES: usize = 1200;
    let mut packet = vec![0xC0 | (noise() & 0x0F), 0, 0, 0, 1, 8];
    packet.extend((0..8).map(|_| noise()));
    packet.push(8);
    packet.extend((0..8).map(|_| noise()));
    packet.push(0); // no token
    let rest = MIN_INITIAL_BYTES - packet.len() - 2;
    packet.extend_from_slice(&(0x4000 | rest as u16).to_be_bytes());
    packet.extend((0..rest).map(|_| noise()));
    packet
}

#[test]
fn spoofed_packets_at_the_mesh_port_are_logged_a_few_times_with_a_count() {
    /// Datagrams sent: spoofed Initials, then as many of random bytes and sizes.
    const DATAGRAMS: usize = 5_000;
    let port = free_port();
    let node = Node::start(
        &format!("cluster_key {KEY};\nhttp 127.0.0.1:{port};\n"),
        SocketAddr::from(([127, 0, 0, 1], port)),
        &[],
        &[],
    );
    // xorshift: reproducible noise without a generator crate.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state as u8
    };
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mesh = SocketAddr::from(([127, 0, 0, 1], port));
    for sent in 0..DATAGRAMS {
        let datagram = if sent % 2 == 0 {
            spoofed_initial(&mut noise)
        } else {
            let len = 1 + usize::from(noise()) * 5;
            (0..len).map(|_| noise()).collect()
        };
        socket.send_to(&datagram, mesh).unwrap();
        // Paced in bursts of 100, so that loopback's buffer keeps most of them.
        if sent % 100 == 99 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let http = SocketAddr::from(([127, 0, 0, 1], port));
    let (status, _, _) = http_get(http, "/flotilla/api/health", &[]).unwrap();
    assert_eq!(status, 200, "the node still answers");

    // One refusal is written, the rest summed up when the 10 s window ends.
    let summary = poll_until(Duration::from_secs(20), || {
        node.log_tail()
            .lines()
            .find(|line| {
                line.contains("mesh connection refused: ") && line.contains("more suppressed")
            })
            .map(str::to_string)
    })
    .unwrap_or_else(|| panic!("no summary line; the log ends:\n{}", node.log_tail()));
    let suppressed: usize = summary
        .split("mesh connection refused: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no count in {summary}"));
    assert!(
        suppressed >= 100,
        "the spoofed packets reached the refusal path: {summary}"
    );
    let log = node.log_tail();
    let refusals = log
        .lines()
        .filter(|line| line.contains("mesh connection refused"))
        .count();
    assert!(
        refusals <= 4,
        "{refusals} refusal lines for {suppressed}+ refusals:\n{log}"
    );
    let (status, _, _) = http_get(http, "/flotilla/api/health", &[]).unwrap();
    assert_eq!(status, 200);
}
