//! The invariants a run must keep (I1–I11, each stated in docs/simulation.md), plus: every redirect
//! points at a live capturer, and no actor or capture outlives its purpose.
//!
//! The checker is fed one [`Observation`] of the whole cluster every
//! [`OBSERVE_PERIOD_MS`]; safety properties are checked at every observation, liveness
//! properties against bounds derived from the cluster's timeouts. The first violation
//! ends the run.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use flotilla_cluster::ingest::board::BoardState;
use flotilla_cluster::ingest::book::MAX_CAPTURE_RESTARTS;

use crate::cluster::{FETCH_TIMEOUT_MS, STALE_TIMEOUT_MS};

/// How often the cluster is observed, simulated ms.
pub const OBSERVE_PERIOD_MS: u64 = 250;

/// A capture that lost its owner is replaced within this (I2): the peer goes stale, one
/// more exchange, the new owner's start and first frame, and a margin of two ticks.
pub const FAILOVER_MS: u64 = STALE_TIMEOUT_MS + 2 * FETCH_TIMEOUT_MS + 2_000;

/// Per node that cannot reach a camera, the time to find out (connect timeouts and
/// restarts until the capture is marked failed there), added to [`FAILOVER_MS`] for
/// cameras only some nodes reach.
pub const UNREACHABLE_NODE_MS: u64 = 30_000;

/// After the heal, duplicates from the chaos end within this (I3): links reconnect and
/// exchange, and the losers stop.
pub const DUPLICATES_END_MS: u64 = STALE_TIMEOUT_MS + 3 * FETCH_TIMEOUT_MS;

/// A hand-over (make before break) overlaps two captures at most this long (I3).
pub const HANDOVER_OVERLAP_MS: u64 = 3 * FETCH_TIMEOUT_MS + 2_000;

/// After the heal, the cluster is at rest within this: links reconnect and restarted
/// nodes settle, a returning node waits its fail-back hold (×4 for a node that flapped,
/// counted from its last return, which the heal itself can be), then hands over (make
/// before break), with a margin for exchange rounds on the way.
pub const AT_REST_MS: u64 =
    DUPLICATES_END_MS + 4 * 2 * STALE_TIMEOUT_MS + HANDOVER_OVERLAP_MS + 15 * FETCH_TIMEOUT_MS;

/// A camera that comes back is captured again within this, counted from its return
/// (I2), when the node holding the stream kept it through the outage (nothing to fail
/// over): the loss is noticed at the next frame, the input waits out `source_timeout`,
/// the stream actor's first restart comes after the supervisor's initial backoff, and the
/// observation comes up to one period later. Longer outages end sooner: their restarts
/// ran during the outage, and a failed mark hands the stream on within [`FAILOVER_MS`].
pub const SOURCE_RECOVERY_MS: u64 = crate::media::FRAME_PERIOD_MS
    + flotilla::defaults::SOURCE_TIMEOUT_MS
    + flotilla_cluster::tree::STREAM_BACKOFF.initial.as_millis() as u64
    + OBSERVE_PERIOD_MS;

/// A node that resumes from a suspension (its process stopped for longer than the stale
/// timeout, then continued) starts no capture of a stream another running node captures
/// for this long after it resumes (I11): its peers may have taken its streams, and it
/// must hear them before it takes anything (its view of them is from before the pause);
/// once it has, it is a returning node, held off streams captured elsewhere for its
/// fail-back hold (two stale timeouts, counted from the majority it hears again).
pub const RESUME_HOLD_MS: u64 = 2 * STALE_TIMEOUT_MS;

/// Two nodes whose views differ may disagree on an owner until their views converge:
/// one exchange round each way and a tick (I6).
pub const VIEWS_CONVERGE_MS: u64 = 2 * FETCH_TIMEOUT_MS + 1_000;

/// Capture starts of one stream on one node within [`RESTART_WINDOW_MS`] (I9): the first
/// start and the restarts the ingest book tolerates before it marks the source failed.
pub const MAX_STARTS_IN_WINDOW: usize = MAX_CAPTURE_RESTARTS + 2;

/// The window of [`MAX_STARTS_IN_WINDOW`].
pub const RESTART_WINDOW_MS: u64 = 60_000;

/// After a stream whose camera only some nodes reach is captured again (late: each node
/// that cannot reach it had its probe, see [`UNREACHABLE_NODE_MS`]), or after an owner's
/// probe of a camera it cannot reach ends (its failure mark expired; another node kept
/// the stream meanwhile), the cluster may move one other stream to even the shares out:
/// an exchange round each way for the change to be seen, a tick, and the hand-over (make
/// before break).
pub const REBALANCE_MS: u64 = 2 * FETCH_TIMEOUT_MS + HANDOVER_OVERLAP_MS + 1_000;

