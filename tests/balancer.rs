//! The balancer with real nodes on loopback: one node balances (127.0.0.1), three serve
//! (127.0.0.2–4), all from one shared config with a GeoIP database the test writes
//! itself. Viewers held on one server move the clients-mode choice to the others; the
//! viewer's country (from X-Forwarded-For of a trusted proxy) picks the servers listing
//! it; a killed server stops being chosen within stale_timeout and its country's
//! viewers go to the default servers; with no server left, 503 + Retry-After.

mod common;

use std::collections::BTreeSet;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

const KEY: &str = "shared-cluster-key-for-tests-0123456789";
const FETCH_TIMEOUT_MS: u64 = 300;
const STALE_TIMEOUT_MS: u64 = 1_500;
/// Viewers held on the first server.
const HELD_VIEWERS: usize = 4;

#[derive(serde::Serialize)]
struct Iso<'a> {
    iso_code: &'a str,
}
#[derive(serde::Serialize)]
struct CountryRecord<'a> {
    country: Iso<'a>,
}

/// A GeoIP database: 198.51.100.0/24 is CN, 192.0.2.0/24 is RU.
fn write_geoip(dir: &TempDir) -> std::path::PathBuf {
    let mut writer = mmdb_writer::Writer::new("GeoIP2-Country");
    for (net, code) in [("198.51.100.0/24", "CN"), ("192.0.2.0/24", "RU")] {
        let record = CountryRecord {
            country: Iso { iso_code: code },
        };
        writer
            .insert(net.parse::<ipnet::IpNet>().unwrap(), &record)
            .unwrap();
    }
    let path = dir.0.join("countries.mmdb");
    std::fs::write(&path, writer.to_bytes().unwrap()).unwrap();
    path
}

fn config(port: u16, geoip: &std::path::Path) -> String {
    let mut text = format!(
        "cluster_key {KEY};\ngeoip {};\ntrusted_proxies 127.0.0.1;\n",
        geoip.display()
    );
    for index in 1..=4 {
        text.push_str(&format!(
            "peer 127.0.0.{index}:{port} {{ fetch_timeout {FETCH_TIMEOUT_MS}; stale_timeout {STALE_TIMEOUT_MS}; }}\n"
        ));
    }
    text.push_str("stream news { input test://; segment_duration 1; }\n");
    text.push_str(&format!(
        "balancer lb {{ mode clients; server 127.0.0.2:{port}; server 127.0.0.3:{port}; server 127.0.0.4:{port}; }}\n"
    ));
    // The seed's shape: CN on two servers, RU on one, the last takes everyone else.
    text.push_str(&format!(
        "balancer geo {{ mode streams; server 127.0.0.2:{port} countries=CN; server 127.0.0.3:{port} countries=RU,CN; server 127.0.0.4:{port} countries_default=true; }}\n"
    ));
    text
}

fn report(at: SocketAddr, name: &str) -> Option<serde_json::Value> {
    let path = format!("/streamer/api/v3/cluster/balancers/{name}");
    let (status, _, body) = http_get(at, &path, &[]).ok()?;
    (status == 200).then(|| serde_json::from_str(&body).ok())?
}

/// `server` → (state, clients) in balancer `name`'s report.
fn server_row(at: SocketAddr, name: &str, server: &str) -> Option<(String, u64)> {
    let report = report(at, name)?;
    let row = report["servers"]
        .as_array()?
        .iter()
        .find(|row| row["server"] == server)?
        .clone();
    Some((row["state"].as_str()?.to_string(), row["clients"].as_u64()?))
}

/// The host of a redirect (`127.0.0.N`), asserting the path and query were kept.
fn redirected_host(at: SocketAddr, path: &str, headers: &[(&str, &str)]) -> String {
    let (status, head, _) = http_get(at, path, headers).unwrap();
    assert_eq!(status, 302, "{head}");
    let location = head
        .lines()
        .find_map(|line| line.strip_prefix("location: "))
        .unwrap_or_else(|| panic!("no location in {head}"));
    let rest = path.split_once('/').unwrap().1.split_once('/').unwrap().1;
    assert!(location.ends_with(&format!("/{rest}")), "{location}");
    location
        .trim_start_matches("http://")
        .split(':')
        .next()
        .unwrap()
        .to_string()
}

/// A viewer reading `/news/mpegts` from `at` until told to stop.
fn hold_viewer(at: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let Ok(mut stream) = TcpStream::connect(at) else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let request = format!("GET /news/mpegts HTTP/1.1\r\nHost: {at}\r\n\r\n");
        if std::io::Write::write_all(&mut stream, request.as_bytes()).is_err() {
            return;
        }
        let mut buffer = [0u8; 16 * 1024];
        while !stop.load(Ordering::Relaxed) {
            match stream.read(&mut buffer) {
                Ok(0) => return,
                Ok(_) => {}
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return,
            }
        }
    })
}

