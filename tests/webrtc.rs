//! WHIP and WHEP against what a client can get wrong or do to a node: bad offers, the
//! wrong content type, a resource deleted twice, garbage datagrams at a peer
//! connection's port, a client that never connects. Offers come from str0m acting as
//! the client (the same stack as the node, on its own side of the negotiation); the
//! browser tests (tests/browser_webrtc.rs) play media end to end.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use str0m::media::{Direction, MediaKind};

/// A client's offer: `direction` video and audio, as a WHIP publisher (send) or a WHEP
/// viewer (receive) makes it.
fn offer(direction: Direction) -> String {
    #[allow(clippy::disallowed_methods)] // The client's own clock, outside any node.
    let now = std::time::Instant::now();
    let mut client = str0m::Rtc::builder()
        .set_crypto_provider(Arc::new(str0m::crypto::from_feature_flags()))
        .build(now);
    let mut change = client.sdp_api();
    change.add_media(MediaKind::Video, direction, None, None, None);
    change.add_media(MediaKind::Audio, direction, None, None, None);
    let (offer, _pending) = change.apply().expect("an offer with media");
    offer.to_sdp_string()
}

/// One request with a body: (status, head, body); status 0 when there was no answer.
fn request(
    at: SocketAddr,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (u16, String, String) {
    http_exchange(method, at, path, &[("Content-Type", content_type)], body).unwrap_or((
        0,
        String::new(),
        String::new(),
    ))
}

/// A publisher's offer POSTed to `path`.
fn publish(at: SocketAddr, path: &str) -> (u16, String, String) {
    let sdp = offer(Direction::SendOnly);
    request(at, "POST", path, "application/sdp", sdp.as_bytes())
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.eq_ignore_ascii_case(name).then(|| value.trim())
    })
}

/// The UDP port of the answer's host candidate.
fn candidate_port(answer: &str) -> u16 {
    let line = answer
        .lines()
        .find(|line| line.starts_with("a=candidate:"))
        .unwrap_or_else(|| panic!("no candidate in the answer:\n{answer}"));
    line.split_whitespace()
        .nth(5)
        .and_then(|port| port.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line}"))
}

fn node() -> (Node, SocketAddr) {
    let http = free_port();
    let at = SocketAddr::from(([127, 0, 0, 1], http));
    let config = format!(
        "http 127.0.0.1:{http};\nwebrtc_ports 46000-46099;\n\
         stream live {{ input publish://; }}\nstream other {{ input publish://; }}\n\
         stream nowebrtc {{ input test://; protocols -webrtc; }}\n\
         stream tv {{ input test://; }}\n"
    );
    (Node::start(&config, at, &[], &[]), at)
}

#[test]
fn bad_requests_get_an_http_error_that_says_why() {
    let (node, at) = node();
    let sdp = offer(Direction::SendOnly);
    let (status, _, body) = request(at, "POST", "/live/whip", "text/plain", sdp.as_bytes());
    assert_eq!(status, 415, "{body}");
    assert!(body.contains("application/sdp"), "{body}");
    let (status, _, body) = request(
        at,
        "POST",
        "/live/whip",
        "application/sdp",
        b"v=0\r\nthis is not an offer\r\n",
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("not valid SDP"), "{body}");
    let huge = vec![b'a'; 200 * 1024];
    let (status, _, body) = request(at, "POST", "/live/whip", "application/sdp", &huge);
    assert_eq!(status, 413, "{body}");
    let (status, _, body) = request(
        at,
        "POST",
        "/nothere/whip",
        "application/sdp",
        sdp.as_bytes(),
    );
    assert_eq!(status, 404, "{body}");
    let (status, _, body) = request(
        at,
        "POST",
        "/nothere/whep",
        "application/sdp",
        sdp.as_bytes(),
    );
    assert_eq!(status, 404, "{body}");
    // A viewer the stream's rules refuse, as over any protocol.
    let (status, _, body) = request(
        at,
        "POST",
        "/nowebrtc/whep",
        "application/sdp",
        offer(Direction::RecvOnly).as_bytes(),
    );
    assert_eq!(status, 403, "{body}");
    let (status, _, _) = request(at, "DELETE", "/live/whip/00ff00ff", "application/sdp", b"");
    assert_eq!(status, 404);
    let (status, head, _) = request(
        at,
        "PATCH",
        "/live/whip/00ff00ff",
        "application/trickle-ice-sdpfrag",
        b"",
    );
    assert_eq!(status, 405, "{head}");
    let (status, head, _) = request(at, "GET", "/live/whip", "application/sdp", b"");
    assert_eq!(status, 405, "{head}");
    assert!(
        header(&head, "allow").is_some_and(|allow| allow.contains("POST")),
        "{head}"
    );
    // The node is unharmed.
    let (status, _, _) = http_get(at, "/flotilla/api/health", &[]).unwrap();
    assert_eq!(status, 200, "{}", node.log_tail());
}

