//! The HTTP listener's limits against abusive clients: a request head trickled byte by
//! byte (slowloris) is cut at the total header deadline; an oversized head is refused.

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
