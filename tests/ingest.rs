//! cluster_ingest with real nodes on loopback: three nodes share one config with nine
//! cluster_ingest streams (the built-in test source), one of them `capture_at` node b.
//! Every stream is captured exactly once; `kill -9` of b moves its streams to the
//! others within stale_timeout + fetch_timeout + start time; b's return brings its
//! streams back — and nothing else moves. `kill -STOP` of b for longer than
//! stale_timeout moves its streams the same way, and `kill -CONT` moves nothing back
//! blind: b starts no capture, and its old captures end once it hears its peers.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;

const KEY: &str = "shared-cluster-key-for-tests-0123456789";
const NAMES: [&str; 3] = ["a", "b", "c"];
/// The figures the issue asks for: fetch every second, dead after three.
const FETCH_TIMEOUT_MS: u64 = 1_000;
const STALE_TIMEOUT_MS: u64 = 3_000;
/// A test:// capture's first segment (segment_duration 1) with room for a loaded host.
const START_ALLOWANCE_MS: u64 = 6_000;

fn config(port: u16) -> String {
    config_on(port, 1)
}

/// The shared config of three nodes at 127.0.0.`first`, `first + 1` and `first + 2`;
/// cam0 prefers the second.
fn config_on(port: u16, first: u8) -> String {
    let mut text = format!("cluster_key {KEY};\n");
    for index in first..first + 3 {
        text.push_str(&format!(
            "peer 127.0.0.{index}:{port} {{ fetch_timeout {FETCH_TIMEOUT_MS}; stale_timeout {STALE_TIMEOUT_MS}; }}\n"
        ));
    }
    text.push_str(&format!(
        "stream cam0 {{ input test://; segment_duration 1; cluster_ingest capture_at=127.0.0.{}:{port}; }}\n",
        first + 1
    ));
    for i in 1..9 {
        text.push_str(&format!(
            "stream cam{i} {{ input test://; segment_duration 1; cluster_ingest; }}\n"
        ));
    }
    text
}

fn get_json(at: SocketAddr, path: &str) -> Option<serde_json::Value> {
    let (status, _, body) = http_get(at, path, &[]).ok()?;
    (status == 200).then(|| serde_json::from_str(&body).ok())?
}

/// Streams a node captures with frames flowing.
fn captured_by(at: SocketAddr) -> Option<Vec<String>> {
    let captures = captures_at(at)?;
    Some(
        captures
            .into_iter()
            .filter(|(_, (_, flowing))| *flowing)
            .map(|(stream, _)| stream)
            .collect(),
    )
}

/// stream → the nodes capturing it with frames flowing, over the running members.
fn capturers(members: &[&Member]) -> Option<BTreeMap<String, Vec<String>>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (member, name) in members.iter().zip(NAMES) {
        if member.node.is_none() {
            continue;
        }
        for stream in captured_by(member.http)? {
            map.entry(stream).or_default().push(name.to_string());
        }
    }
    Some(map)
}

/// The identity (`host:port`, its `peer` entry) of the member called `name`.
fn node_id(members: &[&Member], name: &str) -> String {
    members[NAMES
        .iter()
        .position(|n| *n == name)
        .expect("a member's name")]
    .http
    .to_string()
}

/// The placement once every stream has exactly one capturer (stream → node) and every
/// running node's ownership table agrees with it: the cluster is at rest.
fn exactly_once(members: &[&Member]) -> Option<BTreeMap<String, String>> {
    let map = capturers(members)?;
    if map.len() != 9 || map.values().any(|nodes| nodes.len() != 1) {
        return None;
    }
    let placement: BTreeMap<String, String> =
        map.into_iter().map(|(s, n)| (s, n[0].clone())).collect();
    for member in members.iter().filter(|m| m.node.is_some()) {
        let table = get_json(member.http, "/streamer/api/v3/cluster/ingest")?;
        for row in table["streams"].as_array()? {
            let stream = row["stream"].as_str()?;
            let owner = node_id(members, &placement[stream]);
            if row["owner"].as_str() != Some(owner.as_str())
                || row["running_on"].as_str() != Some(owner.as_str())
            {
                return None;
            }
        }
    }
    Some(placement)
}

