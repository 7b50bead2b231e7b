//! Node statistics: what `/streamer/api/v3/config/stats` reports and what peers and
//! balancers will consume (clients, streams, bitrates, CPU, memory, bandwidth usage).
//!
//! Rates need two samples, so a sampler task refreshes a shared snapshot every
//! [`SAMPLE_PERIOD`]; API requests read the snapshot and never compute or wait.

use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use flotilla_otp::rt::Runtime;
use serde::Serialize;
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

use crate::media::directory::Directory;

/// How often rates and host usage are sampled.
pub const SAMPLE_PERIOD: Duration = Duration::from_secs(2);

/// A stream is alive while its last frame is at most this old (Flussonic: 12 s).
pub const ALIVE_WITHIN_MS: u64 = 12_000;

/// The node's statistics, as of the last sample.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct NodeStats {
    pub hostname: String,
    pub server_version: &'static str,
    /// Unix ms when the node started.
    pub started_at: u64,
    /// Seconds since the node started.
    pub uptime: u64,
    pub total_clients: u64,
    pub total_streams: u64,
    pub online_streams: u64,
    pub input_kbit: u64,
    pub output_kbit: u64,
    /// Host CPU usage, percent.
    pub cpu_usage: f32,
    /// Host memory usage, percent.
    pub memory_usage: f32,
    /// Output bitrate against `total_bandwidth`, percent (0 without `total_bandwidth`).
    pub bandwidth_usage: f32,
    /// `total_bandwidth` in bit/s (0 when not configured).
    pub total_bandwidth: u64,
    /// flotilla: bytes received by every stream since the node started (what streams
    /// that stopped received included), as of the last sample.
    pub bytes_in: u64,
    /// flotilla: bytes sent to viewers since the node started, as of the last sample.
    pub bytes_out: u64,
}

/// The shared snapshot and what the sampler needs to refresh it.
#[derive(Debug, Clone)]
pub struct StatsBoard {
    snapshot: Arc<RwLock<NodeStats>>,
    connections: Arc<OpenConnections>,
}

/// Client connections open now, by listener kind (TLS ones included), kept by the
/// listeners themselves: a connection counts from accept until it closes.
#[derive(Debug, Default)]
pub struct OpenConnections {
    pub http: std::sync::atomic::AtomicU64,
    pub rtmp: std::sync::atomic::AtomicU64,
}

/// Holds one open connection in its counter until dropped.
#[derive(Debug)]
pub struct OpenConnection(
    Arc<OpenConnections>,
    fn(&OpenConnections) -> &std::sync::atomic::AtomicU64,
);

