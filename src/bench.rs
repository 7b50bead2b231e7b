//! `flotilla bench`: a node and its load generator in one process, on loopback.
//!
//! Starts a node serving the built-in test stream (~300 kbit/s, 2 s segments), then N
//! simulated viewers of one protocol:
//! - `hls`: each viewer keeps one HTTP/1.1 connection, fetches the media playlist, then
//!   every new segment, at real-time pace (one playlist refresh per target duration);
//!   segment latency is the time from request to the last byte;
//! - `mpegts`: each viewer reads `/test/mpegts` continuously;
//! - `rtmp`: each viewer plays `rtmp://…/static/test` with flotilla's own client;
//! - `llhls`: each viewer follows the video track's LL-HLS as a low-latency player does,
//!   on two connections: blocking playlist reloads (`_HLS_msn`/`_HLS_part`) on one, the
//!   next part (the preload hint, held by the node until it exists) on the other. Part
//!   latency is how long after the first viewer to get a part each viewer gets it: the
//!   delay a node under load adds to a part that is ready (1 s segments, 200 ms parts).
//!
//! - `webrtc`: each viewer plays `/test/whep` with flotilla's own WHEP client (str0m,
//!   decrypting and depacketizing, not decoding); the time from its offer to its first
//!   whole picture is its time to first frame.
//!
//! Reports viewers held to the end, p50/p99/max segment latency (HLS), bytes delivered,
//! process CPU and peak RSS (node and load generator together: a conservative figure).

#![allow(clippy::disallowed_methods)] // A benchmark measures real time.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config;
use crate::config::identity::NodeIdentity;
use crate::error::{Classified, Fault, NodeError};
use crate::node::Node;
use crate::rtmp::error::ClientError;
use flotilla_otp::rt::Runtime;

