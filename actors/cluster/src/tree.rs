//! The node's supervision tree, built from a plan derived from the config.
//!
//! ```text
//! node                      one_for_one, 3 restarts / 5 s (top levels stay strict)
//! ├── mesh                  one_for_one
//! │   ├── peers             simple_one_for_one, rebuilt from the plan's peers
//! │   │   └── <peer>        peer link
//! │   └── sources           simple_one_for_one, rebuilt from the plan's sources
//! │       └── <source>      source link (another cluster this node restreams)
//! ├── streams               simple_one_for_one, rebuilt from the plan's streams
//! │   └── <stream name>     stream actor (names may contain `/`)
//! ├── sessions              simple_one_for_one, one child per viewer session
//! ├── balancers             simple_one_for_one, rebuilt from the plan's balancers
//! │   └── <balancer name>   balancer instance
//! └── ingest                the cluster_ingest coordinator
//! ```
//!
//! The root is one_for_one: the subsystems find each other through the registry and
//! shared state, not through pids captured at start, so one can restart alone.
//! Dynamic supervisors read their children from the plan at every start: a restarted
//! `streams` supervisor comes back with exactly the streams the node should run.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::balancer::{BalancerActor, BalancerBoard, BalancerIo, NoBalancerIo};
use crate::ingest::board::IngestBoard;
use crate::ingest::{IngestCoordinator, IngestIo, IngestPlan, NoIngestIo};
use crate::mesh::PeerLink;
use crate::source::SourceLink;
use crate::stream::{StreamActor, StreamMedia};
use flotilla_otp::supervisor::{
    Backoff, ChildSource, ChildSpec, Intensity, Strategy, SupervisorSpec, supervisor_child,
};
use flotilla_otp::worker::worker_child;

/// A stream the node should run, as the tree needs to know it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamPlan {
    /// The stream's name (may contain `/`).
    pub name: String,
    /// Started by the first viewer rather than always running.
    pub ondemand: bool,
    /// Inputs, in priority order.
    pub inputs: Vec<InputPlan>,
    /// Captured by exactly one node of the cluster.
    pub cluster_ingest: bool,
    /// cluster_ingest: the preferred node (`capture_at=HOST`, as written).
    pub capture_at: Option<String>,
    /// No frames for this long means the source is lost.
    pub source_timeout_ms: u64,
    /// HLS segment duration.
    pub segment_duration_ms: u64,
    /// Segments advertised in the HLS window.
    pub segment_count: usize,
    /// LL-HLS part duration: the longest CMAF part.
    pub part_duration_ms: u64,
    /// On-demand: how long the stream outlives its last viewer (`None`: forever).
    pub clients_timeout_ms: Option<u64>,
    /// On-demand: failed starts before the stream waits for the next viewer (`None`:
    /// retry forever).
    pub retry_limit: Option<u32>,
    /// Not from the config (a template's published stream, a relay): its shared state
    /// goes with its actor, even when the actor fails.
    pub ephemeral: bool,
    /// A copy of a peer's stream for this node's RTMP players: never advertised to the
    /// cluster, so no node relays or redirects to a copy, only to the stream's owner.
    pub relay: bool,
}

/// One input of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputPlan {
    /// Its URL (`tshttp://…`, `udp://…`, `file://…`, `test://`, `publish://`).
    pub url: String,
    /// Overrides the stream's `source_timeout_ms` for this input.
    pub source_timeout_ms: Option<u64>,
    /// `priority=N`: lower runs first; inputs without one follow, in config order.
    pub priority: Option<u32>,
    /// Options the node's media plane reads, as configured (`transport=udp`).
    pub options: Vec<(String, String)>,
}

/// Restart backoff of stream actors: a failing camera is retried after 1 s, then 2, 4 …
/// up to 30 s; a stream that ran for 10 s starts again from 1 s. The backoff is for
/// sources that fail at once (a refused connection); a run of 10 s reached its source,
/// or spent the default `source_timeout` waiting for it, which spaces attempts enough by
/// itself. A longer reset kept the delay an earlier outage had grown: a camera that came
/// back, ran for 13 s and dropped again for 4 s was retried 16 s after the drop
/// (simulator seed 3098, with `reset_after` 60 s).
pub const STREAM_BACKOFF: Backoff = Backoff {
    initial: Duration::from_secs(1),
    max: Duration::from_secs(30),
    reset_after: Duration::from_secs(10),
};