/// Whether some running node's table names as the owner of a stream a running node that
/// cannot reach its camera: the owner probes it again (its failure mark expired) while
/// the node that has the stream keeps it.
fn probing(o: &Observation) -> bool {
    // `reachers` holds running nodes only: a stream every running node reaches (most of
    // them) has no owner that cannot reach it, and needs no look at the tables.
    let running = o.nodes.len();
    let mut partly_reached = o
        .reachers
        .iter()
        .filter(|(_, reachers)| reachers.len() < running);
    partly_reached.any(|(stream, reachers)| {
        o.nodes.values().any(|seen| {
            seen.owner(stream).is_some_and(|owner| {
                owner
                    .as_ref()
                    .is_some_and(|owner| o.nodes.contains_key(owner) && !reachers.contains(owner))
            })
        })
    })
}

/// Whether the healed cluster may be at rest at `at_ms`: from then on an observation
/// must carry what [`Checker::at_rest`] reads. The checker starts those checks there, or
/// later: not while a stream that some node can capture has no capture (the failover
/// bound of I2 covers it), not while an owner probes a camera it cannot reach, and not
/// within [`REBALANCE_MS`] of the last stream captured again or the last probe.
pub fn at_rest(healed_at_ms: Option<u64>, at_ms: u64) -> bool {
    healed_at_ms.is_some_and(|healed_ms| at_ms >= healed_ms + AT_REST_MS)
}

/// What an observation gathers beyond what every check reads. Every node's redirect for
/// every stream is read only at rest, the actor tree only at the end; gathering them at
/// every observation was half the simulator's own cost with 100 streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Detail {
    /// Viewers' redirects ([`NodeObservation::viewer_goes_to`]).
    pub at_rest: bool,
    /// The `streams` supervisor's actors ([`NodeObservation::stream_actors`]).
    pub actors: bool,
}

/// Where a node sends a viewer of each stream (see [`NodeObservation::viewer_goes_to`]).
pub type ViewerRedirects = Arc<BTreeMap<String, Option<String>>>;

/// A node as observed.
#[derive(Debug, Clone, Default)]
pub struct NodeObservation {
    /// Its incarnation (start, simulated ms).
    pub incarnation_ms: u64,
    /// Its ingest board as published (a shared snapshot: the owners are read from its
    /// table, see [`NodeObservation::owner`]).
    pub board: Arc<BoardState>,
    /// Streams it captures by its board, with epochs (shared while its board stays the
    /// same, which lets the checker skip what it checked already).
    pub capturing: Arc<BTreeMap<String, u64>>,
    /// (incarnation, version) of each peer in its view, by peer key.
    pub versions: BTreeMap<String, (u64, u64)>,
    /// Where it sends a viewer of each stream: itself (`Some(me)`), a peer's hostname,
    /// or nowhere (`None`). At rest only, see [`Detail`].
    pub viewer_goes_to: ViewerRedirects,
    /// Stream actors under its `streams` supervisor (at the end only, see [`Detail`]).
    pub stream_actors: BTreeSet<String>,
}

impl NodeObservation {
    /// The owner of `stream` in its ingest table (`None`: not in the table).
    pub fn owner(&self, stream: &str) -> Option<&Option<String>> {
        let rows = &self.board.rows;
        rows.binary_search_by(|row| row.stream.as_str().cmp(stream))
            .ok()
            .map(|index| &rows[index].owner)
    }
}

/// The cluster at one instant.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub at_ms: u64,
    /// Running nodes, by hostname.
    pub nodes: BTreeMap<String, NodeObservation>,
    /// Captures with frames flowing: stream → nodes.
    pub running: Arc<BTreeMap<String, BTreeSet<String>>>,
    /// Streams some running node reaches the camera of, with how many running nodes
    /// cannot.
    pub coverable: Arc<BTreeMap<String, usize>>,
    /// Preferred (capture_at) node per stream.
    pub preferred: Arc<BTreeMap<String, String>>,
    /// Nodes that reach each stream's camera.
    pub reachers: Arc<BTreeMap<String, BTreeSet<String>>>,
    /// No fault active since this simulated ms (`None`: a fault is active now).
    pub calm_since_ms: Option<u64>,
    /// Simulated ms of the heal (`None` during chaos).
    pub healed_at_ms: Option<u64>,
    /// Nodes isolated now.
    pub isolated: BTreeMap<String, Isolation>,
    /// When each stream's camera last came back after being down for everyone.
    pub source_back_ms: BTreeMap<String, u64>,
}