/// A publisher's resource: garbage at its port changes nothing, a second publisher is
/// refused while it holds the stream, DELETE ends it once (then 404), and the stream
/// takes a new publisher at once.
#[test]
fn a_whip_resource_survives_garbage_and_is_deleted_once() {
    let (node, at) = node();
    let (status, head, answer) = publish(at, "/live/whip");
    assert_eq!(status, 201, "{head}\n{answer}");
    assert!(
        header(&head, "content-type") == Some("application/sdp"),
        "{head}"
    );
    let location = header(&head, "location").expect("a Location").to_string();
    assert!(location.starts_with("/live/whip/"), "{location}");
    let port = candidate_port(&answer);
    assert!((46_000..=46_099).contains(&port), "{port}");

    // Garbage from an address the connection never heard of: not STUN for it, a DTLS
    // record out of nowhere, random bytes, an empty datagram.
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let target = SocketAddr::from(([127, 0, 0, 1], port));
    let mut dtls = vec![0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 1, 0, 40];
    dtls.extend(std::iter::repeat_n(0xab, 40));
    let stun = [
        0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
    ];
    for datagram in [&dtls[..], &stun[..], &[0x80; 1200][..], &[][..]] {
        for _ in 0..50 {
            stranger.send_to(datagram, target).unwrap();
        }
    }
    let (status, _, body) = publish(at, "/live/whip");
    assert_eq!(
        status, 409,
        "the first publisher still holds the stream: {body}"
    );

    let (status, _, _) = request(at, "DELETE", &location, "application/sdp", b"");
    assert_eq!(status, 200, "{}", node.log_tail());
    let (status, _, _) = request(at, "DELETE", &location, "application/sdp", b"");
    assert_eq!(status, 404);
    let retaken = poll_until(Duration::from_secs(5), || {
        let (status, head, _) = publish(at, "/live/whip");
        (status == 201).then(|| header(&head, "location").map(str::to_string))?
    });
    let retaken = retaken.expect("the stream takes a new publisher once the first is deleted");
    let (status, _, _) = request(at, "DELETE", &retaken, "application/sdp", b"");
    assert_eq!(status, 200);
    let (status, _, _) = http_get(at, "/flotilla/api/health", &[]).unwrap();
    assert_eq!(status, 200, "{}", node.log_tail());
}

/// A client that gets its answer but never connects is let go after the connect
/// deadline (15 s): its resource ends and its stream takes another publisher.
#[test]
fn a_client_that_never_connects_is_let_go() {
    let (_node, at) = node();
    let (status, head, _) = publish(at, "/other/whip");
    assert_eq!(status, 201, "{head}");
    let location = header(&head, "location").unwrap().to_string();
    let freed = poll_until(Duration::from_secs(25), || {
        let (status, head, _) = publish(at, "/other/whip");
        (status == 201).then(|| header(&head, "location").map(str::to_string))?
    });
    assert!(
        freed.is_some(),
        "the stream is free again after the connect deadline"
    );
    let (status, _, _) = request(at, "DELETE", &location, "application/sdp", b"");
    assert_eq!(status, 404, "the unconnected resource ended");
}

/// flotilla's own WHEP client plays the test stream over UDP, and over ICE-TCP alone (a
/// client whose UDP is blocked): pictures arrive either way.
#[test]
fn whep_plays_over_udp_and_over_ice_tcp() {
    use flotilla::webrtc::client::{Transport, watch};
    let (node, at) = node();
    common::browser::wait_for_status(at, "/tv/index.m3u8", 200);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for transport in [Transport::Udp, Transport::Tcp] {
        #[allow(clippy::disallowed_methods)] // The client's own clock, outside any node.
        let until = std::time::Instant::now() + Duration::from_secs(4);
        let watched = runtime
            .block_on(watch(at, "/tv/whep", until, transport))
            .unwrap_or_else(|error| panic!("{transport:?}: {error}\n{}", node.log_tail()));
        assert!(
            watched.pictures >= 25,
            "{transport:?}: {watched:?}\n{}",
            node.log_tail()
        );
        assert!(watched.first_picture.is_some(), "{watched:?}");
    }
}
