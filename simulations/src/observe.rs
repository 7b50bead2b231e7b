//! Observing the whole simulated cluster for the checker ([`Observation`]), every
//! [`OBSERVE_PERIOD_MS`](crate::invariants::OBSERVE_PERIOD_MS).
//!
//! An observation reads every node's board, view and directory. Most of what it derives
//! from them does not change from one observation to the next (at rest, nothing does),
//! so [`ObservationMemo`] keeps each derived piece with what it was derived from and
//! derives it again only when that moved. Every key holds the very allocations it
//! compares by address (the boards' parts), so an address is never reused while it is a
//! key.
//! Deriving everything afresh at every observation was over a tenth of a 5 × 100 run,
//! most of it every node's redirect for every stream at rest.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use flotilla_cluster::ingest::board::BoardState;
use flotilla_cluster::mesh::view::{ClusterView, IngestRole, PeerState};
use flotilla_otp::registry::ActorPath;

use crate::cluster::EPOCH_MS;
use crate::invariants::{Detail, Isolation, NodeObservation, Observation, ViewerRedirects};
use crate::world::{NodeHandle, World};

/// The captures running ([`Observation::running`]): stream → nodes.
type RunningCaptures = Arc<BTreeMap<String, BTreeSet<String>>>;

/// What observations keep between them (see the module header).
#[derive(Default)]
pub struct ObservationMemo {
    /// The cameras down and the running nodes `reachers` and `coverable` are of.
    of: Option<(BTreeSet<String>, Vec<String>)>,
    /// Which running nodes reach each stream's camera ([`Observation::reachers`]).
    reachers: Arc<BTreeMap<String, BTreeSet<String>>>,
    /// [`Observation::coverable`].
    coverable: Arc<BTreeMap<String, usize>>,
    /// The captures running as of `WorldState::running_version` (captures start and stop
    /// far more rarely than the cluster is observed).
    running: Option<(u64, RunningCaptures)>,
    /// Per node, what was derived from its board and, at rest, its redirects.
    nodes: BTreeMap<String, NodeMemo>,
}

/// Which parts of which board (`BoardState::local`): the node's life (its start) and the
/// parts' generation in it (a restarted node's board counts generations afresh).
type LocalParts = (u64, u64);

/// What was derived from one node's state.
struct NodeMemo {
    /// The board's parts `capturing` was derived from.
    local: LocalParts,
    /// [`NodeObservation::capturing`].
    capturing: Arc<BTreeMap<String, u64>>,
    /// The redirects, with what they were computed from.
    redirects: Option<Redirects>,
}

/// Every redirect of one node, and everything a redirect reads: the node's board's parts,
/// the set of streams in its directory (by its version), and each peer as the view has
/// it at the observation.
struct Redirects {
    local: LocalParts,
    directory_version: u64,
    peers: Vec<PeerKey>,
    goes_to: ViewerRedirects,
}

/// What a redirect reads of one peer: its state at the observation, and its streams by
/// their version (every change of a peer's streams moves it).
#[derive(PartialEq, Eq)]
struct PeerKey {
    state: PeerState,
    incarnation: u64,
    streams_version: u64,
    id: String,
}

fn peer_keys(view: &ClusterView, wall_ms: u64) -> Vec<PeerKey> {
    view.peers(wall_ms)
        .map(|(record, state)| PeerKey {
            state,
            incarnation: record.incarnation,
            streams_version: record.streams_version,
            id: record.id.clone(),
        })
        .collect()
}

/// Where `node` sends a viewer of each stream: itself (`Some(node)`), a peer (by its
/// identity), or nowhere.
fn redirects(
    handle: &NodeHandle,
    view: &ClusterView,
    node: &str,
    streams: &BTreeMap<String, BTreeSet<String>>,
    wall_ms: u64,
) -> BTreeMap<String, Option<String>> {
    streams
        .keys()
        .map(|stream| {
            let here = handle.directory.resolve(stream).is_some_and(|(live, _)| {
                !flotilla::ingest::superseded(
                    &handle.board,
                    Some(&handle.view),
                    &live.name,
                    wall_ms,
                    node,
                )
            });
            let goes_to = if here {
                Some(node.to_string())
            } else {
                view.redirect_target(stream, wall_ms)
                    .map(|peer| peer.id.clone())
            };
            (stream.clone(), goes_to)
        })
        .collect()
}

impl NodeMemo {
    /// The streams `board` says this node captures, with their epochs.
    fn capturing(&mut self, life_ms: u64, board: &BoardState) -> Arc<BTreeMap<String, u64>> {
        if self.local != (life_ms, board.local_generation) {
            self.local = (life_ms, board.local_generation);
            // New parts (a step that changed one) mostly capture the same streams: then
            // the map stays the same allocation, which the checker skips (I8).
            let fresh = capturing(board);
            if *self.capturing != fresh {
                self.capturing = Arc::new(fresh);
            }
        }
        self.capturing.clone()
    }

