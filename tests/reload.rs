//! Config reload on a real node: through the API and SIGHUP, with ffmpeg playing a
//! stream the reload does not touch, streams and listeners added and removed, and broken
//! configs refused with nothing changed.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::play::{ffmpeg_plays, media_playlist, stream_stats};
use common::{Node, basic, free_port, http_get, http_post, poll_until};
use serde_json::Value;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// How long a reloaded stream may take to appear, or a removed one to go.
const APPLY_DEADLINE: Duration = Duration::from_secs(15);

fn config(port: u16, extra_listener: Option<u16>, streams: &[&str]) -> String {
    let mut text = format!("http 127.0.0.1:{port};\nedit_auth admin secret;\n");
    if let Some(extra) = extra_listener {
        text.push_str(&format!("http 127.0.0.1:{extra};\n"));
    }
    for stream in streams {
        text.push_str(&format!(
            "stream {stream} {{ input test://; segment_duration 1; }}\n"
        ));
    }
    text
}

/// `POST /flotilla/api/reload` with edit_auth: (status, body as JSON).
fn reload(at: SocketAddr) -> (u16, Value) {
    let auth = basic("admin", "secret");
    let (status, _, body) = http_post(at, "/flotilla/api/reload", &[("Authorization", &auth)])
        .expect("the node answers");
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn names(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn playlist_status(at: SocketAddr, name: &str) -> u16 {
    http_get(at, &format!("/{name}/index.m3u8"), &[]).map_or(0, |(status, _, _)| status)
}

#[test]
fn a_viewer_plays_on_through_reloads_that_add_and_remove_other_streams_and_listeners() {
    let port = free_port();
    let extra = free_port();
    let node = Node::start(
        &config(port, None, &["keep", "gone", "changes"]),
        addr(port),
        &[],
        &[],
    );
    let at = addr(port);
    let first = poll_until(APPLY_DEADLINE, || media_playlist(at, "keep"));
    assert!(first.is_some(), "keep plays: {}", node.log_tail());
    // The viewer: ffmpeg plays `keep` over HLS for 14 s while the config changes.
    let url = format!("http://{at}/keep/index.m3u8");
    let viewer = std::thread::spawn(move || ffmpeg_plays(&url, 14));
    std::thread::sleep(Duration::from_secs(3));
    let before = media_playlist(at, "keep").expect("keep is listed").0;

    // Reload 1 (API): `gone` removed, `fresh` added, `changes` changed, a listener added.
    node.dir.write(
        "flotilla.conf",
        &(config(port, Some(extra), &["keep", "fresh"])
            + "stream changes { input test://; segment_duration 2; }\n"),
    );
    let (status, report) = reload(at);
    assert_eq!(status, 200, "{report}\n{}", node.log_tail());
    assert_eq!(names(&report["streams"]["added"]), ["fresh"], "{report}");
    assert_eq!(names(&report["streams"]["removed"]), ["gone"], "{report}");
    assert_eq!(
        names(&report["streams"]["changed"]),
        ["changes"],
        "{report}"
    );
    assert_eq!(
        names(&report["listeners_opened"]),
        [format!("http 127.0.0.1:{extra}")],
        "{report}"
    );
    assert_eq!(report["revision"], 1, "{report}");
    let fresh = poll_until(APPLY_DEADLINE, || media_playlist(at, "fresh"));
    assert!(
        fresh.is_some(),
        "the added stream plays: {}",
        node.log_tail()
    );
    let gone = poll_until(APPLY_DEADLINE, || {
        (playlist_status(at, "gone") == 404).then_some(())
    });
    assert!(gone.is_some(), "the removed stream is gone");
    assert!(
        stream_stats(at, "gone").is_none(),
        "the removed stream is not listed"
    );
    let (health, _, _) = http_get(addr(extra), "/flotilla/api/health", &[]).expect("answers");
    assert_eq!(health, 200, "the added listener serves");

    // Reload 2 (SIGHUP): the added listener removed again, nothing else.
    node.dir.write(
        "flotilla.conf",
        &(config(port, None, &["keep", "fresh"])
            + "stream changes { input test://; segment_duration 2; }\n"),
    );
    node.signal("HUP");
    let closed = poll_until(APPLY_DEADLINE, || {
        std::net::TcpStream::connect_timeout(&addr(extra), Duration::from_millis(200))
            .is_err()
            .then_some(())
    });
    assert!(
        closed.is_some(),
        "the removed listener is closed: {}",
        node.log_tail()
    );
    let logged = poll_until(APPLY_DEADLINE, || {
        node.log_tail().contains("config reloaded").then_some(())
    });
    assert!(logged.is_some(), "{}", node.log_tail());

    let (played, errors) = viewer.join().expect("the viewer thread");
    assert!(played && errors.trim().is_empty(), "ffmpeg: {errors}");
    let after = media_playlist(at, "keep").expect("keep is listed").0;
    assert!(
        after > before,
        "keep's segments went on across the reloads (sequence {before} then {after})"
    );
}

#[test]
fn a_broken_config_is_refused_with_its_line_and_the_running_one_stays() {
    let port = free_port();
    let node = Node::start(&config(port, None, &["keep"]), addr(port), &[], &[]);
    let at = addr(port);
    assert!(poll_until(APPLY_DEADLINE, || media_playlist(at, "keep")).is_some());
    node.dir.write(
        "flotilla.conf",
        &format!(
            "http 127.0.0.1:{port};\nedit_auth admin secret;\nstream other {{ input test://; segment_duration banana; }}\n"
        ),
    );
    let (status, body) = reload(at);
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("flotilla.conf:3:"),
        "line:col named: {error}"
    );
    assert!(error.contains("running config stays"), "{error}");
    // Nothing changed: `keep` runs, `other` never started.
    assert!(media_playlist(at, "keep").is_some());
    assert_eq!(playlist_status(at, "other"), 404);
    // A listener that cannot be bound refuses the whole reload too.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let taken_port = taken.local_addr().expect("bound").port();
    node.dir.write(
        "flotilla.conf",
        &(config(port, Some(taken_port), &["keep"]) + "stream other { input test://; }\n"),
    );
    let (status, body) = reload(at);
    assert_eq!(status, 409, "{body}");
    assert_eq!(playlist_status(at, "other"), 404, "nothing applied");
    // Without edit_auth, no reload.
    let (status, _, _) = http_post(at, "/flotilla/api/reload", &[]).expect("answers");
    assert_eq!(status, 401);
}

fn peer_states(at: SocketAddr) -> Vec<(String, String)> {
    let Ok((_, _, body)) = http_get(at, "/streamer/api/v3/cluster/peers", &[]) else {
        return Vec::new();
    };
    let peers: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    peers["peers"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|p| {
                    (
                        p["address"].as_str().unwrap_or_default().to_string(),
                        p["state"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn peers_join_and_leave_by_reload() {
    let (port, rtmp) = (free_port(), free_port());
    let key = "cluster_key 0123456789abcdef0123456789abcdef;\n";
    let alone = format!("{key}peer 127.0.0.1:{port};\n");
    let a = common::member_with(1, "a", port, rtmp, &alone, "");
    let b = common::member_with(
        2,
        "b",
        port,
        rtmp,
        &format!("{key}peer 127.0.0.2:{port};\n"),
        "",
    );
    assert!(peer_states(a.http).is_empty(), "a starts alone");
    let both = format!(
        "{key}peer 127.0.0.1:{port} {{ fetch_timeout 300; stale_timeout 1500; }}\n\
         peer 127.0.0.2:{port} {{ fetch_timeout 300; stale_timeout 1500; }}\n"
    );
    for member in [&a, &b] {
        member.dir.write("flotilla.conf", &both);
        member.node.as_ref().unwrap().signal("HUP");
    }
    let b_key = format!("127.0.0.2:{port}");
    let joined = poll_until(APPLY_DEADLINE, || {
        peer_states(a.http)
            .contains(&(b_key.clone(), "alive".to_string()))
            .then_some(())
    });
    assert!(joined.is_some(), "b joins a: {:?}", peer_states(a.http));
    // Both leave each other's config, b first (a node that still calls is learnt again
    // from its call): once b's link to a is gone, a drops b and nothing brings it back.
    b.dir
        .write("flotilla.conf", &format!("{key}peer 127.0.0.2:{port};\n"));
    b.node.as_ref().unwrap().signal("HUP");
    let unlinked = poll_until(APPLY_DEADLINE, || {
        let (_, _, body) = http_get(b.http, "/flotilla/api/actors/node/mesh/peers", &[]).ok()?;
        let peers: Value = serde_json::from_str(&body).ok()?;
        // The supervisor is there, without children (an empty list is left out).
        let childless = peers["children"]
            .as_array()
            .is_none_or(|children| children.is_empty());
        (peers["path"].is_string() && childless).then_some(())
    });
    assert!(
        unlinked.is_some(),
        "b unlinks a: {}",
        b.node.as_ref().unwrap().log_tail()
    );
    a.dir.write("flotilla.conf", &alone);
    a.node.as_ref().unwrap().signal("HUP");
    let left = poll_until(APPLY_DEADLINE, || {
        peer_states(a.http).is_empty().then_some(())
    });
    assert!(left.is_some(), "b left a: {:?}", peer_states(a.http));
}
