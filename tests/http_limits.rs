//! The HTTP listener's limits against abusive clients: a request head trickled byte by
//! byte (slowloris) is cut at the total header deadline; an oversized head is refused;
//! silent connections, HTTP/2 openings that stop halfway and silent RTMP connections are
//! closed at their deadlines; a node out of file descriptors sheds silent connections
//! and still answers.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::*;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[test]
#[allow(clippy::disallowed_methods)] // Measures a real server's real deadline.
fn a_trickled_request_head_is_cut_at_the_header_deadline() {
    let port = free_port();
    let _node = Node::start(&format!("http 127.0.0.1:{port};\n"), addr(port), &[], &[]);
    let mut socket = TcpStream::connect(addr(port)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = Instant::now();
    let head = b"GET /flotilla/api/health HTTP/1.1\r\nHost: x\r\nX-Slow: ";
    let mut sent = 0;
    let mut closed = false;
    // One byte every 500 ms: every single read is "recent", only a total deadline stops it.
    while started.elapsed() < Duration::from_secs(20) {
        let byte = head.get(sent).copied().unwrap_or(b'a');
        if socket.write_all(&[byte]).is_err() {
            closed = true;
            break;
        }
        sent += 1;
        let mut buffer = [0u8; 256];
        match socket.read(&mut buffer) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {
                closed = true; // An error response (408) also ends it.
                break;
            }
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    let elapsed = started.elapsed();
    assert!(closed, "the slow client was never cut off");
    assert!(
        elapsed >= Duration::from_secs(9) && elapsed < Duration::from_secs(16),
        "cut after {elapsed:?}"
    );
}

#[test]
fn an_oversized_request_head_is_refused() {
    let port = free_port();
    let _node = Node::start(&format!("http 127.0.0.1:{port};\n"), addr(port), &[], &[]);
    let mut socket = TcpStream::connect(addr(port)).unwrap();
    socket.set_read_timeout(Some(REQUEST_DEADLINE)).unwrap();
    let huge = "a".repeat(200 * 1024);
    let request = format!("GET /flotilla/api/health HTTP/1.1\r\nHost: x\r\nX-Huge: {huge}\r\n\r\n");
    let _ = socket.write_all(request.as_bytes());
    let mut response = Vec::new();
    let _ = socket.read_to_end(&mut response);
    let text = String::from_utf8_lossy(&response);
    assert!(
        !text.contains("200 OK"),
        "an oversized head must not be served: {text}"
    );
    assert!(text.is_empty() || text.contains("431"), "{text}");
}

/// A connection and when it was closed by the server, if it was.
fn closed_within(mut socket: TcpStream, started: Instant, limit: Duration) -> Option<Duration> {
    let mut buffer = [0u8; 4096];
    loop {
        let left = limit.checked_sub(started.elapsed())?;
        socket
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        match socket.read(&mut buffer) {
            // The server's own frames (HTTP/2 SETTINGS, GOAWAY) come before the end.
            Ok(n) if n > 0 => {}
            Ok(_) => return Some(started.elapsed()),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            // Reset: closed too.
            Err(_) => return Some(started.elapsed()),
        }
    }
}

/// When each of `sockets` was closed, watched on a thread of its own.
fn watch_closing(
    sockets: Vec<TcpStream>,
    started: Instant,
    limit: Duration,
) -> std::thread::JoinHandle<Vec<Option<Duration>>> {
    std::thread::spawn(move || {
        sockets
            .into_iter()
            .map(|socket| closed_within(socket, started, limit))
            .collect()
    })
}

/// The earliest and latest closing of a group, all of which must have closed.
fn span_of(group: &str, closed: Vec<Option<Duration>>) -> (Duration, Duration) {
    let closed: Vec<Duration> = closed
        .into_iter()
        .map(|at| at.unwrap_or_else(|| panic!("a {group} connection was never closed")))
        .collect();
    (
        closed.iter().copied().min().unwrap(),
        closed.iter().copied().max().unwrap(),
    )
}

/// An empty HTTP/2 SETTINGS frame: what a client sends right after the preface.
const EMPTY_SETTINGS: [u8; 9] = [0, 0, 0, 4, 0, 0, 0, 0, 0];
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

#[test]
#[allow(clippy::disallowed_methods)] // Measures a real server's real deadlines.
fn silent_and_half_open_connections_are_closed_at_their_deadlines() {
    let (port, rtmp) = (free_port(), free_port());
    let node = Node::start(
        &format!("http 127.0.0.1:{port};\nrtmp 127.0.0.1:{rtmp};\n"),
        addr(port),
        &[],
        &[],
    );
    let connect = |port: u16, first: &[u8]| {
        let mut socket = TcpStream::connect(addr(port)).unwrap();
        socket.write_all(first).unwrap();
        socket
    };
    let started = Instant::now();
    let silent: Vec<TcpStream> = (0..100).map(|_| connect(port, b"")).collect();
    let preface: Vec<TcpStream> = (0..10).map(|_| connect(port, HTTP2_PREFACE)).collect();
    let settings: Vec<TcpStream> = (0..10)
        .map(|_| connect(port, &[HTTP2_PREFACE, &EMPTY_SETTINGS[..]].concat()))
        .collect();
    let silent_rtmp: Vec<TcpStream> = (0..10).map(|_| connect(rtmp, b"")).collect();
    // Held connections do not keep others out.
    let (status, _, _) = http_get(addr(port), "/flotilla/api/health", &[]).unwrap();
    assert_eq!(status, 200);

    let watch = Duration::from_secs(45);
    let silent = watch_closing(silent, started, watch);
    let preface = watch_closing(preface, started, watch);
    let settings = watch_closing(settings, started, watch);
    let silent_rtmp = watch_closing(silent_rtmp, started, watch);
    let bounds = |group: &str, closed, from: u64, to: u64| {
        let (first, last) = span_of(group, closed);
        eprintln!("{group} connections closed between {first:?} and {last:?}");
        assert!(
            first >= Duration::from_secs(from) && last < Duration::from_secs(to),
            "{group} connections closed between {first:?} and {last:?}; expected within [{from} s, {to} s)\n{}",
            node.log_tail()
        );
    };
    // First bytes: 10 s. HTTP/2 handshake (SETTINGS after the preface): 10 s.
    bounds("silent", silent.join().unwrap(), 9, 14);
    bounds("HTTP/2 preface-only", preface.join().unwrap(), 9, 14);
    // HTTP/2 idle: GOAWAY after 20 s without a request; a peer that answers neither it
    // nor the keep-alive ping is closed within keep-alive's 20 + 10 s.
    bounds("HTTP/2 idle", settings.join().unwrap(), 19, 35);
    // RTMP: the handshake deadline, 10 s.
    bounds("silent RTMP", silent_rtmp.join().unwrap(), 9, 14);
}

#[test]
#[allow(clippy::disallowed_methods)] // Measures a real server under a real fd limit.
fn a_node_out_of_file_descriptors_sheds_silent_connections_and_still_answers() {
    /// The node's descriptor limit, and how many silent connections hold it: more than
    /// the limit, so without shedding nothing would be accepted for 10 s.
    const NOFILE: u32 = 256;
    const SILENT: usize = 400;
    let port = free_port();
    let node = Node::start_with_fd_limit(&format!("http 127.0.0.1:{port};\n"), addr(port), NOFILE);
    let silent: Vec<TcpStream> = (0..SILENT)
        .map(|_| TcpStream::connect(addr(port)).unwrap())
        .collect();
    // The health request waits in the backlog behind the silent connections: each is
    // accepted in turn by shedding the oldest one that has sent nothing.
    let asked = Instant::now();
    let (status, _, _) = http_get(addr(port), "/flotilla/api/health", &[])
        .unwrap_or_else(|error| panic!("no answer ({error}); the log ends:\n{}", node.log_tail()));
    let answered = asked.elapsed();
    assert_eq!(status, 200);
    // The node was at its limit: the silent connections hold nearly every descriptor.
    let held =
        std::fs::read_dir(format!("/proc/{}/fd", node.child.id())).map_or(0, |fds| fds.count());
    eprintln!("health answered after {answered:?}; the node holds {held} descriptors");
    assert!(
        held + 16 >= NOFILE as usize,
        "only {held} descriptors in use"
    );
    assert!(
        answered < Duration::from_secs(5),
        "answered after {answered:?}, long before the first-bytes deadline would free anything"
    );
    // Most silent connections were shed (closed) on the way, the oldest first.
    let started = Instant::now();
    let closed = watch_closing(silent, started, Duration::from_secs(15))
        .join()
        .unwrap();
    assert!(
        closed.iter().all(Option::is_some),
        "every silent one closes"
    );
    let (status, _, _) = http_get(addr(port), "/flotilla/api/health", &[]).unwrap();
    assert_eq!(status, 200);
    let log = node.log_tail();
    let accept_warnings = log.lines().filter(|l| l.contains("accept failed")).count();
    assert!(
        accept_warnings <= 2,
        "{accept_warnings} accept warnings:\n{log}"
    );
}