/// Why the benchmark, or one of its viewers, failed. The node under test is the peer: a
/// viewer's failure is counted, the benchmark's own ends it.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// This host refused a runtime, a port or a socket (local).
    #[error("{0}")]
    Host(std::io::Error),
    /// The benchmark's own node config did not load (local: it is built in).
    #[error("{0}")]
    Config(#[from] config::ConfigErrors),
    /// The node under test did not start.
    #[error("{0}")]
    Node(#[from] NodeError),
    /// The node's test stream never became ready (peer).
    #[error("the test stream never became ready")]
    NotReady,
    /// A viewer's connection failed (transport).
    #[error("{0}")]
    Connect(std::io::Error),
    /// An HTTP exchange failed (transport).
    #[error("{0}")]
    Http(#[from] hyper::Error),
    /// A request did not build (local).
    #[error("{0}")]
    Request(#[from] hyper::http::Error),
    /// The node answered a playlist or segment with another status (peer).
    #[error("{what} status {status}")]
    Status { what: &'static str, status: u16 },
    /// The node's playlist did not parse (peer).
    #[error("bad playlist")]
    BadPlaylist,
    /// The MPEG-TS stream stopped or stalled (peer).
    #[error("the stream stopped")]
    StreamStopped,
    /// An RTMP viewer failed.
    #[error("{0}")]
    Rtmp(#[from] ClientError),
    /// A WebRTC viewer failed (the node refused or the connection broke).
    #[error("{0}")]
    Webrtc(#[from] crate::webrtc::client::ClientError),
}

impl Classified for BenchError {
    fn fault(&self) -> Fault {
        match self {
            BenchError::Host(_) | BenchError::Config(_) | BenchError::Request(_) => Fault::Local,
            BenchError::Node(error) => error.fault(),
            BenchError::Connect(_) | BenchError::Http(_) => Fault::Transport,
            BenchError::NotReady
            | BenchError::Status { .. }
            | BenchError::BadPlaylist
            | BenchError::StreamStopped => Fault::Peer,
            BenchError::Rtmp(error) => error.fault(),
            BenchError::Webrtc(_) => Fault::Peer,
        }
    }
}

/// What to measure.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Protocol {
    Hls,
    Mpegts,
    Rtmp,
    Llhls,
    Webrtc,
}

#[derive(Default)]
struct Totals {
    segments: AtomicU64,
    bytes: AtomicU64,
    errors: AtomicU64,
    viewers_running: AtomicU64,
}

fn rss_bytes(pid: &str) -> u64 {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<u64>().ok())
        .unwrap_or(0)
        * 4096
}

/// User + system CPU seconds of process `pid` (`self` for this one).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks: u64 = fields.get(11).and_then(|t| t.parse().ok()).unwrap_or(0)
        + fields.get(12).and_then(|t| t.parse().ok()).unwrap_or(0);
    ticks as f64 / 100.0
}

/// Where the viewers go.
#[derive(Debug, Clone)]
pub struct Target {
    /// A running node (`HOST:HTTP_PORT`, `HOST:RTMP_PORT`, its pid for CPU and RSS);
    /// `None` starts one in this process.
    pub external: Option<(SocketAddr, u16, u32)>,
    /// RTMP players that start playing before the viewers and then never read: what a
    /// stalled player costs the others.
    pub stalled: usize,
}

/// How long a played frame counts as the player's start-up (the current GOP arrives
/// at once, ahead of real time) rather than its steady delay.
const RTMP_WARM_UP: Duration = Duration::from_secs(3);

/// Runs the benchmark and prints its report.
pub fn run(
    protocol: Protocol,
    viewers: usize,
    duration_s: u64,
    ramp_s: u64,
    target: Target,
) -> Result<(), BenchError> {
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(BenchError::Host)?;
    tokio.block_on(async move {
        let (http, rtmp_port, node_pid, stop, node_task) = match target.external {
            Some((http, rtmp_port, pid)) => (http, rtmp_port, pid.to_string(), None, None),
            None => {
                let http_port = free_port()?;
                let rtmp_port = free_port()?;
                let packaging = match protocol {
                    Protocol::Llhls => "segment_duration 1; segment_count 4; chunk_duration 200;",
                    _ => "segment_duration 2; segment_count 4;",
                };
                let text = format!(
                    "http 127.0.0.1:{http_port};\nrtmp 127.0.0.1:{rtmp_port};\nloglevel error;\n\
                     stream test {{ input test://; {packaging} }}\n"
                );
                let loaded = config::load_str("<bench>", &text)?;
                let identity = NodeIdentity::resolve(&loaded.config, Some("bench"), None);
                let node = Node::start(&loaded, identity, Runtime::production()).await?;
                let (stop, stopped) = tokio::sync::watch::channel(false);
                let task = tokio::spawn(node.run(stopped));
                let http: SocketAddr = ([127, 0, 0, 1], http_port).into();
                (http, rtmp_port, "self".to_string(), Some(stop), Some(task))
            }
        };
        wait_until_ready(http).await?;

        let totals = Arc::new(Totals::default());
        let latencies = Arc::new(std::sync::Mutex::new(Vec::<u32>::with_capacity(viewers * 16)));
        let parts = Arc::new(std::sync::Mutex::new(Vec::<PartSeen>::new()));
        let deadline_of_all = Instant::now() + Duration::from_secs(duration_s + ramp_s);
        let mut stalled = Vec::with_capacity(target.stalled);
        for _ in 0..target.stalled {
            stalled.push(tokio::spawn(stalled_rtmp_player(rtmp_port, deadline_of_all)));
        }
        let mut stalled_playing = 0;
        for player in stalled {
            stalled_playing += usize::from(player.await.unwrap_or(false));
        }
        if target.stalled > 0 {
            println!("stalled RTMP players playing and not reading: {stalled_playing} of {}", target.stalled);
        }
        let started = Instant::now();
        let cpu_start = cpu_seconds(&node_pid);
        let generator_cpu_start = cpu_seconds("self");
        let deadline = started + Duration::from_secs(duration_s);
        let mut tasks = Vec::with_capacity(viewers);
        for index in 0..viewers {
            let delay = Duration::from_millis(ramp_s * 1000 * index as u64 / viewers.max(1) as u64);
            let (totals, latencies, parts) = (totals.clone(), latencies.clone(), parts.clone());
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                totals.viewers_running.fetch_add(1, Ordering::Relaxed);
                let result = match protocol {
                    Protocol::Hls => hls_viewer(http, index, deadline, &totals, &latencies).await,
                    Protocol::Mpegts => mpegts_viewer(http, deadline, &totals).await,
                    Protocol::Rtmp => rtmp_viewer(rtmp_port, deadline, &totals, &latencies).await,
                    Protocol::Llhls => {
                        llhls_viewer(http, index, (started, deadline), &totals, &parts).await
                    }
                    Protocol::Webrtc => webrtc_viewer(http, deadline, &totals, &latencies).await,
                };
                totals.viewers_running.fetch_sub(1, Ordering::Relaxed);
                if result.is_err() {
                    totals.errors.fetch_add(1, Ordering::Relaxed);
                }
                result.is_ok()
            }));
        }
        let rss_before = rss_bytes(&node_pid);
        let mut peak_rss = 0;
        let mut peak_concurrent = 0;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            peak_rss = peak_rss.max(rss_bytes(&node_pid));
            peak_concurrent = peak_concurrent.max(totals.viewers_running.load(Ordering::Relaxed));
        }
        let mut completed = 0;
        for task in tasks {
            completed += usize::from(task.await.unwrap_or(false));
        }
        let elapsed = started.elapsed().as_secs_f64();
        let cpu = (cpu_seconds(&node_pid) - cpu_start) / elapsed * 100.0;
        let generator_cpu = (cpu_seconds("self") - generator_cpu_start) / elapsed * 100.0;
        let mut latencies = std::mem::take(&mut *latencies.lock().unwrap_or_else(|p| p.into_inner()));
        latencies.sort_unstable();
        let percentile = |p: f64| latencies.get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1))).copied().unwrap_or(0);
        println!(
            "protocol={protocol:?} viewers={viewers} duration={duration_s}s ramp={ramp_s}s peak_concurrent={peak_concurrent} held_to_the_end={completed} errors={}",
            totals.errors.load(Ordering::Relaxed)
        );
        println!(
            "segments={} delivered={:.1}MB throughput={:.1}Mbit/s",
            totals.segments.load(Ordering::Relaxed),
            totals.bytes.load(Ordering::Relaxed) as f64 / 1e6,
            totals.bytes.load(Ordering::Relaxed) as f64 * 8.0 / elapsed / 1e6
        );
        if !latencies.is_empty() && matches!(protocol, Protocol::Webrtc) {
            println!(
                "time_to_first_frame p50={:.1}ms p99={:.1}ms max={:.1}ms",
                percentile(0.50) as f64 / 1000.0,
                percentile(0.99) as f64 / 1000.0,
                *latencies.last().unwrap_or(&0) as f64 / 1000.0
            );
        } else if !latencies.is_empty() && matches!(protocol, Protocol::Rtmp) {
            println!(
                "behind_the_stream (per player, the most a frame came later than the player's most punctual one) p50={:.1}ms p99={:.1}ms max={:.1}ms",
                percentile(0.50) as f64 / 1000.0,
                percentile(0.99) as f64 / 1000.0,
                *latencies.last().unwrap_or(&0) as f64 / 1000.0
            );
        } else if !latencies.is_empty() {
            println!(
                "segment_latency p50={:.1}ms p99={:.1}ms max={:.1}ms",
                percentile(0.50) as f64 / 1000.0,
                percentile(0.99) as f64 / 1000.0,
                *latencies.last().unwrap_or(&0) as f64 / 1000.0
            );
        }
        let parts = std::mem::take(&mut *parts.lock().unwrap_or_else(|p| p.into_inner()));
        if !parts.is_empty() {
            report_part_latency(parts);
        }
        let whose = if node_pid == "self" { "node+generator" } else { "node" };
        println!(
            "{whose}: cpu={cpu:.0}% (100% = one core) peak_rss={:.0}MiB (before the viewers {:.0}MiB, {:.0}KiB per viewer); generator cpu={generator_cpu:.0}%",
            peak_rss as f64 / 1048576.0,
            rss_before as f64 / 1048576.0,
            peak_rss.saturating_sub(rss_before) as f64 / 1024.0 / viewers.max(1) as f64
        );
        if let (Some(stop), Some(task)) = (stop, node_task) {
            let _ = stop.send(true);
            let _ = task.await;
        }
        Ok(())
    })
}