/// A broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Its short name (`I1` … `I10`, `redirect`, `leak`).
    pub invariant: &'static str,
    pub at_ms: u64,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} violated at {}.{:03}: {}",
            self.invariant,
            self.at_ms / 1000,
            self.at_ms % 1000,
            self.detail
        )
    }
}

/// A node's last suspension that ended with it continuing (I11's subject).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resumed {
    /// When its process was suspended, simulated ms.
    pub suspended_ms: u64,
    /// When it continued, simulated ms.
    pub resumed_ms: u64,
    /// The captures its board held when it was suspended (stream → epoch): a start
    /// under one of these epochs is that capture reconnecting its source (its restart
    /// was due while the node stood still), which the node keeps (rule 5 of the ingest
    /// book), not a stream taken.
    pub kept: BTreeMap<String, u64>,
}

impl Resumed {
    /// Whether a capture of `stream` under `epoch_now` (its board's capture epoch when
    /// it started) is one the node kept through its pause.
    pub fn kept_capture(&self, stream: &str, epoch_now: Option<u64>) -> bool {
        epoch_now.is_some() && self.kept.get(stream).copied() == epoch_now
    }
}

/// A node cut off from every peer (I7's subject).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Isolation {
    /// When the cut began, simulated ms.
    pub since_ms: u64,
    /// The longest a message sent before the cut could still take to arrive, ms.
    pub latency_ms: u64,
    /// The streams it captured when cut off.
    pub had: BTreeSet<String>,
}

/// How long after its cut an isolated node may still act on what it heard before: it
/// counts a peer towards the quorum until that peer has not been heard for the stale
/// timeout less a fetch interval and a tick (`fading_after_ms` in the coordinator), and
/// decides at its next tick, 250 ms later. Until then it may still fail over a peer that
/// died before the cut, like every other node; messages in flight at the cut add their
/// latency on top ([`Isolation::latency_ms`]).
pub const RESTRAINT_GRACE_MS: u64 = STALE_TIMEOUT_MS - FETCH_TIMEOUT_MS;

/// Something kept per node, per incarnation of it, per name (a peer or a stream).
type PerIncarnation<T> = BTreeMap<String, BTreeMap<u64, BTreeMap<String, T>>>;

/// State kept between observations.
#[derive(Debug, Default)]
pub struct Checker {
    /// With minority restraint on, how many running nodes make a majority: a node takes
    /// no stream while it hears fewer, so no failover is owed then (`None`: restraint off).
    majority: Option<usize>,
    /// Since when a majority of nodes has been running, by the observations (restraint
    /// on; `None` while fewer run).
    majority_since_ms: Option<u64>,
    /// Per observer, its incarnation, and peer: the highest (incarnation, version) seen.
    /// (Nested by name, so that an observation looks entries up without building keys.)
    versions: PerIncarnation<(u64, u64)>,
    /// Per node, incarnation and stream: the epoch of its last capture, and whether that
    /// capture is still on.
    epochs: PerIncarnation<(u64, bool)>,
    /// Per node, the captures `epochs` last took in: the same ones again (the same
    /// allocation, see [`NodeObservation::capturing`]) change nothing there.
    epochs_of: BTreeMap<String, Arc<BTreeMap<String, u64>>>,
    /// Since when each stream has had no capture, simulated ms.
    uncovered_since_ms: BTreeMap<String, u64>,
    /// When a stream without a capture was last captured again, simulated ms.
    covered_again_ms: u64,
    /// When an owner was last seen probing a camera it cannot reach, simulated ms.
    probed_ms: Option<u64>,
    /// The nodes (with their incarnation) seen running without reaching the camera while
    /// the stream had no capture: each may have spent its probe time on it before it
    /// crashed, and a restarted one forgets its mark and may probe again.
    unreachable_during_gap: BTreeMap<String, BTreeSet<(String, u64)>>,
    /// Since when each stream has had two or more captures.
    duplicated_since_ms: BTreeMap<String, u64>,
    /// Capture starts, per (node, its incarnation, stream), simulated ms.
    starts: BTreeMap<(String, u64, String), Vec<u64>>,
    /// The last capture start of each stream, simulated ms (a capture may start and end
    /// between two observations: it still ended the stream's time without one).
    last_start_ms: BTreeMap<String, u64>,
    /// Since when nodes have disagreed on each stream's owner.
    disagreeing_since_ms: BTreeMap<String, u64>,
    /// Per isolated node: what it may capture (what it had, and what it took within
    /// [`RESTRAINT_GRACE_MS`] of its cut).
    restraint_base: BTreeMap<String, BTreeSet<String>>,
    /// Capture starts recorded so far (any node, any stream).
    starts_recorded: u64,
    /// What the last at-rest check that passed with every node agreeing read: the same
    /// inputs again pass again (nothing in that check depends on time but disagreements
    /// and starts, and there were none), so at rest, where nothing moves, the check
    /// costs one comparison of allocations.
    rest_passed: Option<RestInputs>,
}