/// A balancer instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalancerPlan {
    /// Its name (the first URL segment).
    pub name: String,
    /// Its mode.
    pub mode: String,
    /// Its servers.
    pub servers: Vec<String>,
    /// How often its load table is refreshed, ms.
    pub refresh_ms: u64,
}

/// What the tree runs: derived from the config by the node crate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodePlan {
    /// Other nodes (this node's own `peer` entry already removed).
    pub peers: Vec<String>,
    /// Other clusters this node restreams, by their `source` line's address.
    pub sources: Vec<String>,
    /// Streams of this node's config.
    pub streams: Vec<StreamPlan>,
    /// Balancer instances.
    pub balancers: Vec<BalancerPlan>,
    /// cluster_ingest settings.
    pub ingest: IngestPlan,
    /// Bumped by each config reload: readers that keep a copy know it is old.
    pub revision: u64,
}

/// The plan as dynamic supervisors read it at each start; replace it to change the tree.
pub type SharedPlan = Arc<RwLock<NodePlan>>;

/// The child spec of a stream actor: how the `streams` supervisor and the ingest
/// coordinator both start one.
pub fn stream_child(stream: StreamPlan, media: Arc<dyn StreamMedia>) -> ChildSpec {
    let id = stream.name.clone();
    let actor = StreamActor { media };
    worker_child(id, actor, move || stream.clone()).backoff(STREAM_BACKOFF)
}

/// The child spec of the link to peer `key`: how the `peers` supervisor and a reload
/// both start one.
pub fn peer_child(key: String, io: Arc<dyn crate::mesh::PeerIo>) -> ChildSpec {
    let args = key.clone();
    worker_child(key, PeerLink { io }, move || args.clone())
}

/// The child spec of a balancer instance: how the `balancers` supervisor and a reload
/// both start one.
pub fn balancer_child(
    balancer: BalancerPlan,
    io: Arc<dyn BalancerIo>,
    board: BalancerBoard,
) -> ChildSpec {
    let id = balancer.name.clone();
    let actor = BalancerActor { io, board };
    worker_child(id, actor, move || balancer.clone())
}

/// Restart intensity of the upper levels: low, because restarts multiply down the tree.
pub const UPPER_INTENSITY: Intensity = Intensity {
    max_restarts: 3,
    period: Duration::from_secs(5),
};

/// Restart intensity of supervisors of many independent leaves (streams, sessions):
/// one misbehaving stream must not take its siblings down with it.
pub const LEAF_INTENSITY: Intensity = Intensity {
    max_restarts: 50,
    period: Duration::from_secs(10),
};

fn read(plan: &SharedPlan) -> NodePlan {
    plan.read()
        .unwrap_or_else(|poison| poison.into_inner())
        .clone()
}

/// What the tree's leaves use to reach the world, supplied by the node.
#[derive(Clone)]
pub struct NodeIo {
    /// The media plane (stream actors).
    pub media: Arc<dyn StreamMedia>,
    /// The mesh (peer links).
    pub peers: Arc<dyn crate::mesh::PeerIo>,
    /// Other clusters (source links).
    pub sources: Arc<dyn crate::source::SourceIo>,
    /// What the ingest coordinator reads.
    pub ingest: Arc<dyn IngestIo>,
    /// Where the ingest coordinator publishes; cluster_ingest streams run here when the
    /// board says this node captures them.
    pub board: IngestBoard,
    /// What balancers read.
    pub balancer: Arc<dyn BalancerIo>,
    /// Where balancers publish their load tables for the request path.
    pub balancer_board: BalancerBoard,
}