fn free_port() -> Result<u16, BenchError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(BenchError::Host)
}

async fn wait_until_ready(http: SocketAddr) -> Result<(), BenchError> {
    for _ in 0..300 {
        if let Ok(mut connection) = Connection::open(http).await
            && let Ok((200, _)) = connection.get("/test/mono.m3u8").await
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(BenchError::NotReady)
}

/// One keep-alive HTTP/1.1 connection.
struct Connection {
    sender: hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
}

impl Connection {
    async fn open(at: SocketAddr) -> Result<Connection, BenchError> {
        let stream = TcpStream::connect(at).await.map_err(BenchError::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Connection { sender })
    }

    /// GET `path`: the status and the body (kept only when `keep`, else just counted).
    async fn get_body(&mut self, path: &str, keep: bool) -> Result<(u16, Bytes, u64), BenchError> {
        self.sender.ready().await?;
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, "bench")
            .header(hyper::header::USER_AGENT, "flotilla-bench")
            .body(Empty::new())?;
        let response = self.sender.send_request(request).await?;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        let mut kept = bytes::BytesMut::new();
        let mut length = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                length += data.len() as u64;
                if keep {
                    kept.extend_from_slice(&data);
                }
            }
        }
        Ok((status, kept.freeze(), length))
    }

    async fn get(&mut self, path: &str) -> Result<(u16, Bytes), BenchError> {
        self.get_body(path, true)
            .await
            .map(|(status, body, _)| (status, body))
    }
}