/// The inputs of [`Checker::at_rest`], by allocation (held, so that no address is reused
/// while it is compared).
#[derive(Debug)]
struct RestInputs {
    reachers: Arc<BTreeMap<String, BTreeSet<String>>>,
    running: Arc<BTreeMap<String, BTreeSet<String>>>,
    preferred: Arc<BTreeMap<String, String>>,
    healed_at_ms: Option<u64>,
    starts_recorded: u64,
    /// Per node: its name, board (owners) and redirects.
    nodes: Vec<(String, Arc<BoardState>, ViewerRedirects)>,
}

impl RestInputs {
    fn of(o: &Observation, starts_recorded: u64) -> RestInputs {
        RestInputs {
            reachers: o.reachers.clone(),
            running: o.running.clone(),
            preferred: o.preferred.clone(),
            healed_at_ms: o.healed_at_ms,
            starts_recorded,
            nodes: o
                .nodes
                .iter()
                .map(|(name, seen)| {
                    (
                        name.clone(),
                        seen.board.clone(),
                        seen.viewer_goes_to.clone(),
                    )
                })
                .collect(),
        }
    }

    fn same_as(&self, o: &Observation, starts_recorded: u64) -> bool {
        Arc::ptr_eq(&self.reachers, &o.reachers)
            && Arc::ptr_eq(&self.running, &o.running)
            && Arc::ptr_eq(&self.preferred, &o.preferred)
            && self.healed_at_ms == o.healed_at_ms
            && self.starts_recorded == starts_recorded
            && self.nodes.len() == o.nodes.len()
            && self
                .nodes
                .iter()
                .zip(&o.nodes)
                .all(|((name, board, goes_to), (node, seen))| {
                    name == node
                        && Arc::ptr_eq(board, &seen.board)
                        && Arc::ptr_eq(goes_to, &seen.viewer_goes_to)
                })
    }
}

/// The entry of `map` for `key`, made when missing (a lookup by `&str`: the key is
/// copied only the first time).
fn slot<'a, V: Default>(map: &'a mut BTreeMap<String, V>, key: &str) -> &'a mut V {
    if !map.contains_key(key) {
        map.insert(key.to_string(), V::default());
    }
    map.get_mut(key).expect("just inserted")
}

fn violation(invariant: &'static str, at_ms: u64, detail: String) -> Result<(), Violation> {
    Err(Violation {
        invariant,
        at_ms,
        detail,
    })
}

impl Checker {
    /// A checker for a cluster of `nodes`, with `minority_restraint` as configured.
    pub fn new(nodes: usize, minority_restraint: bool) -> Checker {
        Checker {
            majority: minority_restraint.then_some(nodes / 2 + 1),
            ..Checker::default()
        }
    }

    /// Records that `node` (the incarnation started at `incarnation_ms`) started capturing
    /// `stream` at `at_ms` (from the ledger). Restarts are counted per incarnation: the
    /// book bounds the restarts of one capture; a node that restarts itself (a fault) and
    /// takes its stream back at once is a recovery, not a capture restarting.
    pub fn started(
        &mut self,
        node: &str,
        incarnation_ms: u64,
        stream: &str,
        at_ms: u64,
    ) -> Result<(), Violation> {
        self.last_start_ms.insert(stream.to_string(), at_ms);
        self.starts_recorded += 1;
        let starts = self
            .starts
            .entry((node.to_string(), incarnation_ms, stream.to_string()))
            .or_default();
        starts.push(at_ms);
        starts.retain(|at| at_ms.saturating_sub(*at) < RESTART_WINDOW_MS);
        if starts.len() > MAX_STARTS_IN_WINDOW {
            return violation(
                "I9",
                at_ms,
                format!(
                    "{node} started {stream} {} times within {} s (bound {MAX_STARTS_IN_WINDOW})",
                    starts.len(),
                    RESTART_WINDOW_MS / 1000
                ),
            );
        }
        Ok(())
    }

