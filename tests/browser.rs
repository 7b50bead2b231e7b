//! Real players in a real browser: hls.js (the build the node serves) in headless
//! Chromium, on a page of another origin, against real node processes fed by ffmpeg.
//!
//! These are the paths a first user tries: a site embedding a stream published a moment
//! ago, and a player sent by a node without the stream to the node that has it.

mod common;

use std::net::SocketAddr;

use common::browser::{Browser, PageServer, hlsjs_page, plays_without_errors, wait_for_status};
use common::ffmpeg::Ffmpeg;
use common::{Node, free_port, http_get, member, shared_config};

#[test]
fn hlsjs_joining_right_after_an_rtmp_publish_plays_without_errors() {
    let (http, rtmp) = (free_port(), free_port());
    let at = SocketAddr::from(([127, 0, 0, 1], http));
    let config = format!(
        "http 127.0.0.1:{http};\nrtmp 127.0.0.1:{rtmp};\n\
         template live {{ prefix live; segment_duration 1; }}\n"
    );
    let _node = Node::start(&config, at, &[], &[]);
    // The tone starts 1.5 s after the picture: the publish begins with video only, and the
    // first segment must still name (and carry) the audio track.
    let _publisher = Ffmpeg::publish_pattern(&format!("rtmp://127.0.0.1:{rtmp}/live/cam"), 1.5);
    // The viewer arrives with the first segment: the one whose PMT decides the player's
    // buffers.
    wait_for_status(at, "/live/cam/index.m3u8", 200);
    let page = PageServer::start(hlsjs_page(at, &format!("http://{at}/live/cam/index.m3u8")));
    let _browser = Browser::open(&format!("{}/", page.origin));
    let report = plays_without_errors(&page, 15.0);
    assert!(report["videoWidth"].as_u64() == Some(320), "{report}");
}

#[test]
fn a_page_on_another_origin_plays_through_a_redirect() {
    let port = free_port();
    let (rtmp_a, rtmp_b) = (free_port(), free_port());
    let key = "0f4c5d3b2a1908f7e6d5c4b3a2918070";
    let config = shared_config(port, key, &[2, 3]);
    let a = member(2, "a", port, rtmp_a, &config);
    let b = member(3, "b", port, rtmp_b, &config);
    let _publisher = Ffmpeg::publish_pattern(&format!("rtmp://{}/live/news", a.rtmp), 1.5);
    wait_for_status(a.http, "/live/news/index.m3u8", 200);
    // Node b does not have the stream: it sends the player to a once it hears of it.
    wait_for_status(b.http, "/live/news/index.m3u8", 302);
    let page = PageServer::start(hlsjs_page(
        b.http,
        &format!("http://{}/live/news/index.m3u8", b.http),
    ));
    let _browser = Browser::open(&format!("{}/", page.origin));
    plays_without_errors(&page, 8.0);
}

#[test]
fn the_player_page_loads_its_script_from_the_node_only() {
    let http = free_port();
    let at = SocketAddr::from(([127, 0, 0, 1], http));
    let config = format!("http 127.0.0.1:{http};\nstream clip {{ input test://; }}\n");
    let _node = Node::start(&config, at, &[], &[]);
    let (status, _, page) = http_get(at, "/clip/embed.html", &[]).unwrap();
    assert_eq!(status, 200);
    let sources: Vec<&str> = page
        .split("src=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .collect();
    assert!(!sources.is_empty(), "{page}");
    for source in &sources {
        assert!(
            source.starts_with('/') && !source.starts_with("//"),
            "the page loads {source} from another host"
        );
    }
    let (status, head, script) = http_get(at, "/flotilla/player/hls.js", &[]).unwrap();
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("text/javascript"),
        "{head}"
    );
    // The embedded hls.js build, not an empty stand-in.
    assert!(script.len() > 100_000, "{} bytes", script.len());
    assert!(script.contains("Hls"));
}