#[test]
#[allow(clippy::disallowed_methods)] // Measures real failover and fail-back times.
fn nine_streams_over_three_nodes_fail_over_and_come_back() {
    let (port, rtmp) = (free_port(), free_port());
    let shared = config(port);
    let a = member(1, "a", port, rtmp, &shared);
    let mut b = member(2, "b", port, rtmp, &shared);
    let c = member(3, "c", port, rtmp, &shared);

    let initial = poll_until(Duration::from_secs(40), || exactly_once(&[&a, &b, &c]))
        .unwrap_or_else(|| {
            panic!(
                "never captured exactly once: {:?}",
                capturers(&[&a, &b, &c])
            )
        });
    println!("initial placement: {initial:?}");
    assert_eq!(
        initial["cam0"],
        "b",
        "capture_at wins: {}",
        get_json(a.http, "/streamer/api/v3/cluster/ingest").unwrap()
    );
    for node in NAMES {
        let count = initial.values().filter(|n| *n == node).count();
        assert!(
            (2..=4).contains(&count),
            "{node} captures {count}: {initial:?}"
        );
    }
    // Every node agrees on the owners, and any node sends a viewer to the capturer.
    for member in [&a, &b, &c] {
        let table = get_json(member.http, "/streamer/api/v3/cluster/ingest").unwrap();
        for row in table["streams"].as_array().unwrap() {
            let stream = row["stream"].as_str().unwrap();
            assert_eq!(
                row["owner"],
                node_id(&[&a, &b, &c], &initial[stream]),
                "{table}"
            );
            assert!(row["epoch"].as_u64().unwrap() >= 1);
        }
    }
    let (on_a, elsewhere) = initial.iter().partition::<Vec<_>, _>(|(_, n)| *n == "a");
    let (stream, owner) = elsewhere[0];
    let (status, head, _) = http_get(a.http, &format!("/{stream}/index.m3u8?k=v"), &[]).unwrap();
    assert_eq!(status, 302, "{head}");
    let owner_http = [&a, &b, &c][NAMES.iter().position(|n| n == owner).unwrap()].http;
    assert!(
        head.contains(&format!("http://{owner_http}/{stream}/index.m3u8?k=v")),
        "{head}"
    );
    assert!(!on_a.is_empty());

    // kill -9 of b: its streams start on a and c; b returns: they come back, and nothing
    // else moves. FLOTILLA_FAILOVER_TRIALS repeats it (the benchmark figures).
    let mut current = initial.clone();
    let trials: usize = std::env::var("FLOTILLA_FAILOVER_TRIALS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(1);
    let mut failovers = Vec::new();
    for trial in 1..=trials {
        let b_streams = current.values().filter(|n| *n == "b").count();
        drop(b.node.take());
        let killed = Instant::now();
        let after = poll_until(Duration::from_secs(40), || exactly_once(&[&a, &b, &c]))
            .unwrap_or_else(|| panic!("b's streams never moved: {:?}", capturers(&[&a, &c])));
        let failover = killed.elapsed();
        let bound = Duration::from_millis(STALE_TIMEOUT_MS + FETCH_TIMEOUT_MS + START_ALLOWANCE_MS);
        assert!(
            failover < bound,
            "failover took {failover:?} (bound {bound:?})"
        );
        let moved_away = current.keys().filter(|s| after[*s] != current[*s]).count();
        assert_eq!(moved_away, b_streams, "only b's streams move: {after:?}");

        b.restart("b");
        let returned = Instant::now();
        // b takes its share back from the others (after its hold), cam0 (capture_at b)
        // with it, and every node holds three again.
        let back = poll_until(Duration::from_secs(60), || {
            exactly_once(&[&a, &b, &c]).filter(|now| {
                now["cam0"] == "b"
                    && NAMES
                        .iter()
                        .all(|node| now.values().filter(|n| n == node).count() == 3)
            })
        })
        .unwrap_or_else(|| panic!("after b's return: {:?}", capturers(&[&a, &b, &c])));
        let moved_back = after.keys().filter(|s| back[*s] != after[*s]).count();
        assert_eq!(
            moved_back, 3,
            "b takes exactly its share: {after:?} → {back:?}"
        );
        let moved = moved_back;
        current = back;
        println!(
            "trial {trial}: failover {failover:?} (kill -9 to every stream of b alive elsewhere), \
             moved on leave {moved_away} (minimum {b_streams}), on join {moved} (minimum 3), \
             fail-back {:?} (restart to cam0 back on b and 3 streams each, hold {} ms)",
            returned.elapsed(),
            2 * STALE_TIMEOUT_MS
        );
        failovers.push(failover);
    }
    failovers.sort();
    println!(
        "failover over {trials} trial(s): min {:?}, median {:?}, max {:?}",
        failovers[0],
        failovers[failovers.len() / 2],
        failovers[failovers.len() - 1]
    );
}

/// A node's captures as its ingest table says: stream → (epoch, frames flowing there).
fn captures_at(at: SocketAddr) -> Option<BTreeMap<String, (u64, bool)>> {
    let table = get_json(at, "/streamer/api/v3/cluster/ingest")?;
    let streams = get_json(at, "/streamer/api/v3/streams")?;
    let alive = |name: &str| {
        streams["streams"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| s["name"] == name && s["stats"]["alive"] == true)
    };
    table["streams"]
        .as_array()?
        .iter()
        .filter(|row| row["local"] == "capturing")
        .map(|row| {
            let stream = row["stream"].as_str()?;
            Some((
                stream.to_string(),
                (row["local_epoch"].as_u64()?, alive(stream)),
            ))
        })
        .collect()
}

/// stream → the nodes of `members` (name, member) capturing it with frames flowing.
fn flowing_at(members: &[(&str, &Member)]) -> Option<BTreeMap<String, Vec<String>>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, member) in members {
        for (stream, (_, alive)) in captures_at(member.http)? {
            if alive {
                map.entry(stream).or_default().push(name.to_string());
            }
        }
    }
    Some(map)
}

