//! Benchmark: memory per idle supervised actor, and spawn time per actor.
//!
//! Starts N idle workers under one dynamic supervisor (the shape of `node/sessions` and
//! `node/streams`), each registered in the node registry with its counters, and reports
//! the resident-memory growth and the time per start.
//!
//! `cargo run --release -p flotilla-otp --example supervised_actors -- 100000`

#![allow(clippy::disallowed_methods)] // A benchmark measures real time.

use std::time::Instant;

use flotilla_otp::node::NodeContext;
use flotilla_otp::rt::Runtime;
use flotilla_otp::supervisor::{
    Intensity, Strategy, SupervisorMsg, SupervisorSpec, start_root, supervisor_child,
};
use flotilla_otp::worker::{Handle, Worker, worker_child};
use ractor::{ActorProcessingErr, ActorRef};

#[derive(Clone, Copy)]
struct Idle;

impl Worker for Idle {
    type Msg = ();
    type State = ();
    type Args = ();
    fn kind(&self) -> &'static str {
        "idle"
    }
    async fn init(&self, _me: &Handle<()>, _args: ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
    async fn handle(
        &self,
        _me: &Handle<()>,
        _message: (),
        _state: &mut (),
    ) -> Result<(), ActorProcessingErr> {
        Ok(())
    }
}

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000);
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    tokio.block_on(async move {
        let node = NodeContext::new("bench", Runtime::production());
        let mut dynamic = SupervisorSpec::dynamic(Intensity::default(), None);
        dynamic.max_children = count + 1;
        let spec = SupervisorSpec::new(Strategy::OneForOne, Intensity::default(), vec![supervisor_child("pool", dynamic)]);
        let (root, root_task) = start_root(&node, spec).await.unwrap();
        let pool_path = flotilla_otp::registry::ActorPath::parse("node/pool").unwrap();
        let pool: ActorRef<SupervisorMsg> = ActorRef::from(node.registry.get(&pool_path).unwrap().cell().unwrap());

        let rss_before = rss_bytes();
        let started = Instant::now();
        for index in 0..count {
            let spec = worker_child(format!("w{index}"), Idle, || ());
            ractor::call!(pool, SupervisorMsg::StartChild, spec).unwrap().unwrap();
        }
        let elapsed = started.elapsed();
        // Let allocator caches settle before reading memory.
        tokio::task::yield_now().await;
        let rss_after = rss_bytes();
        let per_actor = (rss_after.saturating_sub(rss_before)) as f64 / count as f64;
        println!(
            "actors={count} registry={} rss_before={:.1}MiB rss_after={:.1}MiB per_actor={:.0}B spawn={:.2}us/actor total={:.2}s",
            node.registry.len(),
            rss_before as f64 / 1048576.0,
            rss_after as f64 / 1048576.0,
            per_actor,
            elapsed.as_secs_f64() * 1e6 / count as f64,
            elapsed.as_secs_f64(),
        );
        let stop = Instant::now();
        root.stop(None);
        root_task.await.unwrap();
        println!("shutdown of the tree ({count} dynamic children, stopped concurrently): {:.2}s", stop.elapsed().as_secs_f64());
    });
}
