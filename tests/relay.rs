//! RTMP relays between real nodes: a node relays a peer's stream for its RTMP players
//! from the stream's owner, never from another node's copy, and a relay that fails
//! leaves nothing behind: HTTP requests on that node go on to the new owner at once.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::ffmpeg::Ffmpeg;
use common::*;
use flotilla::rtmp::client::RtmpClient;
use flotilla::rtmp::flv::Depacketizer;

const KEY: &str = "relay-test-cluster-key-0123456789abcdef";

/// Longest a request may take to be answered (a stuck registration made it 20 s).
const ANSWER_DEADLINE: Duration = Duration::from_secs(1);

/// Plays `live/NAME` over RTMP on `at` until the first frame arrives; the connection is
/// kept open by the returned runtime and client.
fn rtmp_player(at: &str, name: &str) -> (tokio::runtime::Runtime, RtmpClient) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = runtime.block_on(async {
        let mut player = RtmpClient::connect(at, "live").await.unwrap();
        player.play(name).await.expect("the relay plays");
        let mut depacketizer = Depacketizer::new();
        player
            .next_frame(&mut depacketizer)
            .await
            .expect("a frame through the relay");
        player
    });
    (runtime, client)
}

/// The `location` of a 302 (lower-cased header name).
fn location(head: &str) -> Option<String> {
    head.lines().find_map(|line| {
        line.to_ascii_lowercase()
            .strip_prefix("location: ")
            .map(str::to_string)
    })
}

fn stream_on(at: SocketAddr, name: &str) -> bool {
    matches!(
        http_get(at, &format!("/live/{name}/index.m3u8"), &[]),
        Ok((200, _, _))
    )
}

#[test]
#[allow(clippy::disallowed_methods)] // Measures real answer times.
fn relays_come_from_the_owner_and_a_failed_relay_leaves_nothing_behind() {
    let (port, rtmp) = (free_port(), free_port());
    let config = shared_config(port, KEY, &[4, 5, 6]);
    let a = member(4, "a", port, rtmp, &config);
    let b = member(5, "b", port, rtmp, &config);
    let c = member(6, "c", port, rtmp, &config);
    let publisher = Ffmpeg::publish_clip(&format!("rtmp://{}/live/news", a.rtmp));
    assert!(
        poll_until(Duration::from_secs(20), || stream_on(a.http, "news")
            .then_some(()))
        .is_some(),
        "a has the stream"
    );
    // b relays a's stream for an RTMP player: b now holds a copy.
    let b_player = poll_until(Duration::from_secs(20), || {
        let (status, _, _) = http_get(b.http, "/live/news/index.m3u8", &[]).ok()?;
        (status == 302).then_some(())
    })
    .map(|()| rtmp_player(&b.rtmp, "news"))
    .expect("b learns that a has the stream");
    assert!(stream_on(b.http, "news"), "b serves its relay copy");
    // Nobody is sent to a copy: c's viewers go to the owner, however often c asks.
    for _ in 0..10 {
        let (status, head, _) = http_get(c.http, "/live/news/index.m3u8", &[]).unwrap();
        assert_eq!(status, 302, "{head}");
        let to = location(&head).unwrap();
        assert!(to.starts_with(&format!("http://{}/", a.http)), "{to}");
    }
    // c relays for its own RTMP player, from a.
    let c_player = rtmp_player(&c.rtmp, "news");
    assert!(stream_on(c.http, "news"));

    // b's player leaves (its relay stops), then the owner's publisher: c's relay, with
    // its player still on, loses its source. The stream comes back on b.
    drop(b_player);
    assert!(
        poll_until(Duration::from_secs(10), || (!stream_on(b.http, "news"))
            .then_some(()))
        .is_some(),
        "b's relay stops with its last player"
    );
    drop(publisher);
    let republished = Ffmpeg::publish_clip(&format!("rtmp://{}/live/news", b.rtmp));
    let start = Instant::now();
    let moved = poll_until(Duration::from_secs(40), || {
        let asked = Instant::now();
        let answer = http_get(c.http, "/live/news/index.m3u8", &[]);
        let took = asked.elapsed();
        assert!(
            took < ANSWER_DEADLINE,
            "c took {took:?} to answer after {:?}: {answer:?}",
            start.elapsed()
        );
        let (status, head, _) = answer.ok()?;
        assert!(
            matches!(status, 200 | 302 | 404),
            "c answered {status}: {head}"
        );
        (status == 302).then(|| location(&head)).flatten()
    })
    .expect("c sends viewers to the new owner");
    assert!(moved.starts_with(&format!("http://{}/", b.http)), "{moved}");
    drop(c_player);
    drop(republished);
}
