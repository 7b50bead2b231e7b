//! The balancer actor in a real tree: it publishes fresh tables, says which servers are
//! up, and a restarted incarnation publishes again.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::choose::Server;
use super::{BalancerBoard, BalancerIo, LoadTable};
use crate::ingest::IngestPlan;
use crate::tree::{BalancerPlan, NodeIo, NodePlan, node_spec};
use flotilla_otp::node::NodeContext;
use flotilla_otp::registry::ActorPath;
use flotilla_otp::rt::Runtime;
use flotilla_otp::supervisor::start_root;

/// Two servers; `b_up` says whether the second one is up. Counts reads.
#[derive(Default)]
struct Flipping {
    b_up: AtomicBool,
    reads: AtomicU64,
}

impl BalancerIo for Flipping {
    fn load(&self, name: &str, now_ms: u64) -> Option<LoadTable> {
        (name == "lb").then_some(())?;
        self.reads.fetch_add(1, Ordering::Relaxed);
        let server = |name: &str, up: bool| Server {
            name: name.into(),
            up,
            max_bitrate_kbit: None,
            countries: Arc::default(),
            countries_default: false,
            clients: 0,
            output_kbit: 0,
            online_streams: 0,
            total_bandwidth_kbit: 0,
        };
        Some(LoadTable {
            taken_ms: now_ms,
            fresh_until_ms: now_ms,
            servers: vec![
                server("a", true),
                server("b", self.b_up.load(Ordering::Relaxed)),
            ],
            versions: vec![(0, 0), (0, 0)],
            urls: vec![None, Some("http://b".into())],
        })
    }
}

async fn advance(ms: u64) {
    for _ in 0..ms / 10 {
        tokio::task::yield_now().await;
        tokio::time::advance(Duration::from_millis(10)).await;
    }
    tokio::task::yield_now().await;
}

#[tokio::test(start_paused = true)]
async fn the_actor_keeps_a_fresh_table_on_the_board_across_restarts() {
    let runtime = Runtime::deterministic(3, 1_000_000);
    let node = NodeContext::new("a", runtime.clone());
    let io = Arc::new(Flipping::default());
    let board = BalancerBoard::default();
    let plan = NodePlan {
        balancers: vec![BalancerPlan {
            name: "lb".into(),
            mode: "clients".into(),
            servers: vec!["a".into(), "b".into()],
            refresh_ms: 250,
        }],
        ingest: IngestPlan::default(),
        ..NodePlan::default()
    };
    let node_io = NodeIo {
        balancer: io.clone(),
        balancer_board: board.clone(),
        ..NodeIo::none()
    };
    let (_root, _) = start_root(&node, node_spec(Arc::new(RwLock::new(plan)), node_io))
        .await
        .unwrap();
    advance(100).await;
    let table = board.table("lb").expect("published at start");
    assert!(table.fresh(runtime.wall_clock_ms()));
    assert!(!table.servers[1].up);
    let path = ActorPath::parse("node/balancers/lb").unwrap();
    let summary = |node: &NodeContext| {
        node.registry
            .list(0)
            .into_iter()
            .find(|info| info.path == path)
            .map(|info| info.summary)
            .unwrap()
    };
    assert!(
        summary(&node).contains("1/2 server(s) up"),
        "{}",
        summary(&node)
    );

    // b comes up: the next tick shows it.
    io.b_up.store(true, Ordering::Relaxed);
    advance(300).await;
    let table = board.table("lb").unwrap();
    assert!(table.servers[1].up);
    assert!(table.fresh(runtime.wall_clock_ms()));
    assert!(summary(&node).contains("2/2 server(s) up"));

    // A failed incarnation is restarted and publishes again; the table stays fresh.
    let entry = node.registry.get(&path).unwrap();
    assert!(entry.inject_failure("test".into()));
    let reads_before = io.reads.load(Ordering::Relaxed);
    advance(600).await;
    assert_eq!(entry.restarts(), 1);
    assert!(io.reads.load(Ordering::Relaxed) > reads_before);
    assert!(board.table("lb").unwrap().fresh(runtime.wall_clock_ms()));
}
