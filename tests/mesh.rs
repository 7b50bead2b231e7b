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
    let (status, head, _) = http_get(a.http, "/live/news/index.m3u8?flotilla_hop=3", &[]).unwrap();
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
    let (status, _, _) = http_get(a.http, "/live/news/index.m3u8", &[]).unwrap();
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
