//! Play and publish authorization with real clients and a real HTTP backend: a small
//! backend inside the test allows, denies, redirects, limits its answer's lifetime and
//! stalls, and a second one is dead. ffmpeg publishes with and without the stream's
//! password and the backend's consent; HLS viewers (their playlists carry the token into
//! segment URIs) and an RTMP player are allowed or refused; the backend is asked once per
//! session, never for a refused token's retries, and a stalled backend delays only the
//! viewer it is asked about.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::ffmpeg::Ffmpeg;
use common::play::{ffmpeg_plays, stream_stats};
use common::*;

/// The questions a backend was asked: (path, query parameters).
type Asked = Arc<Mutex<Vec<(String, HashMap<String, String>)>>>;

/// An authorization backend on loopback, answering by token: `good` 200, `brief` 200
/// valid for 1 s, `away` 302, `slow` after 10 s, anything else 403. Publishers: `pubok`.
struct Backend {
    port: u16,
    asked: Asked,
}

impl Backend {
    fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let asked: Asked = Arc::default();
        let record = asked.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let record = record.clone();
                std::thread::spawn(move || answer(stream, &record));
            }
        });
        Backend { port, asked }
    }

    /// How many questions carried `token` (on any path).
    fn asked_about(&self, token: &str) -> Vec<HashMap<String, String>> {
        self.asked
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, query)| query.get("token").map(String::as_str) == Some(token))
            .map(|(_, query)| query.clone())
            .collect()
    }
}

fn answer(stream: TcpStream, record: &Asked) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let target = line
        .split_whitespace()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query: HashMap<String, String> = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), decode(v)))
        .collect();
    let token = query.get("token").cloned().unwrap_or_default();
    record.lock().unwrap().push((path.to_string(), query));
    let head = match (path, token.as_str()) {
        ("/publish", "pubok") => "200 OK\r\n".to_string(),
        ("/publish", _) => "403 Forbidden\r\n".to_string(),
        (_, "good") => "200 OK\r\n".to_string(),
        (_, "brief") => "200 OK\r\nX-AuthDuration: 1\r\n".to_string(),
        (_, "away") => "302 Found\r\nLocation: http://ads.example/watch\r\n".to_string(),
        (_, "slow") => {
            std::thread::sleep(Duration::from_secs(10));
            "200 OK\r\n".to_string()
        }
        _ => "403 Forbidden\r\n".to_string(),
    };
    let mut stream = stream;
    let _ = stream.write_all(
        format!("HTTP/1.1 {head}Content-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
    );
}

fn decode(value: &str) -> String {
    let bytes = value.replace('+', " ");
    let mut out = Vec::new();
    let mut iter = bytes.bytes();
    while let Some(b) = iter.next() {
        if b == b'%' {
            let hex: String = [iter.next(), iter.next()]
                .iter()
                .flatten()
                .map(|&c| c as char)
                .collect();
            out.push(u8::from_str_radix(&hex, 16).unwrap_or(b'?'));
        } else {
            out.push(b);
        }
    }
    String::from_utf8_lossy(&out).to_string()
}

/// A port nothing listens on: a dead backend.
fn dead_port() -> u16 {
    free_port()
}

struct Fixture {
    node: Node,
    at: SocketAddr,
    rtmp: u16,
    backend: Backend,
}

fn start() -> Fixture {
    let backend = Backend::start();
    let (port, rtmp, dead) = (free_port(), free_port(), dead_port());
    let at = SocketAddr::from(([127, 0, 0, 1], port));
    let b = backend.port;
    let config = format!(
        "http 127.0.0.1:{port};\nrtmp 127.0.0.1:{rtmp};\n\
         auth_backend lenient {{ deny ua BadBot; backend http://127.0.0.1:{dead}/x; allow default; }}\n\
         auth_backend strict {{ backend http://127.0.0.1:{dead}/x; }}\n\
         stream paid {{ input publish://; segment_duration 1; on_play http://127.0.0.1:{b}/play; }}\n\
         stream lenient {{ input publish://; segment_duration 1; on_play auth://lenient; }}\n\
         stream strict {{ input publish://; segment_duration 1; on_play auth://strict; }}\n\
         stream guarded {{ input publish://; segment_duration 1; password pub%secret; \
           on_publish http://127.0.0.1:{b}/publish; protocols hls; max_sessions 1; }}\n"
    );
    let node = Node::start(&config, at, &[], &[]);
    Fixture {
        node,
        at,
        rtmp,
        backend,
    }
}

impl Fixture {
    fn publish(&self, key: &str) -> Ffmpeg {
        Ffmpeg::publish_clip(&format!("rtmp://127.0.0.1:{}/static/{key}", self.rtmp))
    }

    /// Waits until `name` receives media (seen in the streams API: a viewer would be a
    /// session, and sessions are what these tests count).
    fn published(&self, name: &str) {
        poll_until(Duration::from_secs(20), || {
            (stream_stats(self.at, name)?["alive"] == true).then_some(())
        })
        .unwrap_or_else(|| panic!("{name} is published:\n{}", self.node.log_tail()));
    }

    fn get(&self, path: &str, agent: &str) -> (u16, String, String) {
        http_get(self.at, path, &[("User-Agent", agent)]).expect("the node answers")
    }
}

