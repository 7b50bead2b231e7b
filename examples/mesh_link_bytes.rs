//! Benchmark: bytes per second on one mesh link, when nothing changes and with 1,000
//! streams. Two mesh services on loopback; B advertises N streams; A exchanges with B
//! every second (the default-ish fetch_timeout) for a while, and the QUIC connection's
//! own counters (both directions, all packets) give the bytes.
//!
//! `cargo run --release --example mesh_link_bytes -- 1000 20`

#![allow(clippy::disallowed_methods)] // A benchmark measures real time.

use std::sync::Arc;
use std::time::Duration;

use flotilla::mesh::auth::ClusterIdentity;
use flotilla::mesh::service::{MeshService, PeerTarget};
use flotilla::mesh::state::{Advertised, LocalState};
use flotilla::mesh::wire::{NodeAddress, NodeLoad, StreamEntry};
use flotilla_otp::rt::Runtime;

fn service(name: &str, streams: usize, key: &str) -> MeshService {
    let entries: Vec<StreamEntry> = (0..streams)
        .map(|i| StreamEntry {
            name: format!("camera-{i:05}"),
            alive: true,
            ondemand: false,
            clients: 0,
            bitrate_kbit: 2_000,
            epoch: 0,
            ingest: flotilla_cluster::mesh::view::IngestRole::None,
            relayed: false,
        })
        .collect();
    // Names in order (zero-padded), as the local state must give them.
    let entries = Advertised {
        generation: 1,
        streams: Arc::new(entries),
    };
    let local: LocalState = Arc::new(move || (NodeLoad::default(), entries.clone()));
    let me = NodeAddress {
        id: format!("{name}:80"),
        hostname: name.into(),
        mesh: format!("{name}:0"),
        public_url: format!("http://{name}"),
        rtmp_url: String::new(),
    };
    let identity = ClusterIdentity::derive(key).unwrap();
    MeshService::start(
        Runtime::production(),
        Arc::new(flotilla::mesh::net::SystemNet),
        "127.0.0.1:0".parse().unwrap(),
        me,
        flotilla::mesh::auth::MeshKeys::one(identity),
        local,
        Arc::default(),
    )
    .unwrap()
}

fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let streams: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let seconds: u64 = std::env::args()
        .nth(2)
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(async move {
        let key = "benchmark-cluster-key-0123456789";
        let a = service("a", 0, key);
        let b = service("b", streams, key);
        let b_key = b.local_addr().unwrap().to_string();
        a.view().write().unwrap().add_peer(&b_key, "", 1_000, 3_000);
        let target = PeerTarget {
            key: b_key,
            address: b.local_addr().unwrap(),
            identity: ClusterIdentity::derive(key).unwrap(),
        };
        let connection = a.connect(&target).await.unwrap();
        // The first exchange carries everything (and the handshake's tail settles over the
        // next ones); measure the steady state after a warm-up.
        a.call(&target, &connection).await.unwrap();
        let first = connection.stats();
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(300)).await;
            a.call(&target, &connection).await.unwrap();
        }
        let warm = connection.stats();
        let warm_bytes = warm.udp_tx.bytes + warm.udp_rx.bytes;
        let first_bytes = first.udp_tx.bytes + first.udp_rx.bytes;
        let mut ticks = tokio::time::interval(Duration::from_secs(1));
        ticks.tick().await;
        for _ in 0..seconds {
            ticks.tick().await;
            a.call(&target, &connection).await.unwrap();
        }
        let stats = connection.stats();
        let steady = stats.udp_tx.bytes + stats.udp_rx.bytes - warm_bytes;
        println!(
            "streams={streams} first_exchange_bytes={first_bytes} steady_bytes_per_second={:.0} (one exchange per second, both directions, {seconds} s)",
            steady as f64 / seconds as f64
        );
    });
}
