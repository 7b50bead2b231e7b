//! Pulling from the servers operators pull from, each a real one: an encoder's live HLS
//! served by nginx (`hls://`), nginx-rtmp and another flotilla (`rtmp://`). Each pulled
//! stream is played back with ffprobe and ffmpeg, and a source that stops is a clear
//! error for its stream.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::ffmpeg::Ffmpeg;
use common::nginx::Nginx;
use common::play::{ffmpeg_plays, media_playlist};
use common::*;

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// ffprobe's view of stream `name` on `at`: codecs and the picture size.
fn probe(at: SocketAddr, name: &str) -> String {
    ffprobe_streams(&format!("http://{at}/{name}/index.m3u8"))
}

/// An encoder writes live HLS (1 s segments) that nginx serves; a node follows it with
/// `hls://`, and its viewers get the encoder's tracks. When the encoder stops, the
/// playlist stops moving and the input fails with that reason.
#[test]
fn a_live_hls_stream_served_by_nginx_is_pulled_and_its_end_is_a_clear_error() {
    let files = TempDir::new("hls-source");
    let encoder = Ffmpeg::hls_output(&files.0);
    let web = free_port();
    let _nginx = Nginx::start(
        "",
        &format!(
            "server {{ listen 127.0.0.1:{web}; root {}; }}",
            files.0.display()
        ),
        local(web),
    );
    poll_until(Duration::from_secs(20), || {
        let (status, _, body) = http_get(local(web), "/index.m3u8", &[]).ok()?;
        (status == 200 && body.matches(".ts").count() >= 3).then_some(())
    })
    .expect("the encoder's playlist is served");

    let port = free_port();
    let node = Node::start(
        &format!(
            "http 127.0.0.1:{port};\n\
             stream pulled {{ input hls://127.0.0.1:{web}/index.m3u8; segment_duration 1; }}\n"
        ),
        local(port),
        &[],
        &[],
    );
    poll_until(Duration::from_secs(20), || {
        media_playlist(local(port), "pulled")
    })
    .expect("the node serves the pulled stream");
    let streams = probe(local(port), "pulled");
    assert!(
        streams.contains("h264") && streams.contains("640") && streams.contains("aac"),
        "{streams}"
    );
    let (played, errors) = ffmpeg_plays(&format!("http://{}/pulled/index.m3u8", local(port)), 4);
    assert!(played, "{errors}");

    drop(encoder);
    let failed = poll_until(Duration::from_secs(20), || {
        let log = node.log_tail();
        log.contains("the playlist has not changed").then_some(())
    });
    assert!(
        failed.is_some(),
        "a still playlist is a lost source:\n{}",
        node.log_tail()
    );
}

/// nginx-rtmp relays an ffmpeg publish; another flotilla node runs the test source. A
/// node pulls both with `rtmp://` and serves them as HLS.
#[test]
fn rtmp_streams_of_nginx_rtmp_and_of_another_flotilla_are_pulled() {
    let nginx_rtmp = free_port();
    let _nginx = Nginx::start(
        &format!(
            "rtmp {{ server {{ listen 127.0.0.1:{nginx_rtmp}; application live {{ live on; }} }} }}"
        ),
        "",
        local(nginx_rtmp),
    );
    let _publisher = Ffmpeg::publish_clip(&format!("rtmp://127.0.0.1:{nginx_rtmp}/live/tv"));

    let (origin_http, origin_rtmp) = (free_port(), free_port());
    let _origin = Node::start(
        &format!(
            "http 127.0.0.1:{origin_http};\nrtmp 127.0.0.1:{origin_rtmp};\n\
             stream live/src {{ input test://; segment_duration 1; }}\n"
        ),
        local(origin_http),
        &[],
        &[],
    );
    let port = free_port();
    let _node = Node::start(
        &format!(
            "http 127.0.0.1:{port};\n\
             stream from_nginx {{ input rtmp://127.0.0.1:{nginx_rtmp}/live/tv; segment_duration 1; }}\n\
             stream from_flotilla {{ input rtmp://127.0.0.1:{origin_rtmp}/live/src; segment_duration 1; }}\n"
        ),
        local(port),
        &[],
        &[],
    );
    for name in ["from_nginx", "from_flotilla"] {
        poll_until(Duration::from_secs(30), || {
            media_playlist(local(port), name)
        })
        .unwrap_or_else(|| panic!("{name} is pulled"));
        let streams = probe(local(port), name);
        assert!(
            streams.contains("h264") && streams.contains("aac"),
            "{name}: {streams}"
        );
    }
    let (played, errors) =
        ffmpeg_plays(&format!("http://{}/from_nginx/index.m3u8", local(port)), 3);
    assert!(played, "{errors}");
}