#[test]
fn hls_viewers_are_asked_about_once_per_session_and_refused_tokens_stay_refused() {
    let f = start();
    let _publisher = f.publish("paid");
    f.published("paid");
    // Allowed: the master playlist's URIs carry the token, and the whole playback
    // (master, media playlist, segments) is one session the backend was asked about once.
    let (status, _, master) = f.get("/paid/index.m3u8?token=good", "player");
    assert_eq!(status, 200, "{master}");
    let media_uri = master
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .unwrap();
    assert!(media_uri.ends_with("?token=good"), "{master}");
    let (status, _, media) = f.get(&format!("/paid/{media_uri}"), "player");
    assert_eq!(status, 200);
    let segment = media
        .lines()
        .rfind(|l| l.ends_with("?token=good"))
        .expect("segment URIs carry the token");
    let (status, _, _) = f.get(&format!("/paid/tracks-v1a1/{segment}"), "player");
    assert_eq!(status, 200);
    let asked = f.backend.asked_about("good");
    assert_eq!(asked.len(), 1, "asked once for the session: {asked:?}");
    let question = &asked[0];
    assert_eq!(question.get("name").map(String::as_str), Some("paid"));
    assert_eq!(question.get("proto").map(String::as_str), Some("hls"));
    assert_eq!(question.get("ip").map(String::as_str), Some("127.0.0.1"));
    assert_eq!(
        question.get("request_type").map(String::as_str),
        Some("new_session")
    );
    assert_eq!(
        question.get("user_agent").map(String::as_str),
        Some("player")
    );
    // Refused, and its retries are refused without asking again; nothing leaks.
    for _ in 0..3 {
        let (status, _, body) = f.get("/paid/index.m3u8?token=bad", "player");
        assert_eq!(status, 403);
        assert!(
            !body.contains("127.0.0.1"),
            "the refusal names no backend: {body}"
        );
    }
    assert_eq!(f.backend.asked_about("bad").len(), 1);
    assert!(f.node.log_tail().contains("viewer refused"));
    // Redirected where the backend says.
    let (status, head, _) = f.get("/paid/index.m3u8?token=away", "player");
    assert_eq!(status, 302);
    assert!(
        head.contains("location: http://ads.example/watch"),
        "{head}"
    );
    // An answer valid for 1 s is asked again (update_session) after it expires.
    assert_eq!(f.get("/paid/index.m3u8?token=brief", "player").0, 200);
    let renewed = poll_until(Duration::from_secs(5), || {
        f.get("/paid/tracks-v1a1/mono.m3u8?token=brief", "player");
        let asked = f.backend.asked_about("brief");
        (asked.len() >= 2).then_some(asked)
    })
    .expect("the expired answer is asked again");
    assert_eq!(
        renewed[1].get("request_type").map(String::as_str),
        Some("update_session")
    );
    assert_eq!(
        renewed[1].get("request_number").map(String::as_str),
        Some("1")
    );
    // RTMP players too.
    let url = format!("rtmp://127.0.0.1:{}/static/paid", f.rtmp);
    let (played, stderr) = ffmpeg_plays(&format!("{url}?token=good"), 1);
    assert!(played, "an allowed RTMP player plays: {stderr}");
    let (played, _) = ffmpeg_plays(&format!("{url}?token=bad"), 1);
    assert!(!played, "a refused RTMP player does not");
}

#[test]
#[allow(clippy::disallowed_methods)] // Measures a real server behind a stalled backend.
fn a_stalled_backend_delays_only_its_viewer_and_a_dead_one_falls_to_the_default() {
    let f = start();
    let _paid = f.publish("paid");
    let _lenient = f.publish("lenient");
    f.published("paid");
    f.published("lenient");
    let at = f.at;
    let stalled = std::thread::spawn(move || {
        let started = std::time::Instant::now();
        let (status, _, _) = http_get(at, "/paid/index.m3u8?token=slow", &[]).unwrap();
        (status, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    // Meanwhile another viewer of the same stream is served at once.
    let started = std::time::Instant::now();
    assert_eq!(f.get("/paid/index.m3u8?token=good", "other").0, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    let (status, waited) = stalled.join().unwrap();
    assert_eq!(status, 403, "a lone backend that does not answer denies");
    assert!(
        waited >= Duration::from_millis(2_500) && waited < Duration::from_secs(6),
        "bounded by the backend timeout: {waited:?}"
    );
    // A dead backend: `allow default` allows (its rules still deny), else denied.
    assert_eq!(f.get("/lenient/index.m3u8", "player").0, 200);
    assert_eq!(f.get("/lenient/index.m3u8", "BadBot/1.0").0, 403);
    assert_eq!(f.get("/strict/index.m3u8", "player").0, 403);
}

#[test]
fn publishers_need_the_password_and_the_backends_consent() {
    let f = start();
    let refused = |key: &str| {
        let mut publisher = f.publish(key);
        let ended = wait_with_deadline(&mut publisher.0, Duration::from_secs(10));
        assert!(
            ended.is_some_and(|status| !status.success()),
            "publishing to {key} is refused"
        );
    };
    refused("guarded");
    refused("guarded?password=wrong&token=pubok");
    refused("guarded?password=pub%25secret&token=nope");
    let log = f.node.log_tail();
    assert!(log.contains("a password is required"), "{log}");
    assert!(log.contains("wrong password"), "{log}");
    assert!(!log.contains("pub%secret"), "the password is never logged");
    assert!(
        stream_stats(f.at, "guarded").is_some_and(|stats| stats["alive"] == false),
        "nothing was published"
    );
    let _publisher = f.publish("guarded?password=pub%25secret&token=pubok");
    f.published("guarded");
    // `protocols hls` and `max_sessions 1`.
    assert_eq!(f.get("/guarded/mpegts", "player").0, 403);
    assert_eq!(f.get("/guarded/index.m3u8", "first").0, 200);
    let (status, _, body) = f.get("/guarded/index.m3u8", "second");
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("max_sessions"), "{body}");
}