    /// I11: `node`, which resumed from a suspension (`resume`), started capturing
    /// `stream` at `at_ms` while `others` (running nodes, suspended ones left out)
    /// captured it with frames (a capture it kept through the pause is not a start: the
    /// caller asks [`Resumed::kept_capture`] first). Checked within [`RESUME_HOLD_MS`]
    /// of the resume, and
    /// only when the network was calm from [`DUPLICATES_END_MS`] before the suspension
    /// on (`calm_since_ms`): a node that cannot hear a peer may take its streams, resumed
    /// or not.
    pub fn resumed_start(
        &self,
        node: &str,
        stream: &str,
        at_ms: u64,
        resume: &Resumed,
        calm_since_ms: Option<u64>,
        others: &BTreeSet<String>,
    ) -> Result<(), Violation> {
        let calm_throughout = calm_since_ms.is_some_and(|calm_ms| {
            calm_ms.saturating_add(DUPLICATES_END_MS) <= resume.suspended_ms
        });
        if others.is_empty()
            || !calm_throughout
            || at_ms >= resume.resumed_ms.saturating_add(RESUME_HOLD_MS)
        {
            return Ok(());
        }
        violation(
            "I11",
            at_ms,
            format!(
                "{node} resumed at {} ms after {} ms suspended and started {stream} {} ms later, while {others:?} captured it",
                resume.resumed_ms,
                resume.resumed_ms - resume.suspended_ms,
                at_ms.saturating_sub(resume.resumed_ms)
            ),
        )
    }

    /// Checks one observation; returns what it breaks (the first break of each check).
    /// Every check runs whatever the others find.
    pub fn observe(&mut self, o: &Observation) -> Vec<Violation> {
        if let Some(majority) = self.majority {
            if o.nodes.len() >= majority {
                self.majority_since_ms.get_or_insert(o.at_ms);
            } else {
                self.majority_since_ms = None;
            }
        }
        let mut results = vec![
            self.gossip_monotonic(o),
            self.epochs_grow(o),
            self.restraint(o),
            self.coverage(o),
            self.duplicates(o),
        ];
        if at_rest(o.healed_at_ms, o.at_ms) && probing(o) {
            self.probed_ms = Some(o.at_ms);
        }
        if self
            .rest_began_ms(o)
            .is_some_and(|began_ms| o.at_ms >= began_ms)
        {
            results.push(self.at_rest(o));
        }
        results.into_iter().filter_map(Result::err).collect()
    }

    /// I10: no view ever goes back to an older state of a peer.
    fn gossip_monotonic(&mut self, o: &Observation) -> Result<(), Violation> {
        for (node, seen) in &o.nodes {
            let by_peer = slot(&mut self.versions, node)
                .entry(seen.incarnation_ms)
                .or_default();
            for (peer, version) in &seen.versions {
                let highest = slot(by_peer, peer);
                if version < highest {
                    return violation(
                        "I10",
                        o.at_ms,
                        format!(
                            "{node}'s view of {peer} went back from {highest:?} to {version:?}"
                        ),
                    );
                }
                *highest = *version;
            }
        }
        Ok(())
    }

    /// I8: each new capture of a stream by a node takes an epoch above its previous one.
    fn epochs_grow(&mut self, o: &Observation) -> Result<(), Violation> {
        for (node, seen) in &o.nodes {
            // The same captures as last time (a new incarnation has a new board, hence a
            // new map) passed then and change nothing now.
            match self.epochs_of.get_mut(node) {
                Some(last) if Arc::ptr_eq(last, &seen.capturing) => continue,
                Some(last) => *last = seen.capturing.clone(),
                None => {
                    self.epochs_of.insert(node.clone(), seen.capturing.clone());
                }
            }
            let by_stream = slot(&mut self.epochs, node)
                .entry(seen.incarnation_ms)
                .or_default();
            // Both maps are in name order: one walk over them together, not a lookup per
            // stream (a node's captures change at most observations of a busy cluster).
            let mut captured = seen.capturing.iter().peekable();
            let mut first_taken: Vec<(&String, u64)> = Vec::new();
            for (stream, (previous, on)) in by_stream.iter_mut() {
                while let Some((name, epoch)) = captured.next_if(|(name, _)| *name < stream) {
                    first_taken.push((name, *epoch));
                }
                let Some((_, epoch)) = captured.next_if(|(name, _)| *name == stream) else {
                    *on = false;
                    continue;
                };
                if !*on && epoch <= previous {
                    return violation(
                        "I8",
                        o.at_ms,
                        format!(
                            "{node} captures {stream} again with epoch {epoch}, not above its previous {previous}"
                        ),
                    );
                }
                if *on && epoch < previous {
                    return violation(
                        "I8",
                        o.at_ms,
                        format!("{node}'s epoch of {stream} went back from {previous} to {epoch}"),
                    );
                }
                (*previous, *on) = (*epoch, true);
            }
            first_taken.extend(captured.map(|(name, epoch)| (name, *epoch)));
            for (stream, epoch) in first_taken {
                by_stream.insert(stream.clone(), (epoch, true));
            }
        }
        Ok(())
    }

