//! The opening of an HTTP connection, read under deadlines before hyper takes it.
//!
//! hyper-util's automatic HTTP/1-or-2 detection waits for the first bytes with no timer,
//! and hyper's HTTP/2 side has no handshake deadline: 1,000 silent connections, and ones
//! that sent only the HTTP/2 preface (with or without SETTINGS), stayed open for minutes,
//! and 1,100 silent ones locked out a node limited to 1,024 file descriptors (issue
//! 30.7). So the server reads the opening itself and hands the bytes to hyper in front
//! of the socket ([`super::rewind::Rewound`]), where hyper's own detection finds them:
//!
//! - the protocol must show within [`HttpLimits::first_bytes_timeout`]: one byte tells
//!   HTTP/1 unless it begins the HTTP/2 preface, which must then arrive whole;
//! - an HTTP/2 client must then send its first frame, SETTINGS (the rest of its
//!   connection preface, RFC 9113 §3.4), within [`HttpLimits::http2_handshake_timeout`].
//!
//! After that, an HTTP/1 head is under hyper's header deadline, and an HTTP/2
//! connection under the idle rule and keep-alive pings (`super::server`).

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::server::HttpLimits;

/// What every HTTP/2 client sends first (RFC 9113 §3.4).
pub const HTTP2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// An HTTP/2 frame header: length (3 bytes), type, flags, stream id (4 bytes).
const FRAME_HEADER_BYTES: usize = 9;

/// The frame type of SETTINGS.
const SETTINGS_FRAME_TYPE: u8 = 0x4;

/// Read buffer for the opening: the preface and a SETTINGS frame fit many times over.
const OPENING_BUFFER_BYTES: usize = 1024;

/// The protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
}

/// How an opening ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Opening {
    /// hyper takes the connection with `prefix` (every byte read so far) in front.
    Opened { protocol: Protocol, prefix: Bytes },
    /// The client closed, failed, or missed a deadline: the connection is dropped.
    Closed,
}

/// The protocol of a connection that began with `bytes`; `None` while they still match
/// the start of the HTTP/2 preface (or there are none).
pub fn protocol_of(bytes: &[u8]) -> Option<Protocol> {
    let seen = bytes.len().min(HTTP2_PREFACE.len());
    if bytes.is_empty() {
        None
    } else if bytes[..seen] != HTTP2_PREFACE[..seen] {
        Some(Protocol::Http1)
    } else if seen == HTTP2_PREFACE.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}

/// Whether an HTTP/2 connection that began with `bytes` (preface included) has sent its
/// handshake: the preface and the whole first frame. A first frame that is not SETTINGS
/// ends the handshake too: hyper refuses the connection for it at once.
pub fn http2_handshake_sent(bytes: &[u8]) -> bool {
    let Some(frame) = bytes.get(HTTP2_PREFACE.len()..) else {
        return false;
    };
    let Some(header) = frame.get(..FRAME_HEADER_BYTES) else {
        return false;
    };
    if header[3] != SETTINGS_FRAME_TYPE {
        return true;
    }
    let length =
        usize::from(header[0]) << 16 | usize::from(header[1]) << 8 | usize::from(header[2]);
    // hyper refuses a SETTINGS frame longer than its maximum frame size at once as well.
    length > MAX_SETTINGS_PAYLOAD_BYTES || frame.len() >= FRAME_HEADER_BYTES + length
}

/// The largest SETTINGS payload waited for: the default maximum frame size (RFC 9113
/// §6.5.2), far above the 6 bytes per setting a real client sends.
const MAX_SETTINGS_PAYLOAD_BYTES: usize = 16_384;

