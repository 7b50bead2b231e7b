//! `event_sink` on real nodes: a webhook receiver inside the test takes the batches (or
//! fails them, or never answers) while ffmpeg publishes and plays, the config reloads
//! and, across two nodes, the capturer of a cluster_ingest stream is killed with -9.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::ffmpeg::Ffmpeg;
use common::play::{ffmpeg_plays, media_playlist};
use common::{Node, free_port, http_get, member_with, poll_until, wait_with_deadline};
use serde_json::Value;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// How long an event may take to arrive (delivery is within a second while the
/// receiver answers; failures add the retry backoff).
const ARRIVAL_DEADLINE: Duration = Duration::from_secs(20);

/// A webhook receiver: records every event of the batches it accepts.
struct Receiver {
    url: String,
    events: Arc<Mutex<Vec<Value>>>,
    posts: Arc<AtomicUsize>,
}

impl Receiver {
    /// Answers 500 and 302 in turn to the first `fail_first` POSTs, then 200; with
    /// `hang`, never answers.
    fn start(fail_first: usize, hang: bool) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binds");
        let url = format!("http://{}/events", listener.local_addr().unwrap());
        let events = Arc::new(Mutex::new(Vec::new()));
        let posts = Arc::new(AtomicUsize::new(0));
        let (events_in, posts_in) = (events.clone(), posts.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let n = posts_in.fetch_add(1, Ordering::SeqCst);
                if hang {
                    held.push(stream);
                    continue;
                }
                let Some(body) = read_request(&mut stream) else {
                    continue;
                };
                if n < fail_first {
                    // A failure, then a redirect (never followed: it fails the POST too).
                    let answer: &[u8] = match n % 2 {
                        0 => b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                        _ => b"HTTP/1.1 302 Found\r\nlocation: /events\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    };
                    let _ = stream.write_all(answer);
                    continue;
                }
                if let Ok(Value::Array(batch)) = serde_json::from_slice::<Value>(&body) {
                    events_in.lock().unwrap().extend(batch);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        Receiver { url, events, posts }
    }

    fn events(&self) -> Vec<Value> {
        self.events.lock().unwrap().clone()
    }

    /// Waits for an event matching `wanted`.
    fn wait_for(&self, what: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        poll_until(ARRIVAL_DEADLINE, || {
            self.events().into_iter().find(|e| wanted(e))
        })
        .unwrap_or_else(|| panic!("no {what} event: {:#?}", self.events()))
    }
}

/// One HTTP/1.1 request's body (by content-length).
fn read_request(stream: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(body)
}

/// The value of the first sample whose line starts with `prefix`.
fn sample(metrics: &str, prefix: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|line| line.starts_with(prefix))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

fn named<'e>(events: &'e [Value], name: &str) -> Vec<&'e Value> {
    events.iter().filter(|e| e["event"] == name).collect()
}

/// Each server's events, deduplicated by `event_id`, are numbered 1, 2, 3… with no gap
/// (`INCARNATION-N`): nothing was lost, whatever was delivered twice.
fn assert_nothing_lost(events: &[Value]) {
    let mut by_server: BTreeMap<String, BTreeMap<u64, String>> = BTreeMap::new();
    for event in events {
        let id = event["event_id"].as_str().expect("an event_id");
        let (_, sequence) = id.split_once('-').expect("INCARNATION-N");
        by_server
            .entry(event["server"].as_str().unwrap_or_default().to_string())
            .or_default()
            .insert(sequence.parse().expect("a number"), id.to_string());
    }
    for (server, sequences) in by_server {
        let numbers: Vec<u64> = sequences.keys().copied().collect();
        let expected: Vec<u64> = (1..=numbers.len() as u64).collect();
        assert_eq!(numbers, expected, "events of {server} are missing");
    }
}