impl OpenConnection {
    /// Counts a connection in the counter `which` picks.
    pub fn open(
        connections: &Arc<OpenConnections>,
        which: fn(&OpenConnections) -> &std::sync::atomic::AtomicU64,
    ) -> OpenConnection {
        which(connections).fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        OpenConnection(connections.clone(), which)
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        (self.1)(&self.0).fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl StatsBoard {
    /// The node's open-connection counters (the listeners hold them).
    pub fn connections(&self) -> &Arc<OpenConnections> {
        &self.connections
    }

    pub fn snapshot(&self) -> NodeStats {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// (total streams, online streams, clients, input kbit/s, output kbit/s) from the streams'
/// counters and the bytes sent since the last sample.
pub fn compute(
    directory: &Directory,
    now_ms: u64,
    bytes_out_delta: u64,
    elapsed_ms: u64,
) -> (u64, u64, u64, u64, u64) {
    let streams = directory.all();
    let online = streams
        .iter()
        .filter(|s| s.is_alive(now_ms, ALIVE_WITHIN_MS))
        .count() as u64;
    let clients = streams
        .iter()
        .map(|s| s.counters.clients.load(Ordering::Relaxed))
        .sum();
    let input_bps: u64 = streams
        .iter()
        .filter(|s| s.is_alive(now_ms, ALIVE_WITHIN_MS))
        .map(|s| s.counters.input_bitrate.load(Ordering::Relaxed))
        .sum();
    let output_bps = (bytes_out_delta * 8 * 1000)
        .checked_div(elapsed_ms)
        .unwrap_or(0);
    (
        streams.len() as u64,
        online,
        clients,
        input_bps / 1000,
        output_bps / 1000,
    )
}

/// Starts the sampler; the returned board is what the API reads.
pub fn start(
    runtime: &Runtime,
    directory: Directory,
    hostname: String,
    total_bandwidth_bps: u64,
) -> StatsBoard {
    start_with(runtime, directory, hostname, total_bandwidth_bps, true)
}

/// [`start`], choosing whether the host's CPU and memory are read (`sample_host`): a
/// simulated node shares its host with its whole cluster, so it reports 0 instead of a
/// figure that would make runs differ.
pub fn start_with(
    runtime: &Runtime,
    directory: Directory,
    hostname: String,
    total_bandwidth_bps: u64,
    sample_host: bool,
) -> StatsBoard {
    let started_at = runtime.wall_clock_ms();
    let board = StatsBoard {
        connections: Arc::default(),
        snapshot: Arc::new(RwLock::new(NodeStats {
            hostname: hostname.clone(),
            server_version: env!("CARGO_PKG_VERSION"),
            started_at,
            total_bandwidth: total_bandwidth_bps,
            ..NodeStats::default()
        })),
    };
    let target = board.snapshot.clone();
    let sampler_runtime = runtime.clone();
    runtime.spawn("stats-sampler", async move {
        let specifics = RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing().with_usage())
            .with_memory(MemoryRefreshKind::nothing().with_ram());
        let mut system = match sample_host.then(|| System::new_with_specifics(specifics)) {
            None => None,
            Some(Ok(system)) => Some(system),
            Some(Err(error)) => {
                tracing::warn!(%error, "host CPU and memory usage cannot be read; reporting 0");
                None
            }
        };
        let mut last_bytes_out = 0u64;
        let mut last_bytes_in = 0u64;
        let mut total_in = 0u64;
        let mut total_out = 0u64;
        let mut last_ms = sampler_runtime.wall_clock_ms();
        let mut ticks = tokio::time::interval(SAMPLE_PERIOD);
        loop {
            ticks.tick().await;
            let (cpu_usage, memory_usage) = system.as_mut().map_or((0.0, 0.0), host_usage);
            let now_ms = sampler_runtime.wall_clock_ms();
            let bytes_out: u64 = directory
                .all()
                .iter()
                .map(|s| s.counters.bytes_out.load(Ordering::Relaxed))
                .sum();
            let (total, online, clients, input_kbit, output_kbit) = compute(
                &directory,
                now_ms,
                bytes_out.saturating_sub(last_bytes_out),
                now_ms.saturating_sub(last_ms),
            );
            let bytes_in: u64 = directory
                .all()
                .iter()
                .map(|s| s.counters.bytes_in.load(Ordering::Relaxed))
                .sum();
            // A stream that stopped takes its counts along: only growth is added.
            total_in = total_in.saturating_add(bytes_in.saturating_sub(last_bytes_in));
            total_out = total_out.saturating_add(bytes_out.saturating_sub(last_bytes_out));
            last_bytes_in = bytes_in;
            last_bytes_out = bytes_out;
            last_ms = now_ms;
            let bandwidth_usage = if total_bandwidth_bps == 0 {
                0.0
            } else {
                (output_kbit as f64 * 1000.0 * 100.0 / total_bandwidth_bps as f64) as f32
            };
            let mut snapshot = target.write().unwrap_or_else(|p| p.into_inner());
            snapshot.uptime = now_ms.saturating_sub(started_at) / 1000;
            snapshot.total_streams = total;
            snapshot.online_streams = online;
            snapshot.total_clients = clients;
            snapshot.input_kbit = input_kbit;
            snapshot.output_kbit = output_kbit;
            snapshot.cpu_usage = cpu_usage;
            snapshot.memory_usage = memory_usage;
            snapshot.bandwidth_usage = bandwidth_usage;
            snapshot.bytes_in = total_in;
            snapshot.bytes_out = total_out;
        }
    });
    board
}

/// (CPU %, memory %) of the host, refreshed now.
fn host_usage(system: &mut System) -> (f32, f32) {
    system.refresh_cpu_usage();
    system.refresh_memory();
    let memory = if system.total_memory() == 0 {
        0.0
    } else {
        (system.used_memory() as f64 * 100.0 / system.total_memory() as f64) as f32
    };
    (system.global_cpu_usage(), memory)
}