/// One WHEP viewer until `deadline`; its time to first frame (µs) goes to `latencies`.
async fn webrtc_viewer(
    http: SocketAddr,
    deadline: Instant,
    totals: &Totals,
    latencies: &std::sync::Mutex<Vec<u32>>,
) -> Result<(), BenchError> {
    let watched = crate::webrtc::client::watch(
        http,
        "/test/whep",
        deadline,
        crate::webrtc::client::Transport::Udp,
    )
    .await?;
    totals.bytes.fetch_add(watched.bytes, Ordering::Relaxed);
    totals
        .segments
        .fetch_add(watched.pictures, Ordering::Relaxed);
    let Some(first) = watched.first_picture else {
        return Err(BenchError::StreamStopped);
    };
    latencies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(first.as_micros().min(u128::from(u32::MAX)) as u32);
    Ok(())
}

async fn hls_viewer(
    http: SocketAddr,
    index: usize,
    deadline: Instant,
    totals: &Totals,
    latencies: &std::sync::Mutex<Vec<u32>>,
) -> Result<(), BenchError> {
    let mut connection = Connection::open(http).await?;
    let mut fetched: Option<u64> = None;
    let mut mine = Vec::new();
    // Each viewer has its own token, so it is its own session (and session actor).
    let playlist_path = format!("/test/tracks-v1a1/mono.m3u8?token=viewer{index}");
    while Instant::now() < deadline {
        let (status, body) = connection.get(&playlist_path).await?;
        if status != 200 {
            return Err(BenchError::Status {
                what: "playlist",
                status,
            });
        }
        let playlist =
            m3u8_rs::parse_media_playlist_res(&body).map_err(|_| BenchError::BadPlaylist)?;
        let first = playlist.media_sequence;
        for (offset, segment) in playlist.segments.iter().enumerate() {
            let sequence = first + offset as u64;
            // A new viewer starts at the live edge, like players do.
            let wanted = fetched.is_none_or(|last| sequence > last)
                && (fetched.is_some() || offset + 1 == playlist.segments.len());
            if !wanted {
                continue;
            }
            let started = Instant::now();
            let path = format!("/test/tracks-v1a1/{}?token=viewer{index}", segment.uri);
            let (status, _, length) = connection.get_body(&path, false).await?;
            if status != 200 {
                return Err(BenchError::Status {
                    what: "segment",
                    status,
                });
            }
            mine.push(started.elapsed().as_micros() as u32);
            totals.segments.fetch_add(1, Ordering::Relaxed);
            totals.bytes.fetch_add(length, Ordering::Relaxed);
            fetched = Some(sequence);
        }
        tokio::time::sleep(Duration::from_secs(playlist.target_duration.max(1))).await;
    }
    latencies
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .extend(mine);
    Ok(())
}