/// Issue #30, item 9: `kill -STOP` of a capturing node for longer than stale_timeout,
/// then `kill -CONT`. Its streams move to the others while it is stopped. When it
/// continues it takes nothing that runs elsewhere — it hears its peers before it decides,
/// and is then a returning node on its fail-back hold — so no capture starts anywhere;
/// its own old captures (taken over meanwhile) end by make before break once it has
/// heard its peers. Before the fix it started 4 of 6 streams that ran fine elsewhere
/// within 0.2 s of SIGCONT, and one stream moved twice.
#[test]
#[allow(clippy::disallowed_methods)] // Real processes, real pauses.
fn a_stopped_node_that_continues_takes_nothing_that_runs_elsewhere() {
    /// Longer than stale_timeout: the peers declare it dead and take its streams.
    const STOPPED: Duration = Duration::from_secs(10);
    /// How long after SIGCONT it is watched: within its fail-back hold (two stale
    /// timeouts from the moment it hears a majority again), when nothing may move to it.
    const WATCH: Duration = Duration::from_millis(2 * STALE_TIMEOUT_MS - 500);
    /// Its old captures end within this of SIGCONT: the first exchange with each peer
    /// (one fetch interval), a coordinator tick and the stop, with room for a loaded host.
    const OLD_CAPTURES_END: Duration = Duration::from_millis(2 * FETCH_TIMEOUT_MS + 1_000);

    let (port, rtmp) = (free_port(), free_port());
    let shared = config_on(port, 4);
    let a = member(4, "a", port, rtmp, &shared);
    let b = member(5, "b", port, rtmp, &shared);
    let c = member(6, "c", port, rtmp, &shared);
    let all = [("a", &a), ("b", &b), ("c", &c)];
    let others = [("a", &a), ("c", &c)];
    let tables = |members: &[(&str, &Member)]| {
        members
            .iter()
            .map(|(name, member)| format!("{name}: {:?}", captures_at(member.http)))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let once = |members: &[(&str, &Member)]| {
        flowing_at(members).filter(|map| map.len() == 9 && map.values().all(|n| n.len() == 1))
    };
    // At rest: captured exactly once, and every node's table agrees (so every node has
    // heard every capture and its epoch).
    let initial = poll_until(Duration::from_secs(40), || exactly_once(&[&a, &b, &c]))
        .unwrap_or_else(|| panic!("never captured exactly once: {}", tables(&all)));
    let on_b: Vec<String> = initial
        .iter()
        .filter(|(_, node)| *node == "b")
        .map(|(stream, _)| stream.clone())
        .collect();
    assert!(on_b.contains(&"cam0".to_string()), "{initial:?}");

    let b_node = b.node.as_ref().unwrap();
    // Every capture seen before SIGCONT: (node, stream, epoch). A capture with a new
    // epoch after it is a start (or a fence, which takes a stream as surely).
    let mut seen: std::collections::BTreeSet<(String, String, u64)> = Default::default();
    let mut note = |name: &str, at: SocketAddr| {
        for (stream, (epoch, _)) in captures_at(at).unwrap() {
            seen.insert((name.to_string(), stream, epoch));
        }
    };
    note("b", b.http);

    b_node.signal("STOP");
    let stopped = Instant::now();
    let moved = poll_until(STOPPED, || once(&others))
        .unwrap_or_else(|| panic!("b's streams never moved: {:?}", flowing_at(&others)));
    println!(
        "b stopped: its streams run elsewhere after {:?}: {}",
        stopped.elapsed(),
        tables(&others)
    );
    for (name, member) in others {
        note(name, member.http);
    }
    std::thread::sleep(STOPPED.saturating_sub(stopped.elapsed()));

    b_node.signal("CONT");
    let continued = Instant::now();
    let mut starts = Vec::new();
    let mut overlaps: BTreeMap<String, (Duration, Duration)> = BTreeMap::new();
    let mut polls = 0;
    while continued.elapsed() < WATCH {
        let Some(now) = all
            .iter()
            .map(|(name, member)| Some((*name, captures_at(member.http)?)))
            .collect::<Option<Vec<_>>>()
        else {
            continue;
        };
        polls += 1;
        let at = continued.elapsed();
        let mut flowing: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (name, captures) in &now {
            for (stream, (epoch, alive)) in captures {
                if seen.insert((name.to_string(), stream.clone(), *epoch)) {
                    starts.push(format!("{name} started {stream} (epoch {epoch}) at {at:?}"));
                }
                if *alive {
                    flowing.entry(stream).or_default().push(name);
                }
            }
        }
        for (stream, nodes) in flowing.iter().filter(|(_, nodes)| nodes.len() > 1) {
            assert!(
                nodes.len() == 2 && nodes.contains(&"b") && on_b.iter().any(|s| s == stream),
                "{stream} captured by {nodes:?} at {at:?}: only b's old captures may overlap"
            );
            let spell = overlaps.entry(stream.to_string()).or_insert((at, at));
            spell.1 = at;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "after SIGCONT: {polls} polls in {WATCH:?}; overlaps (first, last seen): {overlaps:?}"
    );
    assert!(polls >= 10, "b's API answered {polls} times");
    assert!(
        starts.is_empty(),
        "capture starts after SIGCONT: {starts:?}"
    );
    for (stream, (_, last)) in &overlaps {
        assert!(
            *last < OLD_CAPTURES_END,
            "b's old capture of {stream} still ran {last:?} after SIGCONT"
        );
    }
    // Where b's streams went while it was stopped, they stay (b is on its hold).
    let after = once(&all).unwrap_or_else(|| panic!("not at rest: {}", tables(&all)));
    assert_eq!(
        after,
        moved,
        "nothing moved after SIGCONT: {}",
        tables(&all)
    );
}

/// Issue #31, item 8: a node's identity is `host:port`. Three nodes on one address,
/// told apart by their ports alone and all with the same hostname (several nodes on
/// one machine), share the config of the first test: every stream is captured exactly
/// once, the `capture_at` stream by the node its port names, every node agrees on the
/// owners, and a redirect goes to the owner's port. Before, the nodes were one node to
/// each other: every node captured every stream (without hostnames), or the
/// `capture_at` stream was captured by no node and another by two (hostnames
/// `127.0.0.1:PORT`).
#[test]
fn three_nodes_on_one_address_are_three_nodes() {
    let ports = [free_port(), free_port(), free_port()];
    let mut shared = format!("cluster_key {KEY};\n");
    for port in ports {
        shared.push_str(&format!(
            "peer 127.0.0.1:{port} {{ fetch_timeout {FETCH_TIMEOUT_MS}; stale_timeout {STALE_TIMEOUT_MS}; }}\n"
        ));
    }
    shared.push_str(&format!(
        "stream cam0 {{ input test://; segment_duration 1; cluster_ingest capture_at=127.0.0.1:{}; }}\n",
        ports[1]
    ));
    for i in 1..9 {
        shared.push_str(&format!(
            "stream cam{i} {{ input test://; segment_duration 1; cluster_ingest; }}\n"
        ));
    }
    let members: Vec<Member> = ports
        .iter()
        .zip(NAMES)
        .map(|(port, name)| {
            let dir = TempDir::new(name);
            let main = dir.write("flotilla.conf", &shared);
            dir.write(
                "flotilla.conf.d/listen.conf",
                &format!("http 127.0.0.1:{port};\n"),
            );
            let http: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            // One hostname for all three: only the port tells them apart.
            let node = Node::start_with_file(&main, http, &["--hostname", "box"], &[]);
            Member {
                node: Some(node),
                http,
                rtmp: String::new(),
                dir,
            }
        })
        .collect();
    let [a, b, c] = [&members[0], &members[1], &members[2]];
    let placement = poll_until(Duration::from_secs(40), || exactly_once(&[a, b, c]))
        .unwrap_or_else(|| panic!("never captured exactly once: {:?}", capturers(&[a, b, c])));
    println!("placement on one address: {placement:?}");
    let id = |member: &Member| member.http.to_string();
    assert_eq!(placement["cam0"], "b", "capture_at names b by its port");
    for node in NAMES {
        let count = placement.values().filter(|n| *n == node).count();
        assert!(
            (2..=4).contains(&count),
            "{node} captures {count}: {placement:?}"
        );
    }
    for member in [a, b, c] {
        let table = get_json(member.http, "/streamer/api/v3/cluster/ingest").unwrap();
        assert_eq!(table["id"], id(member), "{table}");
        for row in table["streams"].as_array().unwrap() {
            // Owners are named by identity, `host:port`; a start took one epoch, not a
            // fight between nodes that took each other for themselves.
            let stream = row["stream"].as_str().unwrap();
            assert_eq!(
                row["owner"],
                node_id(&[a, b, c], &placement[stream]),
                "{table}"
            );
            assert!(row["epoch"].as_u64().unwrap() <= 2, "{table}");
        }
        let peers = get_json(member.http, "/streamer/api/v3/cluster/peers").unwrap();
        let mut ids: Vec<&str> = peers["peers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|peer| peer["state"] == "alive")
            .map(|peer| peer["id"].as_str().unwrap())
            .collect();
        ids.sort_unstable();
        let mut others: Vec<String> = [a, b, c]
            .iter()
            .filter(|other| other.http != member.http)
            .map(|other| id(other))
            .collect();
        others.sort();
        assert_eq!(ids, others, "{peers}");
    }
    // A viewer of b's stream at a goes to b's port.
    let (stream, owner) = placement
        .iter()
        .find(|(_, node)| *node == "b")
        .expect("b captures cam0");
    let (status, head, _) = http_get(a.http, &format!("/{stream}/index.m3u8"), &[]).unwrap();
    assert_eq!(status, 302, "{head}");
    assert!(
        head.contains(&format!("http://{}/{stream}/index.m3u8", b.http)),
        "{owner}: {head}"
    );
}