#[test]
#[allow(clippy::disallowed_methods)] // Measures a real detection time.
fn one_balancer_three_servers_load_countries_and_a_dead_server() {
    let (port, rtmp) = (free_port(), free_port());
    let geoip_dir = TempDir::new("geoip");
    let config = config(port, &write_geoip(&geoip_dir));
    let balancer = member(1, "balancer", port, rtmp, &config);
    let s2 = member(2, "s2", port, rtmp, &config);
    let mut s3 = member(3, "s3", port, rtmp, &config);
    let mut s4 = member(4, "s4", port, rtmp, &config);
    let server = |index: u8| format!("127.0.0.{index}:{port}");
    let all_up = poll_until(Duration::from_secs(20), || {
        let up = (2..=4).all(|i| {
            server_row(balancer.http, "lb", &server(i)).is_some_and(|(state, _)| state == "up")
        });
        up.then_some(())
    });
    assert!(
        all_up.is_some(),
        "every server up: {:?}",
        report(balancer.http, "lb")
    );

    // Viewers held on s2: once its report says so, the clients-mode choice avoids it.
    let stop = Arc::new(AtomicBool::new(false));
    let viewers: Vec<_> = (0..HELD_VIEWERS)
        .map(|_| hold_viewer(s2.http, stop.clone()))
        .collect();
    let counted = poll_until(Duration::from_secs(20), || {
        let (_, clients) = server_row(balancer.http, "lb", &server(2))?;
        (clients >= HELD_VIEWERS as u64).then_some(())
    });
    assert!(
        counted.is_some(),
        "the balancer learns s2's viewers from the mesh: {:?}",
        report(balancer.http, "lb")
    );
    let mut chosen = BTreeSet::new();
    // Fewer redirects than s2's viewers: pending ones never make s3 or s4 look busier.
    for _ in 0..HELD_VIEWERS {
        chosen.insert(redirected_host(
            balancer.http,
            "/lb/news/index.m3u8?token=abc",
            &[],
        ));
    }
    assert!(!chosen.contains("127.0.0.2"), "{chosen:?}");
    assert!(!chosen.is_empty());
    // Publish balancing answers 307 (the body goes again).
    let (status, head, _) = http_post(balancer.http, "/lb/news/whip", &[]).unwrap();
    assert_eq!(status, 307, "{head}");
    // A real player follows the redirect and plays.
    let probed = ffprobe_streams(&format!("http://{}/lb/news/index.m3u8", balancer.http));
    assert!(probed.contains("codec_name=h264"), "{probed}");
    stop.store(true, Ordering::Relaxed);
    for viewer in viewers {
        let _ = viewer.join();
    }

    // Countries: from X-Forwarded-For, believed because the test connects from
    // 127.0.0.1, a trusted proxy.
    let geo = |forwarded: Option<&str>| -> BTreeSet<String> {
        (0..6)
            .map(|_| {
                let headers: Vec<(&str, &str)> = forwarded
                    .map(|f| ("X-Forwarded-For", f))
                    .into_iter()
                    .collect();
                redirected_host(balancer.http, "/geo/news/mpegts", &headers)
            })
            .collect()
    };
    let cn = geo(Some("198.51.100.7"));
    assert!(
        cn.is_subset(&["127.0.0.2", "127.0.0.3"].map(String::from).into()),
        "CN: {cn:?}"
    );
    assert_eq!(
        geo(Some("192.0.2.7")),
        ["127.0.0.3".to_string()].into(),
        "RU"
    );
    assert_eq!(
        geo(Some("8.8.8.8")),
        ["127.0.0.4".to_string()].into(),
        "others"
    );
    assert_eq!(
        geo(None),
        ["127.0.0.4".to_string()].into(),
        "the proxy itself"
    );
    let decisions = report(balancer.http, "geo").unwrap()["recent_decisions"].clone();
    assert!(
        decisions
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["country"] == "RU"),
        "{decisions}"
    );

    // s3 killed: within stale_timeout it is down and never chosen; RU goes to the default.
    let killed_at = Instant::now();
    drop(s3.node.take());
    let down = poll_until(Duration::from_millis(STALE_TIMEOUT_MS * 4), || {
        let (state, _) = server_row(balancer.http, "lb", &server(3))?;
        (state == "down").then(|| killed_at.elapsed())
    })
    .expect("s3 is seen down");
    println!(
        "s3 down at the balancer {} ms after kill -9",
        down.as_millis()
    );
    assert!(
        down <= Duration::from_millis(STALE_TIMEOUT_MS + FETCH_TIMEOUT_MS + 500),
        "down after {down:?}"
    );
    for _ in 0..8 {
        let host = redirected_host(balancer.http, "/lb/news/index.m3u8", &[]);
        assert_ne!(host, "127.0.0.3");
    }
    assert_eq!(
        geo(Some("192.0.2.7")),
        ["127.0.0.4".to_string()].into(),
        "RU falls back"
    );

    // Every server gone: 503 with Retry-After.
    drop(s4.node.take());
    drop(s2);
    let refused = poll_until(Duration::from_millis(STALE_TIMEOUT_MS * 4), || {
        let (status, head, _) = http_get(balancer.http, "/lb/news/index.m3u8", &[]).ok()?;
        (status == 503).then_some(head)
    })
    .expect("503 once every server is down");
    assert!(
        refused.to_ascii_lowercase().contains("retry-after: 3"),
        "{refused}"
    );
    // s3 returns: chosen again.
    s3.restart("s3");
    let back = poll_until(Duration::from_secs(20), || {
        let (status, head, _) = http_get(balancer.http, "/lb/news/index.m3u8", &[]).ok()?;
        (status == 302 && head.contains("127.0.0.3")).then_some(())
    });
    assert!(back.is_some(), "s3 is chosen again after its return");
}