async fn mpegts_viewer(
    http: SocketAddr,
    deadline: Instant,
    totals: &Totals,
) -> Result<(), BenchError> {
    let mut connection = Connection::open(http).await?;
    connection.sender.ready().await?;
    let request = hyper::Request::get("/test/mpegts")
        .header(hyper::header::HOST, "bench")
        .body(Empty::new())?;
    let response = connection.sender.send_request(request).await?;
    let mut body = response.into_body();
    while Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), body.frame()).await {
            Ok(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    totals.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
            }
            _ => return Err(BenchError::StreamStopped),
        }
    }
    Ok(())
}

/// An RTMP player: counts what it receives, and reports how much later than its most
/// punctual frame (arrival less decode time) any frame after the warm-up arrived.
async fn rtmp_viewer(
    port: u16,
    deadline: Instant,
    totals: &Totals,
    behind: &std::sync::Mutex<Vec<u32>>,
) -> Result<(), BenchError> {
    let mut client =
        crate::rtmp::client::RtmpClient::connect(&format!("127.0.0.1:{port}"), "static").await?;
    client.play("test").await?;
    let started = Instant::now();
    let mut depacketizer = crate::rtmp::flv::Depacketizer::new();
    // Arrival less decode time, µs: the least and the most seen after the warm-up.
    let (mut punctual, mut latest) = (i64::MAX, i64::MIN);
    while Instant::now() < deadline {
        let frame = client.next_frame(&mut depacketizer).await?;
        totals
            .bytes
            .fetch_add(frame.data.len() as u64, Ordering::Relaxed);
        let arrived = started.elapsed();
        if arrived >= RTMP_WARM_UP {
            let offset = arrived.as_micros() as i64 - (frame.dts * 100 / 9) as i64;
            punctual = punctual.min(offset);
            latest = latest.max(offset);
        }
    }
    if latest >= punctual {
        behind
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((latest - punctual).min(u32::MAX as i64) as u32);
    }
    Ok(())
}

/// An RTMP player that starts playing and then never reads, holding its connection
/// until `deadline` (or until the node drops it); whether it got to play.
async fn stalled_rtmp_player(port: u16, deadline: Instant) -> bool {
    let Ok(mut client) =
        crate::rtmp::client::RtmpClient::connect(&format!("127.0.0.1:{port}"), "static").await
    else {
        return false;
    };
    if client.play("test").await.is_err() {
        return false;
    }
    // The player is held, not read, on a task of its own.
    tokio::spawn(async move {
        tokio::time::sleep_until(deadline.into()).await;
        drop(client);
    });
    true
}

/// One part one LL-HLS viewer received: which, and when (µs since the run started).
#[derive(Debug, Clone, Copy)]
struct PartSeen {
    msn: u64,
    part: u32,
    at_us: u64,
}