    /// The node's redirects, computed again only when something they read moved.
    fn redirects(
        &mut self,
        handle: &NodeHandle,
        view: &ClusterView,
        node: &str,
        board: &Arc<BoardState>,
        streams: &BTreeMap<String, BTreeSet<String>>,
        wall_ms: u64,
    ) -> ViewerRedirects {
        let peers = peer_keys(view, wall_ms);
        if let Some(memo) = &self.redirects
            && memo.local == (handle.started_ms, board.local_generation)
            && memo.peers == peers
            && handle.directory.version() == memo.directory_version
        {
            return memo.goes_to.clone();
        }
        // Read before the redirects: a stream added meanwhile moves it past this one.
        let directory_version = handle.directory.version();
        let goes_to: ViewerRedirects = Arc::new(redirects(handle, view, node, streams, wall_ms));
        self.redirects = Some(Redirects {
            local: (handle.started_ms, board.local_generation),
            directory_version,
            peers,
            goes_to: goes_to.clone(),
        });
        goes_to
    }
}

fn capturing(board: &BoardState) -> BTreeMap<String, u64> {
    board
        .local
        .iter()
        .filter(|(_, part)| part.role == IngestRole::Capturing)
        .map(|(stream, part)| (stream.clone(), part.epoch))
        .collect()
}

/// The whole cluster at `now_ms`, with the `detail` the checks need then. `reachers`:
/// every stream with the nodes that reach its camera. A `suspended` node (its process
/// stopped) is observed as not running, and its captures as not capturing (no frame of
/// theirs arrives while it is stopped); it is observed again when it continues.
#[allow(clippy::too_many_arguments)]
pub fn observe(
    world: &World,
    reachers: &BTreeMap<String, BTreeSet<String>>,
    memo: &mut ObservationMemo,
    preferred: &Arc<BTreeMap<String, String>>,
    now_ms: u64,
    calm_since_ms: Option<u64>,
    healed_at_ms: Option<u64>,
    isolated: &BTreeMap<String, Isolation>,
    suspended: &BTreeMap<String, u64>,
    detail: Detail,
) -> Observation {
    let wall_ms = EPOCH_MS + now_ms;
    world.with(|w| {
        memo.nodes.retain(|name, _| w.nodes.contains_key(name));
        let mut nodes = BTreeMap::new();
        for (name, handle) in &w.nodes {
            if suspended.contains_key(name) {
                continue;
            }
            let board = handle.board.snapshot();
            let view = handle.view.read().unwrap_or_else(|p| p.into_inner());
            let node_memo = match memo.nodes.get_mut(name) {
                Some(node_memo) => node_memo,
                None => memo.nodes.entry(name.clone()).or_insert(NodeMemo {
                    capturing: Arc::new(capturing(&board)),
                    local: (handle.started_ms, board.local_generation),
                    redirects: None,
                }),
            };
            let mut seen = NodeObservation {
                incarnation_ms: handle.started_ms,
                capturing: node_memo.capturing(handle.started_ms, &board),
                board: board.clone(),
                ..NodeObservation::default()
            };
            for (record, _) in view.peers(wall_ms) {
                seen.versions
                    .insert(record.name.clone(), (record.incarnation, record.version));
            }
            if detail.at_rest {
                seen.viewer_goes_to =
                    node_memo.redirects(handle, &view, name, &board, reachers, wall_ms);
            }
            if detail.actors
                && let Some(tree) = handle
                    .context
                    .registry
                    .tree(&ActorPath::root().child("streams"), wall_ms)
            {
                seen.stream_actors = tree
                    .children
                    .iter()
                    .map(|child| {
                        child
                            .path
                            .as_str()
                            .rsplit_once("/streams/")
                            .map_or(String::new(), |(_, n)| n.to_string())
                    })
                    .collect();
            }
            drop(view);
            nodes.insert(name.clone(), seen);
        }
        let running = match &memo.running {
            Some((version, running)) if *version == w.running_version => running.clone(),
            _ => {
                let running: RunningCaptures = Arc::new(
                    w.running
                        .iter()
                        .map(|(stream, on)| {
                            let on: BTreeSet<String> = on
                                .keys()
                                .filter(|node| !suspended.contains_key(*node))
                                .cloned()
                                .collect();
                            (stream.clone(), on)
                        })
                        .filter(|(_, on)| !on.is_empty())
                        .collect(),
                );
                memo.running = Some((w.running_version, running.clone()));
                running
            }
        };
        let same_reach = memo.of.as_ref().is_some_and(|(down, running)| {
            *down == w.sources_down && running.iter().eq(nodes.keys())
        });
        if !same_reach {
            let live_reachers: BTreeMap<String, BTreeSet<String>> = reachers
                .iter()
                .filter(|(stream, _)| !w.sources_down.contains(*stream))
                .map(|(stream, set)| {
                    (
                        stream.clone(),
                        set.iter()
                            .filter(|n| nodes.contains_key(*n))
                            .cloned()
                            .collect(),
                    )
                })
                .collect();
            let coverable = live_reachers
                .iter()
                .filter(|(_, set): &(&String, &BTreeSet<String>)| !set.is_empty())
                .map(|(stream, set)| (stream.clone(), nodes.len() - set.len()))
                .collect();
            memo.of = Some((w.sources_down.clone(), nodes.keys().cloned().collect()));
            memo.reachers = Arc::new(live_reachers);
            memo.coverable = Arc::new(coverable);
        }
        Observation {
            at_ms: now_ms,
            nodes,
            running,
            coverable: memo.coverable.clone(),
            preferred: preferred.clone(),
            reachers: memo.reachers.clone(),
            calm_since_ms,
            healed_at_ms,
            isolated: isolated.clone(),
            source_back_ms: w.sources_back_ms.clone(),
        }
    })
}