    /// I7: an isolated node with minority restraint takes nothing new.
    fn restraint(&mut self, o: &Observation) -> Result<(), Violation> {
        self.restraint_base
            .retain(|node, _| o.isolated.contains_key(node));
        for (node, cut) in &o.isolated {
            let Some(seen) = o.nodes.get(node) else {
                continue;
            };
            let base = self
                .restraint_base
                .entry(node.clone())
                .or_insert_with(|| cut.had.clone());
            if o.at_ms < cut.since_ms + RESTRAINT_GRACE_MS + cut.latency_ms {
                base.extend(seen.capturing.keys().cloned());
                continue;
            }
            if let Some(stream) = seen.capturing.keys().find(|s| !base.contains(*s)) {
                return violation(
                    "I7",
                    o.at_ms,
                    format!(
                        "isolated {node} took {stream} over {} ms after its cut (it had {base:?})",
                        o.at_ms - cut.since_ms
                    ),
                );
            }
        }
        Ok(())
    }

    /// I2: a stream some node can capture is captured again within the failover bound
    /// once the cluster is calm.
    fn coverage(&mut self, o: &Observation) -> Result<(), Violation> {
        let found = self.uncovered_streams(o);
        self.end_gaps(o);
        found
    }

    /// [`Checker::coverage`] of the streams without a capture now.
    fn uncovered_streams(&mut self, o: &Observation) -> Result<(), Violation> {
        // Both maps are in name order: walk them together instead of a lookup per stream.
        let mut running = o.running.iter().peekable();
        for stream in o.coverable.keys() {
            while running.next_if(|(name, _)| *name < stream).is_some() {}
            let captured = running
                .peek()
                .is_some_and(|(name, nodes)| *name == stream && !nodes.is_empty());
            if captured {
                // Its gap (if it had one) ends: removed after the walk, from the few
                // streams that had one rather than by a lookup per captured stream.
                continue;
            }
            let unreachable = self
                .unreachable_during_gap
                .entry(stream.clone())
                .or_default();
            for (node, seen) in &o.nodes {
                if !o.reachers.get(stream).is_some_and(|r| r.contains(node)) {
                    unreachable.insert((node.clone(), seen.incarnation_ms));
                }
            }
            let unreachable_from = unreachable.len();
            let since = *self
                .uncovered_since_ms
                .entry(stream.clone())
                .or_insert(o.at_ms);
            let since = since.max(self.last_start_ms.get(stream).copied().unwrap_or(0));
            let Some(calm_since) = o.calm_since_ms else {
                continue;
            };
            // With minority restraint, failover is owed only once a majority runs again
            // (known at the first observation that sees it: up to a period late).
            let majority_since = match self.majority {
                None => 0,
                Some(_) => match self.majority_since_ms {
                    Some(since) => since,
                    None => continue,
                },
            };
            let recovering = o
                .source_back_ms
                .get(stream)
                .is_some_and(|back| since <= back + SOURCE_RECOVERY_MS);
            let failover = if recovering {
                SOURCE_RECOVERY_MS.max(FAILOVER_MS)
            } else {
                FAILOVER_MS
            };
            let bound = failover + unreachable_from as u64 * UNREACHABLE_NODE_MS;
            let from = since.max(calm_since).max(majority_since);
            if o.at_ms.saturating_sub(from) > bound {
                return violation(
                    "I2",
                    o.at_ms,
                    format!(
                        "{stream} has had no capture for {} ms of calm (bound {bound} ms)",
                        o.at_ms - from
                    ),
                );
            }
        }
        Ok(())
    }

    /// Forgets the gaps of streams captured again (noting when the last one ended) and of
    /// streams no longer coverable.
    fn end_gaps(&mut self, o: &Observation) {
        let captured =
            |stream: &String| o.running.get(stream).is_some_and(|nodes| !nodes.is_empty());
        let mut covered_again = false;
        self.uncovered_since_ms.retain(|stream, _| {
            let coverable = o.coverable.contains_key(stream);
            let ended = coverable && captured(stream);
            covered_again |= ended;
            coverable && !ended
        });
        if covered_again {
            self.covered_again_ms = o.at_ms;
        }
        self.unreachable_during_gap
            .retain(|stream, _| !captured(stream) && o.coverable.contains_key(stream));
    }

