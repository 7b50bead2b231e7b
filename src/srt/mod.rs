//! SRT: encoders publish to the node (`srt PORT;`, the stream id names the stream), and
//! the node pulls from SRT listeners (`input srt://HOST:PORT`).
//!
//! Why libsrt through a run-time-loaded binding, not a Rust implementation: SRT is one
//! C++ implementation's protocol in practice. Every encoder an operator has (ffmpeg,
//! OBS, vMix, hardware encoders, srt-live-transmit) is libsrt, and interoperating with it
//! is the whole job: handshake versions and extensions, the stream id, encryption key
//! exchange, TSBPD, too-late drop, NAK reports. We compared the two Rust options:
//! - srt-tokio 0.4 (a Rust implementation): its listener panics on a caller with a wrong
//!   passphrase (a hostile input takes a task down), it has not had a release since 2023,
//!   and it brings tokio's test utilities into the build;
//! - shiguredo_srt (sans-IO, a good fit for our runtime seam) is a 2026 canary release
//!   with no interop record yet.
//!
//! libsrt is what ffmpeg links (Debian's ffmpeg, our test client, is built with it), so
//! interop is by construction, and Debian packages it (`libsrt1.5-openssl` or
//! `-gnutls`). We load it at run time (`ffi`): the node builds and runs without it, and
//! only an SRT listener or input asks for it, with a clear error when it is missing.
//!
//! libsrt's calls block; they run on dedicated threads, one per connection (at most
//! [`MAX_SRT_CONNECTIONS`] publishers per listener) plus one per listener, and hand TS bytes to the node's async
//! side through bounded channels. The simulator never runs SRT: it is an IO edge.

pub mod bench;
pub mod caller;
pub mod ffi;
pub mod listener;
pub mod stream_id;

use std::time::Duration;

/// Most SRT publishers one listener serves at once: each holds a thread and libsrt's
/// buffers (a few MiB); past it a caller is dropped with a warning. (Pulls are bounded
/// by the config: one per `input srt://`.)
pub const MAX_SRT_CONNECTIONS: usize = 256;

/// TS payloads queued between a connection's receiving thread and its stream (~2.5 s
/// of a 10 Mbit/s stream in 1316-byte messages); a full queue holds the thread, and
/// libsrt's own buffer absorbs, then drops, what is late.
pub const RECEIVE_QUEUE_MESSAGES: usize = 2048;

/// libsrt's own peer-idle timeout: a connection silent this long is broken by libsrt.
pub const PEER_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// The receive latency the node's listener asks for itself: the connection's latency is
/// the larger of the two sides', so the encoder's setting rules (libsrt's 120 ms when it
/// sets none), and a low-latency encoder is not held back by the node.
pub const LISTENER_LATENCY: Duration = Duration::from_millis(20);

/// How long a caller's connect may take (`SRTO_CONNTIMEO`).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest live-mode message (SRT payload of one UDP packet; 1316 = 7 TS packets is
/// what encoders send).
pub const MAX_MESSAGE_BYTES: usize = 1500;

/// SRT's passphrase bounds (libsrt refuses others).
pub const PASSPHRASE_BYTES: std::ops::RangeInclusive<usize> = 10..=79;

/// What a receiving thread hands its stream.
#[derive(Debug)]
pub enum Received {
    /// TS bytes (one SRT message).
    Bytes(bytes::Bytes),
    /// The connection ended: why.
    Ended(String),
}

/// Receives from `socket` until it breaks, is closed by its owner (`Socket::close_now`,
/// when the stream no longer wants it), or `sender`'s receiver is gone; runs on its own
/// thread, blocked in libsrt between messages (a silent peer is broken by libsrt after
/// [`PEER_IDLE_TIMEOUT`]).
fn receive_loop(socket: &ffi::Socket, sender: tokio::sync::mpsc::Sender<Received>) {
    let mut buffer = [0u8; MAX_MESSAGE_BYTES];
    loop {
        match socket.receive(&mut buffer) {
            Ok(0) => {}
            Ok(length) => {
                let message = Received::Bytes(bytes::Bytes::copy_from_slice(&buffer[..length]));
                if sender.blocking_send(message).is_err() {
                    return;
                }
            }
            Err(error) => {
                let _ = sender.blocking_send(Received::Ended(error.to_string()));
                return;
            }
        }
    }
}
