//! What the simulator shares with the simulated nodes: the sources (which node reaches
//! which camera, which cameras are down), the ledger of captures actually running, the
//! nodes' handles for the invariant checks, and the trace.
//!
//! Everything runs on turmoil's one thread, so a mutex here is never contended; it exists
//! because the media trait wants `Send + Sync`. Collections are ordered (`BTreeMap`) so
//! that nothing depends on hashing order.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, RwLock};

use flotilla::media::directory::Directory;
use flotilla_cluster::ingest::board::IngestBoard;
use flotilla_cluster::mesh::view::ClusterView;
use flotilla_otp::node::NodeContext;
use flotilla_otp::registry::RegistryRelease;
use flotilla_otp::rt::Suspension;

/// Simulated milliseconds since the start of the run, as the current host sees them.
pub fn sim_ms() -> u64 {
    turmoil::sim_elapsed().map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// A running node, as its host registered it.
#[derive(Clone)]
pub struct NodeHandle {
    /// Simulated ms when this incarnation started.
    pub started_ms: u64,
    pub context: NodeContext,
    pub board: IngestBoard,
    pub view: Arc<RwLock<ClusterView>>,
    pub directory: Directory,
}

/// One capture running on a node: its source connected, frames flowing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Running {
    /// The node's incarnation (its start, simulated ms).
    pub incarnation_ms: u64,
    /// Since when, simulated ms.
    pub since_ms: u64,
}

/// The shared state.
#[derive(Default)]
pub struct WorldState {
    /// Streams whose camera is down for everyone.
    pub sources_down: BTreeSet<String>,
    /// Per node, the streams whose camera it cannot reach (looked up by name at every
    /// fake frame: nested, so that no key is built for it).
    pub sources_cut: BTreeMap<String, BTreeSet<String>>,
    /// Captures running now: stream → node → run.
    pub running: BTreeMap<String, BTreeMap<String, Running>>,
    /// Bumped by every change of `running`, so an observer copies it only when it moved.
    pub running_version: u64,
    /// Every capture start: (node, its incarnation, stream, simulated ms).
    pub starts: Vec<(String, u64, String, u64)>,
    /// When each stream's camera last came back after being down for everyone.
    pub sources_back_ms: BTreeMap<String, u64>,
    /// Running nodes, by hostname.
    pub nodes: BTreeMap<String, NodeHandle>,
    /// The suspension control of each node's current incarnation (registered as its
    /// runtime is built, dropped when the simulator crashes or restarts it).
    pub suspensions: BTreeMap<String, Suspension>,
    /// Every incarnation that started (node, start ms) and a watch on its registry: all
    /// of them must be freed once the run is dropped.
    pub incarnations: Vec<(String, u64, RegistryRelease)>,
    /// The trace: one line per event.
    pub trace: Vec<String>,
}

impl WorldState {
    /// Whether `node` can reach the camera of `stream` now.
    pub fn reachable(&self, node: &str, stream: &str) -> bool {
        !self.sources_down.contains(stream)
            && !self
                .sources_cut
                .get(node)
                .is_some_and(|cut| cut.contains(stream))
    }

    /// Adds a trace line stamped with the simulated time.
    pub fn log(&mut self, at_ms: u64, line: impl AsRef<str>) {
        self.trace.push(format!(
            "{:>4}.{:03} {}",
            at_ms / 1000,
            at_ms % 1000,
            line.as_ref()
        ));
    }
}

/// The shared world. Cheap to clone.
#[derive(Clone, Default)]
pub struct World {
    inner: Arc<Mutex<WorldState>>,
}

impl World {
    /// Runs `f` on the state.
    pub fn with<T>(&self, f: impl FnOnce(&mut WorldState) -> T) -> T {
        f(&mut self.inner.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

/// Keeps a capture in the ledger while it lives: dropped when the capture stops, fails,
/// is aborted, or its node crashes (turmoil drops the host's tasks).
pub struct CaptureGuard {
    pub world: World,
    pub node: String,
    pub stream: String,
}

impl CaptureGuard {
    /// Records the start of a capture of `stream` on `node`.
    pub fn start(world: &World, node: &str, incarnation_ms: u64, stream: &str) -> CaptureGuard {
        let now_ms = sim_ms();
        world.with(|state| {
            state.running.entry(stream.to_string()).or_default().insert(
                node.to_string(),
                Running {
                    incarnation_ms,
                    since_ms: now_ms,
                },
            );
            state.running_version += 1;
            state
                .starts
                .push((node.to_string(), incarnation_ms, stream.to_string(), now_ms));
            state.log(now_ms, format!("{node} capture start {stream}"));
        });
        CaptureGuard {
            world: world.clone(),
            node: node.to_string(),
            stream: stream.to_string(),
        }
    }
}

impl Drop for CaptureGuard {
    fn drop(&mut self) {
        let now_ms = sim_ms();
        self.world.with(|state| {
            state.running_version += 1;
            if let Some(nodes) = state.running.get_mut(&self.stream) {
                nodes.remove(&self.node);
                if nodes.is_empty() {
                    state.running.remove(&self.stream);
                }
            }
            state.log(
                now_ms,
                format!("{} capture stop {}", self.node, self.stream),
            );
        });
    }
}