    /// I3: once the network is calm (after the heal, or between network faults),
    /// duplicates from a partition end within the bound, and a hand-over overlaps two
    /// captures only briefly.
    fn duplicates(&mut self, o: &Observation) -> Result<(), Violation> {
        for (stream, nodes) in o.running.iter() {
            if nodes.len() < 2 {
                // Its duplicate spell (if any) ends in the `retain` below.
                continue;
            }
            let since = *self
                .duplicated_since_ms
                .entry(stream.clone())
                .or_insert(o.at_ms);
            let Some(calm_since) = o.calm_since_ms else {
                continue;
            };
            let from = since.max(calm_since + DUPLICATES_END_MS);
            if o.at_ms >= calm_since + DUPLICATES_END_MS
                && o.at_ms.saturating_sub(from) > HANDOVER_OVERLAP_MS
            {
                return violation(
                    "I3",
                    o.at_ms,
                    format!(
                        "{stream} captured by {nodes:?} since {since} ms (calm since {calm_since} ms)"
                    ),
                );
            }
        }
        self.duplicated_since_ms
            .retain(|stream, _| o.running.get(stream).is_some_and(|n| n.len() >= 2));
        Ok(())
    }

    /// I1, I4, I5, I6 and redirects, once the healed cluster is at rest.
    /// When the cluster's rest began, as far as `o` tells: [`AT_REST_MS`] after the heal,
    /// once every stream some node can capture is captured, [`REBALANCE_MS`] after the
    /// last one captured again (`None`: not at rest yet).
    fn rest_began_ms(&self, o: &Observation) -> Option<u64> {
        if !at_rest(o.healed_at_ms, o.at_ms)
            || !self.uncovered_since_ms.is_empty()
            || self.probed_ms == Some(o.at_ms)
        {
            return None;
        }
        let healed_ms = o.healed_at_ms.unwrap_or(0);
        let settled_ms = self.covered_again_ms.max(self.probed_ms.unwrap_or(0));
        Some((healed_ms + AT_REST_MS).max(settled_ms + REBALANCE_MS))
    }

    fn at_rest(&mut self, o: &Observation) -> Result<(), Violation> {
        if let Some(passed) = &self.rest_passed
            && passed.same_as(o, self.starts_recorded)
        {
            return Ok(());
        }
        self.rest_passed = None;
        self.check_rest(o)?;
        if self.disagreeing_since_ms.is_empty() {
            self.rest_passed = Some(RestInputs::of(o, self.starts_recorded));
        }
        Ok(())
    }

