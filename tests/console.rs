//! The web console on a three-node cluster, loaded by headless Chromium: the DOM it
//! renders (every node with its load, streams and where they run, the cluster_ingest
//! table, a balancer's decisions with a viewer-chosen name escaped, the actor tree) and a
//! screenshot kept in `target/test-artefacts/console.png`; edits refused without
//! edit_auth or from another origin.

mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use common::{TempDir, basic, free_port, http_get, http_request, member_with, poll_until};
use serde_json::Value;

const KEY: &str = "00112233445566778899aabbccddeeff";

/// Headless Chromium's `--dump-dom` or `--screenshot` of `url`.
fn chromium(url: &str, extra: &[&str]) -> String {
    let profile = TempDir::new("chromium-console");
    let output = common::browser::headless(&profile)
        .arg("--window-size=1400,1600")
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .expect("chromium is installed by scripts/test.sh");
    String::from_utf8_lossy(&output.stdout).to_string()
}

fn alive_peers(at: SocketAddr) -> Option<usize> {
    let (_, _, body) = http_get(
        at,
        "/streamer/api/v3/cluster/peers",
        &[("Authorization", &basic("viewer", "look"))],
    )
    .ok()?;
    let peers: Value = serde_json::from_str(&body).ok()?;
    Some(
        peers["peers"]
            .as_array()?
            .iter()
            .filter(|p| p["state"] == "alive")
            .count(),
    )
}

#[test]
fn chromium_shows_the_whole_cluster_and_edits_need_edit_auth_from_the_console() {
    let (port, rtmp) = (free_port(), free_port());
    let mut shared =
        format!("cluster_key {KEY};\nview_auth viewer look;\nedit_auth admin secret;\n");
    for index in 1..=3 {
        shared.push_str(&format!(
            "peer 127.0.0.{index}:{port} {{ fetch_timeout 300; stale_timeout 1500; }}\n"
        ));
    }
    shared.push_str(&format!(
        "stream cam {{ input test://; segment_duration 1; cluster_ingest capture_at=127.0.0.2:{port}; }}\n\
         stream clip {{ input test://; segment_duration 1; }}\n\
         balancer lb {{ server 127.0.0.1:{port}; server 127.0.0.2:{port}; server 127.0.0.3:{port}; }}\n"
    ));
    let a = member_with(1, "a", port, rtmp, &shared, "");
    let _b = member_with(2, "b", port, rtmp, &shared, "");
    let _c = member_with(3, "c", port, rtmp, &shared, "");
    let viewer = basic("viewer", "look");
    assert!(
        poll_until(Duration::from_secs(30), || (alive_peers(a.http)? == 2)
            .then_some(()))
        .is_some(),
        "the cluster forms"
    );
    // A viewer-chosen stream name with markup characters, recorded by the balancer.
    let _ = http_get(a.http, "/lb/x&y'z/index.m3u8", &[]);
    // The page as a browser renders it (credentials in the URL: a top-level navigation).
    let url = format!("http://viewer:look@{}/flotilla/console", a.http);
    let dom = poll_until(Duration::from_secs(30), || {
        let dom = chromium(&url, &["--dump-dom"]);
        (dom.contains("captured") && dom.contains("cam")).then_some(dom)
    })
    .expect("the console renders the streams");
    for index in 1..=3 {
        assert!(
            dom.contains(&format!("127.0.0.{index}:{port}")),
            "node {index}: {dom}"
        );
    }
    assert_eq!(dom.matches("class=\"alive\">alive<").count(), 3, "{dom}");
    assert!(dom.contains("id=\"ingest-table\""), "{dom}");
    assert!(dom.contains("id=\"actor-tree\""), "{dom}");
    assert!(
        dom.contains("x&amp;y'z"),
        "the decision's stream, escaped: {dom}"
    );
    assert!(!dom.contains("<x"), "{dom}");
    // No edit controls for a viewer.
    assert!(!dom.contains("/flotilla/console/reload"), "{dom}");
    assert!(!dom.contains(">Restart<"), "{dom}");

    let artefacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target/")
        .join("test-artefacts");
    std::fs::create_dir_all(&artefacts).unwrap();
    let screenshot = artefacts.join("console.png");
    let _ = std::fs::remove_file(&screenshot);
    chromium(&url, &[&format!("--screenshot={}", screenshot.display())]);
    let size = std::fs::metadata(&screenshot).map(|m| m.len()).unwrap_or(0);
    assert!(
        size > 10_000,
        "a screenshot of {size} bytes at {}",
        screenshot.display()
    );

    // Edit controls for an editor.
    let editor = basic("admin", "secret");
    let (status, _, page) =
        http_get(a.http, "/flotilla/console", &[("Authorization", &editor)]).unwrap();
    assert_eq!(status, 200);
    assert!(page.contains("/flotilla/console/reload") && page.contains(">Restart<"));
    // Edits: a viewer is refused, another origin is refused, the console's own page
    // is obeyed.
    let origin = format!("http://{}", a.http);
    let post = |auth: &str, from: &str| {
        http_request(
            "POST",
            a.http,
            "/flotilla/console/restart/clip",
            &[("Authorization", auth), ("Origin", from)],
        )
        .unwrap()
        .0
    };
    assert_eq!(post(&viewer, &origin), 403, "view_auth cannot edit");
    assert_eq!(post(&editor, "http://evil.example"), 403, "another origin");
    assert_eq!(post(&editor, &origin), 303, "the console's own form");
    let (status, _, _) = http_request("POST", a.http, "/flotilla/console/reload", &[]).unwrap();
    assert_eq!(status, 401, "no credentials");
}