#[test]
fn events_reach_a_failing_webhook_in_order_and_a_jsonlog_file() {
    let receiver = Receiver::start(2, false);
    let (port, rtmp) = (free_port(), free_port());
    let config = format!(
        "http 127.0.0.1:{port};\nrtmp 127.0.0.1:{rtmp};\n\
         event_sink hooks {{ url {}; }}\n\
         notify files {{ sink jsonlog://events.jsonl; only event=play_*,publish_*; }}\n\
         stream clip {{ input test://; segment_duration 1; }}\n\
         stream pub {{ input publish://; segment_duration 1; }}\n",
        receiver.url
    );
    let mut node = Node::start(&config, addr(port), &[], &[]);
    let at = addr(port);
    receiver.wait_for("server_started", |e| e["event"] == "server_started");
    receiver.wait_for("clip's source", |e| {
        e["event"] == "source_started" && e["media"] == "clip" && e["url"] == "test://"
    });
    let publisher = Ffmpeg::publish_clip(&format!("rtmp://127.0.0.1:{rtmp}/static/pub"));
    receiver.wait_for("publish_started", |e| {
        e["event"] == "publish_started" && e["media"] == "pub"
    });
    assert!(poll_until(Duration::from_secs(15), || media_playlist(at, "clip")).is_some());
    let (played, errors) = ffmpeg_plays(&format!("http://{at}/clip/mpegts"), 2);
    assert!(played, "{errors}");
    let closed = receiver.wait_for("play_closed", |e| e["event"] == "play_closed");
    assert_eq!(closed["media"], "clip");
    assert_eq!(closed["proto"], "mpegts");
    assert_eq!(closed["ip"], "127.0.0.1");
    assert!(
        closed["bytes"].as_u64().is_some_and(|b| b > 10_000),
        "{closed}"
    );
    drop(publisher);
    receiver.wait_for("publish_stopped", |e| {
        e["event"] == "publish_stopped" && e["media"] == "pub"
    });
    node.dir.write(
        "flotilla.conf",
        &(config.clone() + "stream more { input test://; }\n"),
    );
    node.signal("HUP");
    let reloaded = receiver.wait_for("config_reloaded", |e| e["event"] == "config_reloaded");
    assert_eq!(reloaded["streams"]["added"][0], "more", "{reloaded}");
    receiver.wait_for("the added stream", |e| {
        e["event"] == "stream_opened" && e["media"] == "more"
    });
    // A 500 and a redirect were retried: counted, and nothing lost or reordered.
    let (_, _, metrics) = http_get(at, "/flotilla/api/metrics", &[]).unwrap();
    assert_eq!(
        sample(
            &metrics,
            "flotilla_event_sink_failed_attempts_total{sink=\"hooks\""
        ),
        Some(2.0),
        "{metrics}"
    );
    node.signal("TERM");
    let status = wait_with_deadline(&mut node.child, Duration::from_secs(20));
    assert!(status.is_some_and(|s| s.success()), "{}", node.log_tail());
    let events = receiver.events();
    assert_eq!(
        named(&events, "server_stopping").len(),
        1,
        "drained at stop"
    );
    assert_nothing_lost(&events);
    let ids: Vec<u64> = events
        .iter()
        .map(|e| {
            e["event_id"]
                .as_str()
                .unwrap()
                .split_once('-')
                .unwrap()
                .1
                .parse()
                .unwrap()
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
    assert!(receiver.posts.load(Ordering::SeqCst) >= 3);

    // The jsonlog sink took only what its filter selects.
    let lines = std::fs::read_to_string(node.dir.0.join("events.jsonl")).expect("written");
    let logged: Vec<Value> = lines
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON lines"))
        .collect();
    assert!(!logged.is_empty());
    assert!(
        logged.iter().all(|e| {
            let name = e["event"].as_str().unwrap_or_default();
            name.starts_with("play_") || name.starts_with("publish_")
        }),
        "{logged:?}"
    );
}

#[test]
fn a_webhook_that_never_answers_costs_bounded_memory_and_nothing_else() {
    let receiver = Receiver::start(0, true);
    let port = free_port();
    let config = format!(
        "http 127.0.0.1:{port};\n\
         event_sink stuck {{ url {}; resend_limit 50; }}\n\
         stream clip {{ input test://; segment_duration 1; }}\n",
        receiver.url
    );
    let node = Node::start(&config, addr(port), &[], &[]);
    let at = addr(port);
    assert!(poll_until(Duration::from_secs(15), || media_playlist(at, "clip")).is_some());
    // 200 sessions (one per token): 200 play_opened events for a receiver that hangs.
    for token in 0..200 {
        let (status, _, _) =
            http_get(at, &format!("/clip/index.m3u8?token=t{token}"), &[]).expect("answers");
        assert_eq!(status, 200);
    }
    let dropped = poll_until(Duration::from_secs(10), || {
        let (_, _, metrics) = http_get(at, "/flotilla/api/metrics", &[]).ok()?;
        let count = sample(&metrics, "flotilla_event_sink_dropped_total{sink=\"stuck\"")?;
        (count >= 100.0).then_some(count)
    });
    assert!(
        dropped.is_some(),
        "the queue stays bounded: {}",
        node.log_tail()
    );
    let (_, _, metrics) = http_get(at, "/flotilla/api/metrics", &[]).unwrap();
    let queued = sample(&metrics, "flotilla_event_sink_queued{sink=\"stuck\"").expect("queued");
    assert!(queued <= 50.0, "{queued}");
    assert!(
        receiver.posts.load(Ordering::SeqCst) >= 1,
        "the webhook was called"
    );
    let (played, errors) = ffmpeg_plays(&format!("http://{at}/clip/index.m3u8"), 2);
    assert!(played, "the node serves on: {errors}");
}

#[test]
fn a_failover_after_kill_9_is_reported_once_by_the_node_that_takes_over() {
    let receiver = Receiver::start(0, false);
    let (port, rtmp) = (free_port(), free_port());
    let shared = format!(
        "cluster_key 0123456789abcdef0123456789abcdef;\n\
         peer 127.0.0.1:{port} {{ fetch_timeout 500; stale_timeout 2000; }}\n\
         peer 127.0.0.2:{port} {{ fetch_timeout 500; stale_timeout 2000; }}\n\
         event_sink hooks {{ url {}; }}\n\
         stream cam {{ input test://; segment_duration 1; cluster_ingest capture_at=127.0.0.1:{port}; }}\n",
        receiver.url
    );
    let mut a = member_with(1, "a", port, rtmp, &shared, "");
    let b = member_with(2, "b", port, rtmp, &shared, "");
    let a_id = a.http.to_string();
    let b_id = b.http.to_string();
    receiver.wait_for("a captures", |e| {
        e["event"] == "ingest_moved" && e["to"] == a_id.as_str()
    });
    receiver.wait_for("b sees a", |e| {
        e["event"] == "peer_up" && e["server"] == b_id.as_str()
    });
    // The cluster at rest: both nodes agree that a runs the capture (capture_at).
    let settled = poll_until(Duration::from_secs(30), || {
        [a.http, b.http]
            .iter()
            .all(|at| {
                http_get(*at, "/streamer/api/v3/cluster/ingest", &[])
                    .ok()
                    .and_then(|(_, _, body)| serde_json::from_str::<Value>(&body).ok())
                    .is_some_and(|table| table["streams"][0]["running_on"] == a_id.as_str())
            })
            .then_some(())
    });
    assert!(settled.is_some(), "a never settled as the capturer");
    // kill -9 of the capturer.
    let before_kill = receiver.events().len();
    drop(a.node.take());
    let moved = poll_until(ARRIVAL_DEADLINE, || {
        receiver.events()[before_kill..]
            .iter()
            .find(|e| e["event"] == "ingest_moved" && e["to"] == b_id.as_str())
            .cloned()
    })
    .unwrap_or_else(|| panic!("no failover event: {:#?}", receiver.events()));
    assert_eq!(moved["from"], a_id.as_str(), "{moved}");
    assert_eq!(moved["server"], b_id.as_str());
    assert!(moved["epoch"].as_u64().is_some_and(|e| e >= 2), "{moved}");
    receiver.wait_for("a is down", |e| {
        e["event"] == "peer_down" && e["server"] == b_id.as_str() && e["peer"] == a_id.as_str()
    });
    let events = receiver.events();
    let moves_to_b: Vec<_> = named(&events[before_kill..], "ingest_moved")
        .into_iter()
        .filter(|e| e["to"] == b_id.as_str())
        .collect();
    assert_eq!(moves_to_b.len(), 1, "reported once: {moves_to_b:#?}");
    // Everything b emitted arrived (its sequence has no gap).
    let from_b: Vec<Value> = events
        .iter()
        .filter(|e| e["server"] == b_id.as_str())
        .cloned()
        .collect();
    assert_nothing_lost(&from_b);
    drop(b);
}

/// An https receiver with `flotilla dev-cert`'s certificate: the node trusts it through
/// `SSL_CERT_FILE`, as it would trust a public receiver through the system's roots.
#[test]
fn events_reach_an_https_webhook_verified_against_the_trusted_roots() {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let certs = common::TempDir::new("webhook-tls");
    let (status, _, stderr) = common::run_to_end(
        &["dev-cert", "--dir", certs.0.to_str().unwrap()],
        Duration::from_secs(20),
    );
    assert!(status.success(), "{stderr}");
    let certificate = certs.0.join("flotilla.crt");
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&certificate)
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(certs.0.join("flotilla.key")).unwrap();
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let receiver_port = listener.local_addr().unwrap().port();
    let events = Arc::new(Mutex::new(Vec::<Value>::new()));
    let seen = events.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(tcp) = stream else { continue };
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(5)));
            let connection = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(connection, tcp);
            let Some(body) = read_request_from(&mut tls) else {
                continue;
            };
            if let Ok(Value::Array(batch)) = serde_json::from_slice::<Value>(&body) {
                seen.lock().unwrap().extend(batch);
            }
            let _ =
                tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
            let _ = tls.flush();
        }
    });
    let port = free_port();
    let config = format!(
        "http 127.0.0.1:{port};\n\
         event_sink secure {{ url https://localhost:{receiver_port}/events; }}\n\
         stream clip {{ input test://; segment_duration 1; }}\n"
    );
    let node = Node::start(
        &config,
        addr(port),
        &[],
        &[("SSL_CERT_FILE", certificate.to_str().unwrap())],
    );
    let arrived = poll_until(ARRIVAL_DEADLINE, || {
        events
            .lock()
            .unwrap()
            .iter()
            .find(|e| e["event"] == "source_started" && e["media"] == "clip")
            .cloned()
    });
    assert!(
        arrived.is_some(),
        "no event over https: {}",
        node.log_tail()
    );
}

/// One HTTP/1.1 request's body (by content-length) from any byte stream.
fn read_request_from(stream: &mut impl Read) -> Option<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte).ok()? == 0 || head.len() > 16 * 1024 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body).ok()?;
    Some(body)
}