    /// [`Checker::at_rest`] on an observation that differs from the last one that passed.
    fn check_rest(&mut self, o: &Observation) -> Result<(), Violation> {
        let live: BTreeSet<&String> = o.nodes.keys().collect();
        for (stream, reachers) in o.reachers.iter() {
            let none = BTreeSet::new();
            let capturers = o.running.get(stream).unwrap_or(&none);
            // I6: every node computes the same owner, up to one exchange round.
            let owners: BTreeSet<&Option<String>> =
                o.nodes.values().filter_map(|n| n.owner(stream)).collect();
            if owners.len() > 1 {
                let since = *self
                    .disagreeing_since_ms
                    .entry(stream.clone())
                    .or_insert(o.at_ms);
                if o.at_ms.saturating_sub(since) > VIEWS_CONVERGE_MS {
                    let by_node: Vec<String> = o
                        .nodes
                        .iter()
                        .map(|(node, seen)| {
                            format!("{node}→{:?}", seen.owner(stream).cloned().flatten())
                        })
                        .collect();
                    return violation(
                        "I6",
                        o.at_ms,
                        format!(
                            "nodes disagree on the owner of {stream} for {} ms: {}",
                            o.at_ms - since,
                            by_node.join(" ")
                        ),
                    );
                }
                continue;
            }
            self.disagreeing_since_ms.remove(stream);
            let owner = owners.into_iter().next().cloned().flatten();
            if !reachers.iter().any(|n| live.contains(n)) {
                continue;
            }
            // I1: exactly one capturer, one that reaches the camera, and the owner unless
            // the owner cannot reach it (it is probing the camera again after its failure
            // mark expired, while the capturer keeps the stream: make before break).
            let owner_reaches = owner.as_ref().is_some_and(|owner| reachers.contains(owner));
            let capturer_ok = capturers.len() == 1
                && capturers.iter().all(|c| reachers.contains(c))
                && (!owner_reaches || owner.as_ref() == capturers.iter().next());
            if !capturer_ok {
                return violation(
                    "I1",
                    o.at_ms,
                    format!("{stream} at rest is captured by {capturers:?}, owner {owner:?}"),
                );
            }
            let capturer = capturers.iter().next().cloned().unwrap_or_default();
            // I4: a live preferred node that reaches the camera has its stream back.
            if let Some(preferred) = o.preferred.get(stream)
                && live.contains(preferred)
                && reachers.contains(preferred)
                && capturer != *preferred
            {
                return violation(
                    "I4",
                    o.at_ms,
                    format!(
                        "{stream} is still captured by {capturer}, not by its capture_at node {preferred}"
                    ),
                );
            }
            // I5: no ownership change while stable: no capture starts at rest. A
            // hand-over (or a duplicate) begun before rest may still end at rest, the
            // capture set shrinking to its owner: that moves nothing.
            let rest_began_ms = self.rest_began_ms(o).unwrap_or(0);
            if let Some(at_ms) = self
                .last_start_ms
                .get(stream)
                .filter(|at_ms| **at_ms >= rest_began_ms)
            {
                return violation(
                    "I5",
                    o.at_ms,
                    format!(
                        "{stream} moved at rest: a capture started at {at_ms} ms, captured by {capturers:?}"
                    ),
                );
            }
            // Every node sends viewers to the capturer.
            for (node, seen) in &o.nodes {
                let goes_to = seen.viewer_goes_to.get(stream).cloned().flatten();
                if goes_to.as_ref() != Some(&capturer) {
                    return violation(
                        "redirect",
                        o.at_ms,
                        format!(
                            "{node} sends viewers of {stream} to {goes_to:?}, the capturer is {capturer}"
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// At the end: stream actors match captures, and no capture runs without its actor.
    pub fn no_leaks(&self, o: &Observation) -> Result<(), Violation> {
        for (node, seen) in &o.nodes {
            let captured: BTreeSet<String> = seen.capturing.keys().cloned().collect();
            if seen.stream_actors != captured {
                return violation(
                    "leak",
                    o.at_ms,
                    format!(
                        "{node} runs stream actors {:?} but captures {captured:?}",
                        seen.stream_actors
                    ),
                );
            }
            for (stream, nodes) in o.running.iter() {
                if nodes.contains(node) && !seen.stream_actors.contains(stream) {
                    return violation(
                        "leak",
                        o.at_ms,
                        format!("{node} still pulls {stream}'s camera without a stream actor"),
                    );
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One node, `n1`, of incarnation 0, capturing `streams` (name, epoch) at `at_ms`.
    fn capturing(at_ms: u64, streams: &[(&str, u64)]) -> Observation {
        let capturing = streams
            .iter()
            .map(|(name, epoch)| (name.to_string(), *epoch))
            .collect();
        let node = NodeObservation {
            capturing: Arc::new(capturing),
            ..NodeObservation::default()
        };
        Observation {
            at_ms,
            nodes: BTreeMap::from([("n1".to_string(), node)]),
            ..Observation::default()
        }
    }

    fn i8_of(checker: &mut Checker, o: &Observation) -> Option<String> {
        checker
            .observe(o)
            .into_iter()
            .find(|v| v.invariant == "I8")
            .map(|v| v.detail)
    }

    #[test]
    fn an_epoch_that_goes_back_is_caught() {
        let mut checker = Checker::new(1, false);
        assert_eq!(
            i8_of(&mut checker, &capturing(250, &[("a", 1), ("c", 3)])),
            None
        );
        // `b` is new, `a` moves up, `c` goes back.
        let found = i8_of(
            &mut checker,
            &capturing(500, &[("a", 2), ("b", 1), ("c", 2)]),
        );
        assert_eq!(
            found.as_deref(),
            Some("n1's epoch of c went back from 3 to 2")
        );
    }

    #[test]
    fn a_new_capture_must_take_an_epoch_above_the_last() {
        let mut checker = Checker::new(1, false);
        assert_eq!(
            i8_of(&mut checker, &capturing(250, &[("a", 1), ("b", 4)])),
            None
        );
        // `b` ends; `z`, after every known stream, is taken for the first time.
        assert_eq!(
            i8_of(&mut checker, &capturing(500, &[("a", 1), ("z", 1)])),
            None
        );
        // `b` again with a higher epoch is fine; `a` kept its epoch throughout.
        assert_eq!(
            i8_of(
                &mut checker,
                &capturing(750, &[("a", 1), ("b", 5), ("z", 1)])
            ),
            None
        );
        // `b` ends again and comes back with the same epoch: caught.
        assert_eq!(i8_of(&mut checker, &capturing(1_000, &[("a", 1)])), None);
        let found = i8_of(&mut checker, &capturing(1_250, &[("a", 1), ("b", 5)]));
        assert_eq!(
            found.as_deref(),
            Some("n1 captures b again with epoch 5, not above its previous 5")
        );
    }
}
