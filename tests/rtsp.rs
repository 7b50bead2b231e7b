//! IP cameras over RTSP, with a real RTSP server (GStreamer's): RTP interleaved on TCP
//! and over UDP, Digest authentication, a camera that reboots, and a wrong password; each
//! stream played back with ffprobe and ffmpeg.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::camera::Camera;
use common::play::{ffmpeg_plays, media_playlist};
use common::*;

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Starts a node with `streams` (stream blocks) on a free port.
fn node_with(streams: &str) -> (Node, SocketAddr) {
    let port = free_port();
    let node = Node::start(
        &format!("http 127.0.0.1:{port};\n{streams}"),
        local(port),
        &[],
        &[],
    );
    (node, local(port))
}

fn probe(at: SocketAddr, name: &str) -> String {
    ffprobe_streams(&format!("http://{at}/{name}/index.m3u8"))
}

/// Cameras pulled with RTP interleaved on the RTSP connection and with RTP over UDP. Both
/// streams carry the camera's H.264 at its size and its AAC, and play. (One camera each:
/// in a CI run the camera process died as a UDP client joined the shared media a TCP
/// client was playing; a camera per transport keeps the test about the node.)
#[test]
fn a_camera_is_pulled_over_tcp_and_udp() {
    let tcp_camera = Camera::start(free_port(), "h264", None);
    let udp_camera = Camera::start(free_port(), "h264", None);
    let (node, at) = node_with(&format!(
        "stream cam_tcp {{ input {}; segment_duration 1; }}\n\
         stream cam_udp {{ input {} transport=udp; segment_duration 1; }}\n",
        tcp_camera.url, udp_camera.url
    ));
    for name in ["cam_tcp", "cam_udp"] {
        poll_until(Duration::from_secs(30), || media_playlist(at, name))
            .unwrap_or_else(|| panic!("{name} is pulled from the camera:\n{}", node.log_tail()));
        let streams = probe(at, name);
        assert!(
            streams.contains("h264") && streams.contains("640") && streams.contains("aac"),
            "{name}: {streams}"
        );
    }
    let (played, errors) = ffmpeg_plays(&format!("http://{at}/cam_tcp/index.m3u8"), 3);
    assert!(played, "{errors}");
}

/// An H.265 camera: its HEVC passes to HLS and HTTP-MPEG-TS as it is, with its AAC.
#[test]
fn an_h265_camera_plays_over_hls_and_http_mpegts() {
    let camera = Camera::start(free_port(), "h265", None);
    let (node, at) = node_with(&format!(
        "stream cam {{ input {}; segment_duration 1; }}\n",
        camera.url
    ));
    poll_until(Duration::from_secs(30), || media_playlist(at, "cam"))
        .unwrap_or_else(|| panic!("the H.265 camera is pulled:\n{}", node.log_tail()));
    for url in [
        format!("http://{at}/cam/index.m3u8"),
        format!("http://{at}/cam/mpegts"),
    ] {
        let streams = ffprobe_streams(&url);
        assert!(
            streams.contains("hevc") && streams.contains("width=640") && streams.contains("aac"),
            "{url}: {streams}"
        );
    }
    let (played, errors) = ffmpeg_plays(&format!("http://{at}/cam/index.m3u8"), 3);
    assert!(played, "{errors}");
}

/// A camera behind Digest authentication: the right credentials in the URL play (and
/// never reach the log or the API), a wrong password is a clear error for that stream.
#[test]
fn digest_credentials_play_and_a_wrong_password_is_a_clear_error() {
    let camera = Camera::start(free_port(), "h264", Some(("admin", "s3cret")));
    let with = |password: &str| {
        camera
            .url
            .replace("rtsp://", &format!("rtsp://admin:{password}@"))
    };
    let (node, at) = node_with(&format!(
        "stream cam {{ input {}; segment_duration 1; }}\n\
         stream wrong {{ input {}; segment_duration 1; }}\n",
        with("s3cret"),
        with("nope")
    ));
    poll_until(Duration::from_secs(30), || media_playlist(at, "cam")).unwrap_or_else(|| {
        panic!(
            "the camera plays with its credentials:\n{}",
            node.log_tail()
        )
    });
    let refused = poll_until(Duration::from_secs(20), || {
        let log = node.log_tail();
        (log.contains("input failed") && log.contains("401")).then_some(log)
    })
    .expect("the wrong password fails its input");
    assert!(
        refused.contains("Unauthorized"),
        "the camera's refusal is named:\n{refused}"
    );
    assert!(
        !refused.contains("s3cret") && !refused.contains(":nope@"),
        "no password in the log:\n{refused}"
    );
    let (_, _, api) = http_get(at, "/streamer/api/v3/streams", &[]).unwrap();
    assert!(!api.contains("s3cret"), "no password in the API: {api}");
    assert!(media_playlist(at, "wrong").is_none());
}

/// A camera that reboots: the stream's input fails, the supervisor reconnects, and the
/// stream's playlist goes on (its media sequence never going back).
#[test]
fn a_camera_that_reboots_is_reconnected_and_the_playlist_goes_on() {
    let port = free_port();
    let camera = Camera::start(port, "h264", None);
    let (node, at) = node_with(&format!(
        "stream cam {{ input {}; segment_duration 1; source_timeout 3; }}\n",
        camera.url
    ));
    let (before, _) = poll_until(Duration::from_secs(30), || media_playlist(at, "cam"))
        .unwrap_or_else(|| panic!("the camera plays:\n{}", node.log_tail()));
    drop(camera);
    std::thread::sleep(Duration::from_secs(2));
    let _camera = Camera::start(port, "h264", None);
    let after = poll_until(Duration::from_secs(40), || {
        let (sequence, _) = media_playlist(at, "cam")?;
        (sequence > before + 3).then_some(sequence)
    });
    assert!(
        after.is_some(),
        "the stream goes on after the reboot:\n{}",
        node.log_tail()
    );
}