/// Prints how long after the first viewer to get each part the others got it.
fn report_part_latency(parts: Vec<PartSeen>) {
    let mut first: std::collections::HashMap<(u64, u32), u64> = Default::default();
    for seen in &parts {
        first
            .entry((seen.msn, seen.part))
            .and_modify(|at| *at = (*at).min(seen.at_us))
            .or_insert(seen.at_us);
    }
    let mut behind: Vec<u64> = parts
        .iter()
        .map(|seen| seen.at_us - first[&(seen.msn, seen.part)])
        .collect();
    behind.sort_unstable();
    let percentile = |p: f64| behind[((behind.len() as f64 * p) as usize).min(behind.len() - 1)];
    println!(
        "parts={} distinct={} part_latency_after_first_viewer p50={:.1}ms p99={:.1}ms max={:.1}ms",
        behind.len(),
        first.len(),
        percentile(0.50) as f64 / 1000.0,
        percentile(0.99) as f64 / 1000.0,
        *behind.last().unwrap_or(&0) as f64 / 1000.0
    );
}

/// The (msn, part) a playlist's preload hint names (`v1-MSN.PART.m4s`).
fn preload_hint(playlist: &[u8]) -> Option<(u64, u32)> {
    let text = std::str::from_utf8(playlist).ok()?;
    let line = text
        .lines()
        .find(|line| line.starts_with("#EXT-X-PRELOAD-HINT:"))?;
    let uri = line.split("URI=\"").nth(1)?.split(['"', '?']).next()?;
    let (msn, part) = uri
        .strip_prefix("v1-")?
        .strip_suffix(".m4s")?
        .split_once('.')?;
    Some((msn.parse().ok()?, part.parse().ok()?))
}

async fn llhls_viewer(
    http: SocketAddr,
    index: usize,
    (started, deadline): (Instant, Instant),
    totals: &Totals,
    parts: &std::sync::Mutex<Vec<PartSeen>>,
) -> Result<(), BenchError> {
    let token = format!("token=viewer{index}");
    let mut playlists = Connection::open(http).await?;
    let (status, body) = playlists.get(&format!("/test/v1.ll.m3u8?{token}")).await?;
    if status != 200 {
        return Err(BenchError::Status {
            what: "playlist",
            status,
        });
    }
    let (msn, part) = preload_hint(&body).ok_or(BenchError::BadPlaylist)?;
    let reloads = async {
        let (mut msn, mut part) = (msn, part);
        while Instant::now() < deadline {
            let path = format!("/test/v1.ll.m3u8?_HLS_msn={msn}&_HLS_part={part}&{token}");
            let (status, body) = playlists.get(&path).await?;
            if status != 200 {
                return Err(BenchError::Status {
                    what: "playlist",
                    status,
                });
            }
            (msn, part) = preload_hint(&body).ok_or(BenchError::BadPlaylist)?;
        }
        Ok(())
    };
    let fetches = async {
        let mut connection = Connection::open(http).await?;
        let (mut msn, mut part) = (msn, part);
        let mut mine = Vec::new();
        while Instant::now() < deadline {
            let path = format!("/test/v1-{msn}.{part}.m4s?{token}");
            let (status, _, length) = connection.get_body(&path, false).await?;
            match status {
                200 => {
                    mine.push(PartSeen {
                        msn,
                        part,
                        at_us: started.elapsed().as_micros() as u64,
                    });
                    totals.segments.fetch_add(1, Ordering::Relaxed);
                    totals.bytes.fetch_add(length, Ordering::Relaxed);
                    part += 1;
                }
                // The segment was sealed with fewer parts: the next one's first.
                404 => (msn, part) = (msn + 1, 0),
                status => {
                    return Err(BenchError::Status {
                        what: "part",
                        status,
                    });
                }
            }
        }
        parts.lock().unwrap_or_else(|p| p.into_inner()).extend(mine);
        Ok::<(), BenchError>(())
    };
    let (reloaded, fetched) = tokio::join!(reloads, fetches);
    reloaded.and(fetched)
}
