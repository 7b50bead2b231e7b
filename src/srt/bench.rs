//! The SRT ingest latency benchmark (`flotilla bench-srt`): how long a frame takes from
//! an encoder's send to the node's packager (where every viewer's copy comes from),
//! beyond the SRT latency configured — libsrt's TSBPD holds each packet for exactly that
//! long by design, so the rest is what the node adds.
//!
//! One process: a node with an SRT listener; an encoder thread that muxes the test clip
//! to MPEG-TS in real time (each frame's PES with its length, as encoders that set it
//! do) and sends it as a libsrt caller with the configured latency; a watcher subscribed
//! to the stream's frames inside the node. Each frame is matched to its send by its
//! bytes (per track, in order). The first seconds (track discovery, the first GOP) are
//! left out.

#![allow(clippy::disallowed_methods)] // A benchmark measures real time.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::ffi::{self, Socket};
use crate::config;
use crate::config::identity::NodeIdentity;
use crate::media::program::MAX_TRACKS;
use crate::media::source::ClipFrames;
use crate::media::ts::mux::Muxer;
use crate::node::Node;
use flotilla_otp::rt::Runtime;

/// Seconds at the start left out of the figures.
const WARMUP: Duration = Duration::from_secs(3);
/// SRT live mode's message size: 7 TS packets.
const MESSAGE_BYTES: usize = 1316;

/// What was measured: per frame, arrival − send − configured latency, in ms.
#[derive(Debug)]
pub struct Report {
    pub latency_ms: u32,
    pub frames: usize,
    pub added_p50_ms: f64,
    pub added_p99_ms: f64,
    pub added_max_ms: f64,
}

/// Frames sent and not yet seen, per track: (bytes, when the last byte was sent).
type Sent = Arc<Mutex<Vec<VecDeque<(Bytes, Instant)>>>>;

fn free_port() -> Result<u16, String> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = socket.local_addr().map_err(|e| e.to_string())?.port();
    Ok(port)
}

/// Runs for `seconds` with SRT latency `latency_ms` and returns the figures.
pub fn run(seconds: u64, latency_ms: u32) -> Result<Report, String> {
    ffi::available().map_err(|e| e.to_string())?;
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    tokio.block_on(measure(seconds, latency_ms))
}

async fn measure(seconds: u64, latency_ms: u32) -> Result<Report, String> {
    let (http_port, srt_port) = (free_port()?, free_port()?);
    let text = format!(
        "http 127.0.0.1:{http_port};\nsrt 127.0.0.1:{srt_port};\nloglevel error;\n\
         stream bench {{ input publish://; segment_duration 1; }}\n"
    );
    let loaded = config::load_str("<bench-srt>", &text).map_err(|e| e.to_string())?;
    let identity = NodeIdentity::resolve(&loaded.config, Some("bench"), None);
    let node = Node::start(&loaded, identity, Runtime::production())
        .await
        .map_err(|e| e.to_string())?;
    let directory = node.directory().clone();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let node_task = tokio::spawn(node.run(stopped));
    let live = {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if directory.has_publish_point("bench")
                && let Some(live) = directory.get("bench")
            {
                break live;
            }
            if Instant::now() > deadline {
                return Err("the benchmark stream did not open its publish point".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    let (_, _, mut frames) = live.subscribe_frames();
    let sent: Sent = Arc::new(Mutex::new(vec![VecDeque::new(); MAX_TRACKS]));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let address = SocketAddr::from(([127, 0, 0, 1], srt_port));
    let encoder_sent = sent.clone();
    let encoder = std::thread::Builder::new()
        .name("bench-srt-encoder".into())
        .spawn(move || encode(address, latency_ms, deadline, &encoder_sent))
        .map_err(|e| e.to_string())?;
    let mut added_ms = Vec::new();
    while Instant::now() < deadline {
        let frame = match tokio::time::timeout(Duration::from_secs(1), frames.recv()).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) | Err(_) => continue,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => break,
        };
        let arrived = Instant::now();
        let mut sent = sent.lock().unwrap_or_else(|p| p.into_inner());
        let Some(queue) = sent.get_mut(usize::from(frame.track)) else {
            continue;
        };
        while let Some((bytes, at)) = queue.pop_front() {
            if bytes == frame.data {
                if at >= started + WARMUP {
                    let total_ms = arrived.duration_since(at).as_secs_f64() * 1000.0;
                    added_ms.push(total_ms - f64::from(latency_ms));
                }
                break;
            }
        }
    }
    let encoded = encoder.join().map_err(|_| "the encoder thread panicked")?;
    let _ = stop.send(true);
    let _ = node_task.await;
    encoded?;
    if added_ms.is_empty() {
        return Err("no frame went through".into());
    }
    added_ms.sort_by(f64::total_cmp);
    let at = |q: f64| added_ms[((added_ms.len() - 1) as f64 * q) as usize];
    Ok(Report {
        latency_ms,
        frames: added_ms.len(),
        added_p50_ms: at(0.5),
        added_p99_ms: at(0.99),
        added_max_ms: at(1.0),
    })
}

/// The encoder: the test clip in real time, muxed, sent as SRT messages.
fn encode(
    address: SocketAddr,
    latency_ms: u32,
    deadline: Instant,
    sent: &Sent,
) -> Result<(), String> {
    let socket = Socket::new().map_err(|e| e.to_string())?;
    let configure = || -> Result<(), ffi::SrtError> {
        socket.set_i32(ffi::SRTO_LATENCY, latency_ms as i32)?;
        socket.set_bytes(ffi::SRTO_STREAMID, b"#!::r=bench,m=publish")?;
        socket.connect(address)
    };
    configure().map_err(|e| e.to_string())?;
    let mut clip = ClipFrames::new(crate::media::TEST_CLIP_TS).map_err(|e| e.to_string())?;
    let mut muxer = Muxer::new(clip.tracks());
    let start = Instant::now();
    let mut first_dts = None;
    while Instant::now() < deadline {
        let (frame, _) = clip.next_frame();
        let first = *first_dts.get_or_insert(frame.dts);
        // Audio may precede the first frame slightly: it goes out at once.
        let due =
            start + Duration::from_micros(frame.dts.saturating_sub(first) * 1_000_000 / 90_000);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let muxed = muxer.mux(&frame);
        for message in muxed.bytes.chunks(MESSAGE_BYTES) {
            socket.send(message).map_err(|e| e.to_string())?;
        }
        let mut sent = sent.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(queue) = sent.get_mut(usize::from(frame.track)) {
            queue.push_back((frame.data.clone(), Instant::now()));
        }
    }
    Ok(())
}