/// Reads the opening of `stream`, of which `prefix` was read already (by the balancer
/// lane), under the deadlines of `limits`.
pub async fn open<S: AsyncRead + Unpin>(
    stream: &mut S,
    prefix: Bytes,
    limits: &HttpLimits,
) -> Opening {
    let mut buffer = BytesMut::with_capacity(OPENING_BUFFER_BYTES.max(prefix.len()));
    buffer.extend_from_slice(&prefix);
    let protocol = tokio::time::timeout(limits.first_bytes_timeout, async {
        loop {
            if let Some(protocol) = protocol_of(&buffer) {
                return Some(protocol);
            }
            match stream.read_buf(&mut buffer).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    })
    .await;
    let Ok(Some(protocol)) = protocol else {
        return Opening::Closed;
    };
    if protocol == Protocol::Http2 {
        let handshake = tokio::time::timeout(limits.http2_handshake_timeout, async {
            while !http2_handshake_sent(&buffer) {
                match stream.read_buf(&mut buffer).await {
                    Ok(0) | Err(_) => return false,
                    Ok(_) => {}
                }
            }
            true
        })
        .await;
        if handshake != Ok(true) {
            return Opening::Closed;
        }
    }
    Opening::Opened {
        protocol,
        prefix: buffer.freeze(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_otp::rt::Runtime;
    use std::time::Duration;
    use tokio::io::AsyncWriteExt;

    /// An empty SETTINGS frame.
    const EMPTY_SETTINGS: [u8; 9] = [0, 0, 0, SETTINGS_FRAME_TYPE, 0, 0, 0, 0, 0];

    #[test]
    fn one_byte_tells_http1_unless_it_begins_the_preface() {
        assert_eq!(protocol_of(b""), None);
        assert_eq!(protocol_of(b"G"), Some(Protocol::Http1));
        assert_eq!(protocol_of(b"P"), None);
        assert_eq!(protocol_of(b"PRI * HTTP/2"), None);
        assert_eq!(protocol_of(b"POST / HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(protocol_of(b"PRI * HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(protocol_of(HTTP2_PREFACE), Some(Protocol::Http2));
        let mut more = HTTP2_PREFACE.to_vec();
        more.extend_from_slice(&EMPTY_SETTINGS);
        assert_eq!(protocol_of(&more), Some(Protocol::Http2));
    }

    #[test]
    fn the_handshake_is_the_preface_and_the_whole_first_frame() {
        let mut bytes = HTTP2_PREFACE.to_vec();
        assert!(!http2_handshake_sent(&bytes));
        // SETTINGS with one setting (6 bytes), sent in two pieces.
        bytes.extend_from_slice(&[0, 0, 6, SETTINGS_FRAME_TYPE, 0, 0, 0, 0, 0, 0, 3]);
        assert!(!http2_handshake_sent(&bytes));
        bytes.extend_from_slice(&[0, 0, 0, 100]);
        assert!(http2_handshake_sent(&bytes));
        // Another first frame (a PING) or an absurd length: hyper's to refuse, at once.
        let mut ping = HTTP2_PREFACE.to_vec();
        ping.extend_from_slice(&[0, 0, 8, 0x6, 0, 0, 0, 0, 0]);
        assert!(http2_handshake_sent(&ping));
        let mut huge = HTTP2_PREFACE.to_vec();
        huge.extend_from_slice(&[0xff, 0xff, 0xff, SETTINGS_FRAME_TYPE, 0, 0, 0, 0, 0]);
        assert!(http2_handshake_sent(&huge));
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_is_closed_at_the_first_bytes_deadline() {
        let limits = HttpLimits::default();
        let (mut server, _client) = tokio::io::duplex(64);
        let started = Runtime::deterministic(1, 0).now();
        assert_eq!(
            open(&mut server, Bytes::new(), &limits).await,
            Opening::Closed
        );
        assert_eq!(started.elapsed(), limits.first_bytes_timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn a_preface_without_settings_is_closed_at_the_handshake_deadline() {
        let limits = HttpLimits::default();
        let (mut server, mut client) = tokio::io::duplex(64);
        client.write_all(HTTP2_PREFACE).await.unwrap();
        let started = Runtime::deterministic(1, 0).now();
        assert_eq!(
            open(&mut server, Bytes::new(), &limits).await,
            Opening::Closed
        );
        assert_eq!(started.elapsed(), limits.http2_handshake_timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn an_opening_hands_every_byte_read_to_hyper() {
        let limits = HttpLimits::default();
        let (mut server, mut client) = tokio::io::duplex(256);
        // The lane read the first bytes; the rest trickles in within the deadlines.
        let writer = async {
            tokio::time::sleep(Duration::from_secs(1)).await;
            client
                .write_all(b"HTTP/2.0\r\n\r\nSM\r\n\r\n")
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            client.write_all(&EMPTY_SETTINGS).await.unwrap();
        };
        let (opened, ()) = tokio::join!(
            open(&mut server, Bytes::from_static(b"PRI * "), &limits),
            writer
        );
        let mut expected = HTTP2_PREFACE.to_vec();
        expected.extend_from_slice(&EMPTY_SETTINGS);
        assert_eq!(
            opened,
            Opening::Opened {
                protocol: Protocol::Http2,
                prefix: Bytes::from(expected)
            }
        );

        let (mut server, _client) = tokio::io::duplex(64);
        let opened = open(&mut server, Bytes::from_static(b"GET / HT"), &limits).await;
        assert_eq!(
            opened,
            Opening::Opened {
                protocol: Protocol::Http1,
                prefix: Bytes::from_static(b"GET / HT")
            }
        );
    }
}
