//! The supervision tree of a real node, seen and poked through its HTTP API.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
fn the_tree_mirrors_the_config_and_a_kill_is_followed_by_a_restart() {
    let port = free_port();
    let config = format!(
        "http 127.0.0.1:{port};\nedit_auth admin pw1;\nview_auth viewer pw2;\n\
         peer a.lan:{port};\npeer b.lan:{port};\n\
         stream cam01 {{ input test://; cluster_ingest; }}\n\
         stream live/news {{ input publish://; }}\n\
         balancer global {{ mode clients; server a.lan; server b.lan; }}\n"
    );
    let _node = Node::start(&config, addr(port), &["--hostname", "a.lan"], &[]);
    let viewer = basic("viewer", "pw2");
    let admin = basic("admin", "pw1");

    let (status, _, _) = http_get(addr(port), "/flotilla/api/actors", &[]).unwrap();
    assert_eq!(status, 401, "introspection needs credentials");
    let (status, _, tree) = http_get(
        addr(port),
        "/flotilla/api/actors",
        &[("Authorization", &viewer)],
    )
    .unwrap();
    assert_eq!(status, 200);
    for path in [
        "\"node/streams/cam01\"",
        "\"node/streams/live/news\"",
        "\"node/mesh/peers/b.lan:",
        "\"node/balancers/global\"",
        "\"node/sessions\"",
        "\"node/ingest\"",
    ] {
        assert!(tree.contains(path), "{path} missing from {tree}");
    }
    assert!(
        !tree.contains("node/mesh/peers/a.lan"),
        "the node skips its own peer entry: {tree}"
    );

    let (status, _, one) = http_get(
        addr(port),
        "/flotilla/api/actors/node/streams/live/news",
        &[("Authorization", &viewer)],
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(
        one.contains("\"kind\":\"stream\"") && one.contains("\"restarts\":0"),
        "{one}"
    );

    let kill = "/flotilla/api/actors/node/streams/cam01/kill?reason=chaos";
    let (status, _, _) = http_post(addr(port), kill, &[("Authorization", &viewer)]).unwrap();
    assert_eq!(status, 403, "view_auth cannot kill");
    let (status, _, body) = http_post(addr(port), kill, &[("Authorization", &admin)]).unwrap();
    assert_eq!(status, 202, "{body}");

    let restarted = poll_until(Duration::from_secs(10), || {
        let (_, _, body) = http_get(
            addr(port),
            "/flotilla/api/actors/node/streams/cam01",
            &[("Authorization", &viewer)],
        )
        .ok()?;
        (body.contains("\"restarts\":1") && body.contains("\"status\":\"running\"")).then_some(body)
    })
    .expect("the stream was not restarted");
    assert!(restarted.contains("failure injected: chaos"), "{restarted}");

    let (status, _, _) = http_get(
        addr(port),
        "/flotilla/api/actors/node/nothing",
        &[("Authorization", &viewer)],
    )
    .unwrap();
    assert_eq!(status, 404);
    let (status, _, _) = http_get(
        addr(port),
        "/flotilla/api/actors/elsewhere",
        &[("Authorization", &viewer)],
    )
    .unwrap();
    assert_eq!(status, 400);
    let (status, _, _) = http_post(
        addr(port),
        "/flotilla/api/actors/node/kill",
        &[("Authorization", &admin)],
    )
    .unwrap();
    assert_eq!(status, 409, "the root cannot be killed through the API");
}