impl NodeIo {
    /// No media, no mesh: for tests of the tree itself.
    pub fn none() -> NodeIo {
        NodeIo {
            media: Arc::new(crate::stream::NoMedia),
            peers: Arc::new(crate::mesh::NoMesh),
            sources: Arc::new(crate::source::NoSources),
            ingest: Arc::new(NoIngestIo),
            board: IngestBoard::default(),
            balancer: Arc::new(NoBalancerIo),
            balancer_board: BalancerBoard::default(),
        }
    }
}

/// The root supervisor's specification; `io` is how the leaves reach the world.
pub fn node_spec(plan: SharedPlan, io: NodeIo) -> SupervisorSpec {
    let media = io.media.clone();
    let peer_io = io.peers.clone();
    let peer_plan = plan.clone();
    let peers: ChildSource = Arc::new(move || {
        read(&peer_plan)
            .peers
            .into_iter()
            .map(|peer| peer_child(peer, peer_io.clone()))
            .collect()
    });
    let source_io = io.sources.clone();
    let source_plan = plan.clone();
    let sources: ChildSource = Arc::new(move || {
        read(&source_plan)
            .sources
            .into_iter()
            .map(|source| {
                let args_source = source.clone();
                let link = SourceLink {
                    io: source_io.clone(),
                };
                worker_child(source, link, move || args_source.clone())
            })
            .collect()
    });
    let stream_plan = plan.clone();
    let board = io.board.clone();
    let streams: ChildSource = Arc::new(move || {
        read(&stream_plan)
            .streams
            .into_iter()
            // A cluster_ingest stream runs here only while this node captures it.
            .filter(|stream| !stream.cluster_ingest || board.captures(&stream.name))
            .map(|stream| stream_child(stream, media.clone()))
            .collect()
    });
    let balancer_plan = plan.clone();
    let (balancer_io, balancer_board) = (io.balancer.clone(), io.balancer_board.clone());
    let balancers: ChildSource = Arc::new(move || {
        read(&balancer_plan)
            .balancers
            .into_iter()
            .map(|balancer| balancer_child(balancer, balancer_io.clone(), balancer_board.clone()))
            .collect()
    });
    let ingest_plan = plan.clone();
    let coordinator = IngestCoordinator {
        io: io.ingest.clone(),
        media: io.media.clone(),
        board: io.board.clone(),
        plan: plan.clone(),
    };
    let mesh = SupervisorSpec::new(
        Strategy::OneForOne,
        UPPER_INTENSITY,
        vec![
            supervisor_child(
                "peers",
                SupervisorSpec::dynamic(LEAF_INTENSITY, Some(peers)),
            ),
            supervisor_child(
                "sources",
                SupervisorSpec::dynamic(LEAF_INTENSITY, Some(sources)),
            ),
        ],
    );
    SupervisorSpec::new(
        Strategy::OneForOne,
        UPPER_INTENSITY,
        vec![
            supervisor_child("mesh", mesh),
            supervisor_child(
                "streams",
                SupervisorSpec::dynamic(LEAF_INTENSITY, Some(streams)),
            ),
            supervisor_child("sessions", SupervisorSpec::dynamic(LEAF_INTENSITY, None)),
            supervisor_child(
                "balancers",
                SupervisorSpec::dynamic(UPPER_INTENSITY, Some(balancers)),
            ),
            worker_child("ingest", coordinator, move || read(&ingest_plan)),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_otp::node::NodeContext;
    use flotilla_otp::registry::ActorPath;
    use flotilla_otp::rt::Runtime;
    use flotilla_otp::supervisor::start_root;

    fn plan() -> NodePlan {
        NodePlan {
            peers: vec!["b.lan:8080".into()],
            sources: vec!["origin.lan:80/live".into()],
            streams: vec![
                StreamPlan {
                    name: "cam01".into(),
                    ondemand: false,
                    inputs: vec![InputPlan {
                        url: "tshttp://10.0.0.1/cam01".into(),
                        source_timeout_ms: None,
                        priority: None,
                        options: Vec::new(),
                    }],
                    cluster_ingest: true,
                    capture_at: None,
                    source_timeout_ms: 10_000,
                    segment_duration_ms: 5_000,
                    segment_count: 4,
                    part_duration_ms: 1_000,
                    clients_timeout_ms: Some(30_000),
                    retry_limit: None,
                    ephemeral: false,
                    relay: false,
                },
                StreamPlan {
                    name: "live/news".into(),
                    ondemand: true,
                    inputs: vec![],
                    cluster_ingest: false,
                    capture_at: None,
                    source_timeout_ms: 10_000,
                    segment_duration_ms: 5_000,
                    segment_count: 4,
                    part_duration_ms: 1_000,
                    clients_timeout_ms: Some(30_000),
                    retry_limit: None,
                    ephemeral: false,
                    relay: false,
                },
            ],
            balancers: vec![BalancerPlan {
                name: "global".into(),
                mode: "clients".into(),
                servers: vec!["a".into(), "b".into()],
                refresh_ms: 250,
            }],
            ingest: IngestPlan::default(),
            revision: 0,
        }
    }

    /// A node running the tree of [`plan`].
    async fn started() -> NodeContext {
        let node = NodeContext::new("a", Runtime::deterministic(1, 0));
        start_root(
            &node,
            node_spec(Arc::new(RwLock::new(plan())), NodeIo::none()),
        )
        .await
        .unwrap();
        node
    }

    /// Whether `cam01` runs under the `streams` supervisor, after up to a second of
    /// simulated time for it to.
    async fn cam01_runs(node: &NodeContext) -> bool {
        let cam = ActorPath::parse("node/streams/cam01").unwrap();
        let running = || node.registry.get(&cam).is_some_and(|e| e.cell().is_some());
        for _ in 0..100 {
            if running() {
                break;
            }
            tokio::task::yield_now().await;
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        running()
    }

    #[tokio::test(start_paused = true)]
    async fn the_tree_mirrors_the_plan() {
        let node = started().await;
        // The cluster_ingest stream is started by the coordinator (alone, it owns it).
        assert!(cam01_runs(&node).await);
        let paths: Vec<String> = node
            .registry
            .list(0)
            .iter()
            .map(|i| format!("{} {}", i.path, i.kind))
            .collect();
        assert_eq!(
            paths,
            vec![
                "node supervisor",
                "node/balancers supervisor",
                "node/balancers/global balancer",
                "node/ingest ingest_coordinator",
                "node/mesh supervisor",
                "node/mesh/peers supervisor",
                "node/mesh/peers/b.lan:8080 peer_link",
                "node/mesh/sources supervisor",
                "node/mesh/sources/origin.lan:80/live source_link",
                "node/sessions supervisor",
                "node/streams supervisor",
                "node/streams/cam01 stream",
                "node/streams/live/news stream",
            ]
        );
        let cam = node
            .registry
            .get(&ActorPath::parse("node/streams/cam01").unwrap())
            .unwrap();
        assert_eq!(cam.info(0).summary, "static, 1 input(s), cluster_ingest");
    }

    #[tokio::test(start_paused = true)]
    async fn a_restarted_streams_supervisor_rebuilds_from_the_current_plan() {
        let node = NodeContext::new("a", Runtime::deterministic(1, 0));
        let shared = Arc::new(RwLock::new(plan()));
        let (_root, _) = start_root(&node, node_spec(shared.clone(), NodeIo::none()))
            .await
            .unwrap();
        shared.write().unwrap().streams.remove(0);
        let streams = node
            .registry
            .get(&ActorPath::parse("node/streams").unwrap())
            .unwrap();
        assert!(streams.inject_failure("test".into()));
        for _ in 0..1_000 {
            if streams.restarts() == 1 && streams.cell().is_some() {
                break;
            }
            tokio::task::yield_now().await;
            tokio::time::advance(Duration::from_millis(1)).await;
        }
        assert_eq!(streams.restarts(), 1);
        let names: Vec<String> = node
            .registry
            .list(0)
            .into_iter()
            .filter(|i| i.kind == "stream")
            .map(|i| i.path.to_string())
            .collect();
        assert_eq!(names, vec!["node/streams/live/news"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_capture_removed_behind_the_coordinators_back_is_started_again() {
        let node = started().await;
        assert!(cam01_runs(&node).await);
        // Ticks that change nothing skip the comparison with the supervisor's children;
        // a child removed without the coordinator must still be noticed.
        for _ in 0..20 {
            tokio::task::yield_now().await;
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        let streams = flotilla_otp::supervisor::supervisor_at(
            &node,
            &ActorPath::parse("node/streams").unwrap(),
        )
        .unwrap();
        let removed = ractor::call!(
            streams,
            flotilla_otp::supervisor::SupervisorMsg::TerminateChild,
            "cam01".into()
        );
        assert!(matches!(removed, Ok(Ok(()))));
        let cam = ActorPath::parse("node/streams/cam01").unwrap();
        assert!(node.registry.get(&cam).is_none());
        assert!(
            cam01_runs(&node).await,
            "the coordinator did not start cam01 again"
        );
    }
}

#[cfg(test)]
mod ingest_tests {
    //! The coordinator as a shell around the book: real supervisors, paused time.

    use super::*;
    use crate::ingest::board::IngestBoard;
    use crate::mesh::view::IngestRole;
    use flotilla_otp::node::NodeContext;
    use flotilla_otp::registry::ActorPath;
    use flotilla_otp::rt::Runtime;
    use flotilla_otp::supervisor::{BoxFuture, start_root};

    /// Media whose sources are all unreachable: every run fails at once.
    struct Unreachable;

    impl crate::stream::StreamMedia for Unreachable {
        fn run(&self, _stream: StreamPlan) -> BoxFuture<crate::stream::StreamEnd> {
            Box::pin(async { crate::stream::StreamEnd::Failed("connection refused".to_string()) })
        }
        fn remove(&self, _stream: &StreamPlan) {}
    }

    fn camera() -> NodePlan {
        NodePlan {
            streams: vec![StreamPlan {
                name: "cam".into(),
                ondemand: false,
                inputs: vec![],
                cluster_ingest: true,
                capture_at: None,
                source_timeout_ms: 10_000,
                segment_duration_ms: 1_000,
                segment_count: 4,
                part_duration_ms: 1_000,
                clients_timeout_ms: None,
                retry_limit: None,
                ephemeral: false,
                relay: false,
            }],
            ingest: IngestPlan {
                me: "a".into(),
                tick_ms: 100,
                ..IngestPlan::default()
            },
            ..NodePlan::default()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_capture_that_keeps_failing_is_marked_failed_instead_of_restarting_forever() {
        let node = NodeContext::new("a", Runtime::deterministic(1, 0));
        let board = IngestBoard::default();
        let io = NodeIo {
            media: Arc::new(Unreachable),
            board: board.clone(),
            ..NodeIo::none()
        };
        let (_root, _) = start_root(&node, node_spec(Arc::new(RwLock::new(camera())), io))
            .await
            .unwrap();
        let cam = ActorPath::parse("node/streams/cam").unwrap();
        let mut restarts_seen = 0;
        for _ in 0..600 {
            if board.local("cam").map(|p| p.role) == Some(IngestRole::Failed) {
                break;
            }
            restarts_seen = node
                .registry
                .get(&cam)
                .map_or(restarts_seen, |e| e.restarts());
            tokio::task::yield_now().await;
            tokio::time::advance(Duration::from_millis(100)).await;
        }
        assert_eq!(
            board.local("cam").map(|p| p.role),
            Some(IngestRole::Failed),
            "marked failed here"
        );
        // Sampled between ticks, the last restart before the mark may go unseen here.
        let limit = crate::ingest::book::MAX_CAPTURE_RESTARTS as u64;
        assert!(
            (limit - 1..=limit + 1).contains(&restarts_seen),
            "a bounded number of restarts: {restarts_seen}"
        );
        // The capture is gone from the tree, and not restarted while the mark holds.
        for _ in 0..50 {
            tokio::task::yield_now().await;
            tokio::time::advance(Duration::from_millis(100)).await;
        }
        assert!(node.registry.get(&cam).is_none_or(|e| e.cell().is_none()));
        let row = board.row("cam").unwrap();
        assert_eq!(
            row.owner, None,
            "alone and failed here: nobody may capture it"
        );
    }
}
