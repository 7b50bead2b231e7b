//! The cluster_ingest coordinator's bookkeeping, as a sans-IO state machine: every step
//! takes the cluster as this node sees it and `now`, and returns what to start and stop.
//! Nothing here reads a clock or touches an actor, so the node, the tests and the
//! simulator drive the very same decisions.
//!
//! Rules, on top of [`placement`](super::placement):
//! 1. **Take over**: a stream placed on this node and not captured here starts, with an
//!    epoch above every epoch this node has seen for it. Not before the start-up settle
//!    (a booting node first hears its peers, so it does not grab everything) — except a
//!    stream that prefers this node and that no peer captures, once a majority is heard
//!    (peers already place it here) — and never while restrained (minority restraint,
//!    when switched on, counting only peers heard recently).
//! 2. **Make before break**: a stream captured here but placed elsewhere keeps running
//!    until a capture above it (by epoch, then node name) has frames flowing — normally its
//!    new owner's, which starts above every epoch it has seen — or until the hand-over
//!    deadline, whichever comes first.
//! 3. **Failed here**: a capture that restarts too often, or never gets frames by its
//!    start deadline, is stopped and this node is out of the running for that stream for
//!    [`FAILED_HOLD_MS`]; it advertises the mark, so every node places the stream
//!    elsewhere (a camera reachable from some nodes only still gets captured). A mark
//!    taken while no other node had frames either (the camera may have been down for
//!    everyone) ends as soon as a peer has frames again, and after
//!    [`FAILED_WHILE_DOWN_HOLD_MS`] at the latest: where only this node reaches the
//!    camera, nobody else ever has frames, and the stream would stay dark for the whole
//!    hold after the camera came back.
//! 4. **Fail-back with hysteresis**: a returning `capture_at` node gets its stream back
//!    from the node capturing it meanwhile only after a hold time; a node that keeps coming back within [`FLAP_WINDOW_MS`]
//!    waits [`FLAP_HOLD_FACTOR`] times longer.
//! 5. **A resumed node takes nothing blind**: after a pause of this node (SIGSTOP, a
//!    frozen VM), its peers may have declared it dead and taken its streams, and what it
//!    knows of them is from before the pause. While any alive peer is unconfirmed (not
//!    heard since the resume: the cluster view keeps such a peer alive, see
//!    `mesh::view`, rule 4), this node starts no capture and fences none (raises no
//!    epoch over a capture elsewhere). It keeps the captures it still has: most were
//!    taken over while it was paused, and each ends by rule 2 once the new capture is
//!    heard of, with frames, above it; one nobody took keeps running, with no gap. The
//!    unconfirmed peers are heard again within a fetch interval, or go stale by the
//!    view's rules a stale timeout after the resume, and then rule 1 applies as usual.
//!    The pause also stops this node's own clocks: a gap between two of its ticks
//!    longer than [`BookSettings::pause_after_ms`] moves its captures' start and silence
//!    deadlines on by the gap, since no capture could get frames while the node did not
//!    run (a pause past [`CAPTURE_SILENCE_MS`] would otherwise mark every source failed),
//!    and its start-up settle too, since it heard nobody meanwhile (a node paused just
//!    after it started resumed settled, and took streams from peers it had never
//!    heard: simulator seed 368).

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::Serialize;

use super::placement::{Candidate, IngestStream, Reason, place_each};
use super::quiet::{Counts, QuietWatch, StateHasher, Wake};
use crate::mesh::view::IngestRole;

/// Restarts of one capture within [`FAILURE_WINDOW_MS`] after which it counts as failed
/// on this node (the capture's own restart intensity; the supervisor's backoff spaces
/// them 1, 2, 4 s apart).
pub const MAX_CAPTURE_RESTARTS: usize = 3;
/// The window [`MAX_CAPTURE_RESTARTS`] is counted over.
pub const FAILURE_WINDOW_MS: u64 = 60_000;
/// Time a restarted capture has to get its first frame before its restart counts
/// against the source: a reconnect to a camera (TCP or HTTP connect, then the first
/// frames of a GOP). Without it, the restart that reached a camera just back from an
/// outage was judged at the tick that saw it, before any frame could arrive, and the
/// node marked a working source failed for [`FAILED_HOLD_MS`] (simulator seed 185: a
/// `capture_at` node kept from its stream for two minutes).
pub const FIRST_FRAME_GRACE_MS: u64 = 5_000;
/// A capture without a single frame this long after its start has failed here.
pub const CAPTURE_START_DEADLINE_MS: u64 = 20_000;
/// A capture that had frames and has none for this long has failed here (a source
/// that went quiet without the stream actor failing, e.g. `source_timeout false`).
pub const CAPTURE_SILENCE_MS: u64 = 30_000;
/// How long a node stays out of the running for a stream that failed there.
pub const FAILED_HOLD_MS: u64 = 120_000;
/// How long a mark taken while no other node had frames lasts (the camera may be down
/// for everyone): then this node probes the camera again. One probe per failure window,
/// so a node probing a dead camera stays within its restart bound (a probe is a start
/// and at most [`MAX_CAPTURE_RESTARTS`] restarts within [`FAILURE_WINDOW_MS`]).
pub const FAILED_WHILE_DOWN_HOLD_MS: u64 = FAILURE_WINDOW_MS;
/// Longest a capture placed elsewhere keeps running while its new owner starts. Above
/// [`CAPTURE_START_DEADLINE_MS`], so a new owner that cannot reach the source marks
/// itself failed (and the stream comes back) before the old capture gives up.
pub const HANDOVER_DEADLINE_MS: u64 = 30_000;
/// Returns within this window that make a node "flapping".
pub const FLAP_WINDOW_MS: u64 = 600_000;
/// Returns within [`FLAP_WINDOW_MS`] from which a node counts as flapping.
pub const FLAP_RETURNS: usize = 3;
/// A flapping node's fail-back hold is this many times the normal one.
pub const FLAP_HOLD_FACTOR: u64 = 4;

/// What a node advertises about one cluster_ingest stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advertised {
    /// Its role there.
    pub role: IngestRole,
    /// Frames flowing there.
    pub alive: bool,
    /// Its capture epoch there (the last one, when standby).
    pub epoch: u64,
}

/// A node of the cluster as this node sees it (itself included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its identity (`host:port`): the name placement and epochs use.
    pub name: String,
    /// Other names `capture_at` may use for it (the key it is configured under, its
    /// hostname).
    pub aliases: Vec<String>,
    /// Unix ms since which it has been alive without interruption.
    pub alive_since_ms: u64,
    /// Unix ms of its recent returns (see the cluster view).
    pub returns_ms: Vec<u64>,
    /// `channel_limit`.
    pub channel_limit: Option<u32>,
    /// Over its `cpu_limit`.
    pub over_cpu_limit: bool,
    /// What it advertises about cluster_ingest streams (empty for this node itself).
    /// Shared: the coordinator rebuilds a peer's map only when its state version moves.
    pub streams: Arc<BTreeMap<String, Advertised>>,
}

/// A cluster_ingest stream configured on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configured {
    /// Its name.
    pub name: String,
    /// Its `capture_at`, as written in the config.
    pub capture_at: Option<String>,
}

/// The health of a capture running here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Health {
    /// Frames are flowing.
    pub alive: bool,
    /// Restarts of its actor so far (a counter that only grows).
    pub restarts: u64,
    /// Frames came in since its actor's current incarnation started: the last restart
    /// reached the source.
    pub frames_since_start: bool,
}

/// One step's inputs. This node, the peers and the health are shared: the coordinator
/// keeps them from tick to tick and replaces one only when it changed, so an unchanged
/// part is known unchanged by its address (see `quiet`).
#[derive(Debug, Clone)]
pub struct StepInput<'a> {
    /// This node.
    pub me: &'a Arc<Member>,
    /// The alive peers.
    pub peers: &'a Arc<[Member]>,
    /// Nodes of the cluster this node knows of, itself included (alive or not).
    pub cluster_size: usize,
    /// Known peers never heard from yet.
    pub peers_unheard: usize,
    /// Of `peers`, those not heard for long enough that they may be cut off already
    /// (see `members` in the coordinator): alive, but not counted for the quorum.
    pub peers_fading: usize,
    /// Of `peers`, those alive only because this node was paused and not heard since it
    /// resumed (`PeerRecord::unconfirmed`): while any is, this node takes nothing (rule 5).
    pub peers_unconfirmed: usize,
    /// The cluster_ingest streams configured here (shared: the same list from step to
    /// step is known unchanged without comparing a hundred names).
    pub streams: &'a Arc<[Configured]>,
    /// Health of the captures running here.
    pub health: &'a Arc<BTreeMap<String, Health>>,
    /// Unix ms now.
    pub now_ms: u64,
}

/// Settings of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BookSettings {
    /// How long a returning `capture_at` node must be alive before fail-back.
    pub failback_hold_ms: u64,
    /// At start, how long to wait for unheard peers before taking streams over.
    pub settle_ms: u64,
    /// Minority restraint: a node seeing fewer than half of the cluster takes nothing over.
    pub minority_restraint: bool,
    /// A gap between two ticks longer than this was a pause of this node (rule 5): the
    /// mesh's threshold for its peers, `mesh::view::pause_after_ms`.
    pub pause_after_ms: u64,
    /// A rule broken on purpose (the simulator's checks of its checks).
    #[cfg(feature = "sabotage")]
    pub sabotage: Option<super::sabotage::Sabotage>,
}

/// What the coordinator must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start capturing `stream` here with `epoch`.
    Start {
        /// The stream.
        stream: String,
        /// Its new capture epoch.
        epoch: u64,
    },
    /// Stop capturing `stream` here.
    Stop {
        /// The stream.
        stream: String,
        /// Why, for the log and the table.
        reason: String,
    },
}

/// A capture running on this node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capture {
    /// Its epoch.
    pub epoch: u64,
    /// Unix ms it started.
    pub started_ms: u64,
    /// Frames have flowed at least once.
    pub ever_alive: bool,
    /// Unix ms frames were last seen flowing (0: never).
    pub last_alive_ms: u64,
    /// Restart count of its actor when it started, and the times of later restarts.
    restarts_seen: Option<u64>,
    restart_times_ms: Vec<u64>,
    /// The owner it is placed with elsewhere, and since when that owner has advertised
    /// its capture started: the hand-over deadline runs from there. Counting from the
    /// moment this node first placed the stream elsewhere would let the deadline expire
    /// before an owner that started late (views agreeing late) had its start deadline
    /// to get frames, leaving the stream without a capture.
    pub handover: Option<(String, u64)>,
}

/// Why a stream is owned where it is, for the ownership table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OwnerReason {
    /// Its `capture_at` node.
    Preferred,
    /// Its current capturer keeps it.
    Kept,
    /// Rendezvous hashing.
    Hashed,
    /// No node may capture it (every candidate failed it, is full, or is down).
    NoCandidate,
}

/// One row of the ownership table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The stream.
    pub stream: String,
    /// Where placement puts it.
    pub owner: Option<String>,
    /// Its `capture_at`, as configured.
    pub capture_at: Option<String>,
    /// Why there.
    pub reason: OwnerReason,
    /// Unix ms since the owner is what it is (as seen by this node).
    pub since_ms: u64,
    /// The node whose capture is current (highest epoch with frames flowing).
    pub capturer: Option<String>,
    /// The current capture's epoch (0: none yet).
    pub epoch: u64,
    /// This node's part: standby, capturing or failed.
    pub local: IngestRole,
    /// This node's epoch for the stream: its capture's, or the highest it has seen (with
    /// `local`, what it advertises).
    pub local_epoch: u64,
}

/// Which captures count when looking for the highest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Counting {
    /// Only captures with frames flowing: the current capture, which viewers are sent to.
    Flowing,
    /// Every capture, frames or not: who holds the stream for placement's stickiness (a
    /// source gap or an actor restart does not make a stream homeless).
    Any,
}

/// What every alive peer advertises about every configured stream, gathered once per
/// step: the rules ask it several times per stream, and a lookup by name in each peer's
/// map for each question made a step cost O(streams × peers × log streams) string
/// comparisons (the top of the profile with 100 streams).
struct PeerAdverts<'a> {
    /// `[stream × peers + peer]`, streams in `input.streams` order, peers in
    /// `input.peers` order.
    table: Vec<Option<Advertised>>,
    peers: usize,
    /// Where each configured stream is in `input.streams`.
    index: &'a AdvertIndex,
}

impl PeerAdverts<'_> {
    /// Whether some alive peer has frames of `stream` flowing.
    fn flowing_elsewhere(&self, stream: &str) -> bool {
        self.index.index_of(stream).is_some_and(|index| {
            self.of(index)
                .iter()
                .flatten()
                .any(|advertised| advertised.role == IngestRole::Capturing && advertised.alive)
        })
    }

    /// What each peer advertises about the stream at `stream_index`, in peer order.
    fn of(&self, stream_index: usize) -> &[Option<Advertised>] {
        &self.table[stream_index * self.peers..(stream_index + 1) * self.peers]
    }
}

/// This node's own state of each configured stream, by position (see
/// `IngestBook::own_by_position`).
struct OwnByPosition {
    /// Its capture here: the epoch, and whether frames flow.
    capture: Vec<Option<(u64, bool)>>,
    /// A failed mark holds it off this node.
    failed: Vec<bool>,
    /// The highest epoch this node has seen or used for it.
    epoch: Vec<u64>,
}

/// A peer's advertisement map as the book last took it in: shared until that peer's
/// state version moves, so a map seen before (same allocation) is neither folded into
/// the epochs again (epochs only grow: it would change nothing) nor looked up again.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PeerColumn {
    map: Arc<BTreeMap<String, Advertised>>,
    /// The map's entry for each configured stream, in configured order.
    column: Vec<Option<Advertised>>,
}

/// What the book keeps between steps to read the peers' adverts without a string-keyed
/// lookup per stream per peer per tick (with many streams that was the step's cost).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct AdvertIndex {
    /// The configured streams the positions are for, in order.
    names: Vec<String>,
    /// The list `names` was last checked against (the same list again needs no check).
    checked: Option<Arc<[Configured]>>,
    /// The positions in `names`, in name order: a map keyed by stream name is walked
    /// against them in name order, and a name found by bisection, without hashing a name
    /// (SipHash of every name a peer advertises, at every step, was a twentieth of it).
    sorted: Vec<usize>,
    /// The last step's peers' maps, with their columns.
    columns: Vec<PeerColumn>,
}

impl AdvertIndex {
    /// Follows the configured streams (a step's streams differ from the last one's only
    /// when the configuration does).
    /// `owners` (in the old configured order) follows into the new order by name.
    fn configure(
        &mut self,
        streams: &Arc<[Configured]>,
        owners: &mut Vec<Option<(Option<String>, u64)>>,
    ) {
        if self
            .checked
            .as_ref()
            .is_some_and(|checked| Arc::ptr_eq(checked, streams))
        {
            return;
        }
        self.checked = Some(streams.clone());
        let same = self.names.len() == streams.len()
            && self
                .names
                .iter()
                .zip(streams.iter())
                .all(|(a, b)| *a == b.name);
        if !same {
            let mut kept: HashMap<&str, Option<(Option<String>, u64)>> = self
                .names
                .iter()
                .map(String::as_str)
                .zip(owners.drain(..))
                .collect();
            *owners = streams
                .iter()
                .map(|stream| kept.remove(stream.name.as_str()).flatten())
                .collect();
            self.names = streams.iter().map(|stream| stream.name.clone()).collect();
            self.sorted = (0..self.names.len()).collect();
            self.sorted
                .sort_unstable_by(|a, b| self.names[*a].cmp(&self.names[*b]));
            self.columns.clear();
        }
    }
}

impl AdvertIndex {
    /// Where `stream` is among the configured streams.
    fn index_of(&self, stream: &str) -> Option<usize> {
        self.sorted
            .binary_search_by(|index| self.names[*index].as_str().cmp(stream))
            .ok()
            .map(|found| self.sorted[found])
    }

    /// Visits every entry of `map`, which must come in name order (a `BTreeMap`'s),
    /// with its stream's position among the configured streams (`None`: not one of
    /// them), walking both in name order.
    fn walk<'m, V>(
        &self,
        map: impl Iterator<Item = (&'m String, V)>,
        mut visit: impl FnMut(&'m String, Option<usize>, V),
    ) {
        let mut cursor = 0;
        for (name, value) in map {
            // One comparison per step of either side.
            let mut index = None;
            while let Some(&at) = self.sorted.get(cursor) {
                match self.names[at].cmp(name) {
                    Ordering::Less => cursor += 1,
                    Ordering::Equal => {
                        index = Some(at);
                        break;
                    }
                    Ordering::Greater => break,
                }
            }
            visit(name, index, value);
        }
    }
}

/// Raises `epochs` to at least each epoch of `seen` (a name-ordered walk, as
/// [`AdvertIndex::walk`] gives one): both are walked together in name order, one
/// comparison per step, and only names `epochs` does not hold yet are inserted (after
/// the walk). Epochs only grow.
struct EpochsRaise<'e> {
    known: std::iter::Peekable<std::collections::btree_map::IterMut<'e, String, u64>>,
    unknown: Vec<(String, u64)>,
}

impl<'e> EpochsRaise<'e> {
    fn new(epochs: &'e mut BTreeMap<String, u64>) -> EpochsRaise<'e> {
        EpochsRaise {
            known: epochs.iter_mut().peekable(),
            unknown: Vec::new(),
        }
    }

    /// `name` (not before the last name given) is at `epoch` somewhere.
    fn raise(&mut self, name: &String, epoch: u64) {
        loop {
            let Some((known, at)) = self.known.peek_mut() else {
                self.unknown.push((name.clone(), epoch));
                return;
            };
            match (*known).cmp(name) {
                Ordering::Less => {
                    self.known.next();
                }
                Ordering::Equal => {
                    **at = (**at).max(epoch);
                    return;
                }
                Ordering::Greater => {
                    self.unknown.push((name.clone(), epoch));
                    return;
                }
            }
        }
    }

    /// The names the walk did not find, to insert.
    fn finish(self) -> Vec<(String, u64)> {
        self.unknown
    }
}

/// The highest (epoch, node) capturing one stream at an alive peer, counting every
/// capture and only those with frames flowing: found in one pass over what the peers
/// advertise about it, which the rules then ask several times.
#[derive(Debug, Clone, Copy, Default)]
struct PeerTops<'a> {
    any: Option<(u64, &'a str)>,
    flowing: Option<(u64, &'a str)>,
}

impl<'a> PeerTops<'a> {
    /// Over `adverts`, in `input.peers` order.
    fn of(input: &StepInput<'a>, adverts: &[Option<Advertised>]) -> PeerTops<'a> {
        let mut tops = PeerTops::default();
        for (peer, advertised) in input.peers.iter().zip(adverts) {
            let Some(advertised) = advertised else {
                continue;
            };
            if advertised.role != IngestRole::Capturing {
                continue;
            }
            let capture = Some((advertised.epoch, peer.name.as_str()));
            tops.any = tops.any.max(capture);
            if advertised.alive {
                tops.flowing = tops.flowing.max(capture);
            }
        }
        tops
    }

    /// The highest peer capture counting as `counting` asks.
    fn counting(&self, counting: Counting) -> Option<(u64, &'a str)> {
        match counting {
            Counting::Any => self.any,
            Counting::Flowing => self.flowing,
        }
    }

    /// The highest capture here or at a peer, counting as `counting` asks. `here`: this
    /// node's capture of the stream, if any (its epoch, and whether its frames flow),
    /// looked up once by the caller.
    fn with_here(
        &self,
        input: &StepInput<'a>,
        here: Option<(u64, bool)>,
        counting: Counting,
    ) -> Option<(u64, &'a str)> {
        let mine = here
            .filter(|(_, flowing)| counting == Counting::Any || *flowing)
            .map(|(epoch, _)| (epoch, input.me.name.as_str()));
        mine.max(self.counting(counting))
    }
}

/// What a node advertises about a stream: its capture's epoch while it captures it;
/// else, with the highest epoch it has seen or used, whether it is marked failed there.
fn advertised_as(capture_epoch: Option<u64>, failed_here: bool, epoch: u64) -> (IngestRole, u64) {
    match capture_epoch {
        Some(epoch) => (IngestRole::Capturing, epoch),
        None if failed_here => (IngestRole::Failed, epoch),
        None => (IngestRole::Standby, epoch),
    }
}

/// The member `capture_at` names — by its identity (`host:port`) or by one of its
/// aliases, compared ignoring ASCII case; never by a bare host when the member's names
/// have ports, since several nodes may share a host — remembered in `resolved` per
/// distinct `capture_at` written.
fn resolve_capture_at<'s, 'm>(
    resolved: &mut Vec<(&'s str, Option<&'m str>)>,
    member_names: &[(&'m str, Vec<&str>)],
    capture_at: &'s str,
) -> Option<&'m str> {
    if let Some((_, node)) = resolved.iter().find(|(seen, _)| *seen == capture_at) {
        return *node;
    }
    let node = member_names
        .iter()
        .find(|(_, names)| {
            names
                .iter()
                .any(|name| name.eq_ignore_ascii_case(capture_at))
        })
        .map(|(name, _)| *name);
    resolved.push((capture_at, node));
    node
}

/// The coordinator's memory between steps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestBook {
    settings: Option<BookSettings>,
    started_ms: u64,
    captures: BTreeMap<String, Capture>,
    failed_until_ms: BTreeMap<String, u64>,
    /// Failed marks taken while no other node had frames either: the source may have
    /// been down for everyone rather than unreachable from here.
    failed_while_down: BTreeSet<String>,
    epochs: BTreeMap<String, u64>,
    /// The peers' maps taken in at the last step, indexed by configured stream.
    adverts: AdvertIndex,
    /// Per configured stream (in configured order, as `adverts.names`): its owner at the
    /// last step and since when (`None`: not placed yet).
    owners: Vec<Option<(Option<String>, u64)>>,
    restrained: bool,
    settled: bool,
    /// The last step found peers unconfirmed after a pause of this node (rule 5).
    resuming: bool,
    /// Unix ms of the last tick, stepped or let pass (0: none yet): a gap above
    /// `pause_after_ms` to the next one was a pause (rule 5).
    last_tick_ms: u64,
    /// Lets unchanged ticks pass ([`IngestBook::step_if_changed`]).
    quiet: QuietWatch,
    /// [`IngestBook::decision_state_hash`] as the last step left the book (`None` once
    /// anything changed it since): the next step's "before" without hashing again.
    state_hash: Option<u64>,
}

impl IngestBook {
    /// A book for a coordinator started at `started_ms`.
    pub fn new(settings: BookSettings, started_ms: u64) -> IngestBook {
        IngestBook {
            settings: Some(settings),
            started_ms,
            ..IngestBook::default()
        }
    }

    fn settings(&self) -> BookSettings {
        self.settings.unwrap_or(BookSettings {
            failback_hold_ms: 0,
            settle_ms: 0,
            minority_restraint: false,
            pause_after_ms: u64::MAX,
            #[cfg(feature = "sabotage")]
            sabotage: None,
        })
    }

    /// The captures running here.
    pub fn captures(&self) -> &BTreeMap<String, Capture> {
        &self.captures
    }

    /// Whether the source of `stream` is marked failed here at `now_ms`.
    pub fn failed_here(&self, stream: &str, now_ms: u64) -> bool {
        self.failed_until_ms
            .get(stream)
            .is_some_and(|until| *until > now_ms)
    }

    /// The highest epoch this node has seen or used for `stream`.
    pub fn epoch(&self, stream: &str) -> u64 {
        self.epochs.get(stream).copied().unwrap_or(0)
    }

    /// This node sees fewer than half of the cluster and minority restraint is on.
    pub fn restrained(&self) -> bool {
        self.restrained
    }

    /// Start-up settle done: this node takes streams over.
    pub fn settled(&self) -> bool {
        self.settled
    }

    /// The last step found peers not heard since this node resumed from a pause: it
    /// takes nothing until they are heard or gone (rule 5).
    pub fn resuming(&self) -> bool {
        self.resuming
    }

    /// Whether `now_ms` comes after a pause of this node: longer than
    /// [`BookSettings::pause_after_ms`] since its last tick.
    fn pause_before(&self, now_ms: u64) -> Option<u64> {
        let gap_ms = now_ms.saturating_sub(self.last_tick_ms);
        (self.last_tick_ms != 0 && gap_ms > self.settings().pause_after_ms).then_some(gap_ms)
    }

    /// A tick at `now_ms`: after a pause, the captures' start and silence deadlines move
    /// on by the pause (rule 5: no capture could get frames while the node did not run),
    /// and so does the start-up settle of a node that has not settled (it heard nothing
    /// while it did not run: a node paused just after its start would otherwise resume
    /// settled, and take streams from peers it has never heard).
    fn tick_at(&mut self, now_ms: u64) {
        if let Some(gap_ms) = self.pause_before(now_ms) {
            if !self.settled {
                self.started_ms = self.started_ms.saturating_add(gap_ms);
            }
            for capture in self.captures.values_mut() {
                capture.started_ms = capture.started_ms.saturating_add(gap_ms);
                if capture.last_alive_ms != 0 {
                    capture.last_alive_ms = capture.last_alive_ms.saturating_add(gap_ms);
                }
            }
            self.state_hash = None;
        }
        self.last_tick_ms = self.last_tick_ms.max(now_ms);
    }

    /// What this node advertises about `stream`.
    pub fn advertised(&self, stream: &str, now_ms: u64) -> (IngestRole, u64) {
        let capture_epoch = self.captures.get(stream).map(|capture| capture.epoch);
        advertised_as(
            capture_epoch,
            self.failed_here(stream, now_ms),
            self.epoch(stream),
        )
    }

    /// This node's own state of each configured stream, by position in `input.streams`
    /// (as of the moment of the step that calls it).
    fn own_by_position(&self, input: &StepInput<'_>) -> OwnByPosition {
        let count = input.streams.len();
        let mut own = OwnByPosition {
            capture: vec![None; count],
            failed: vec![false; count],
            epoch: vec![0; count],
        };
        let index = &self.adverts;
        // The health is keyed by the captures (the coordinator's): walked along.
        let mut health = input.health.iter().peekable();
        index.walk(self.captures.iter(), |name, at, capture| {
            while health.next_if(|(stream, _)| *stream < name).is_some() {}
            if let Some(at) = at {
                let flowing = health
                    .peek()
                    .is_some_and(|(stream, health)| *stream == name && health.alive);
                own.capture[at] = Some((capture.epoch, flowing));
            }
        });
        index.walk(self.failed_until_ms.iter(), |_, at, until_ms| {
            if let Some(at) = at
                && *until_ms > input.now_ms
            {
                own.failed[at] = true;
            }
        });
        index.walk(self.epochs.iter(), |_, at, epoch| {
            if let Some(at) = at {
                own.epoch[at] = *epoch;
            }
        });
        own
    }

    /// Takes in a capture that runs already (the coordinator restarted under it).
    pub fn adopt(&mut self, stream: &str, epoch: u64, now_ms: u64) {
        self.changed_outside_a_step();
        let known = self.epochs.entry(stream.to_string()).or_default();
        *known = (*known).max(epoch);
        self.captures.insert(
            stream.to_string(),
            Capture {
                epoch,
                started_ms: now_ms,
                ever_alive: true,
                last_alive_ms: now_ms,
                restarts_seen: None,
                restart_times_ms: Vec::new(),
                handover: None,
            },
        );
    }

    /// Takes in what the previous incarnation of the coordinator knew about a stream it
    /// did not capture: the epoch it had seen, and whether it was failed here.
    pub fn remember(&mut self, stream: &str, epoch: u64, failed: bool, now_ms: u64) {
        self.changed_outside_a_step();
        let known = self.epochs.entry(stream.to_string()).or_default();
        *known = (*known).max(epoch);
        if failed {
            self.failed_until_ms
                .insert(stream.to_string(), now_ms + FAILED_HOLD_MS);
        }
    }

    /// A start the book asked for did not happen: forget the capture.
    pub fn start_failed(&mut self, stream: &str, now_ms: u64) {
        self.changed_outside_a_step();
        if self.captures.remove(stream).is_some() {
            self.failed_until_ms
                .insert(stream.to_string(), now_ms + FAILED_HOLD_MS);
        }
    }

    /// The book changed outside a step: the next tick steps, and hashes the state anew.
    fn changed_outside_a_step(&mut self) {
        self.quiet.reset();
        self.state_hash = None;
    }

    fn hold_for(&self, member: &Member, now_ms: u64, wake: &mut Wake) -> u64 {
        let hold = self.settings().failback_hold_ms;
        let recent = member
            .returns_ms
            .iter()
            .filter(|at| {
                wake.at(at.saturating_add(FLAP_WINDOW_MS));
                now_ms.saturating_sub(**at) < FLAP_WINDOW_MS
            })
            .count();
        if recent >= FLAP_RETURNS {
            hold * FLAP_HOLD_FACTOR
        } else {
            hold
        }
    }

    /// A step on `input`, unless the last steps saw the same input and nothing can have
    /// changed since (see the `quiet` module): then `None`, and the last actions
    /// and table still stand.
    pub fn step_if_changed(&mut self, input: &StepInput<'_>) -> Option<(Vec<Action>, Vec<Row>)> {
        if self.pause_before(input.now_ms).is_some() {
            // A pause moves the captures' deadlines (rule 5): a change of the book.
            self.changed_outside_a_step();
        }
        if self.quiet.holds(input, self.counts()) {
            self.idle(input);
            return None;
        }
        Some(self.step(input))
    }

    /// Whether the next step reads the counts of the cluster's nodes (see `Counts`).
    fn counts(&self) -> Counts {
        if self.settled && !self.settings().minority_restraint {
            Counts::Ignored
        } else {
            Counts::Read
        }
    }

    /// A tick let pass: what a step would still have done, captures with frames flowing
    /// were seen alive now.
    ///
    /// The coordinator keys the health by the captures, so both are walked together in
    /// name order rather than looked up by name.
    fn idle(&mut self, input: &StepInput<'_>) {
        self.last_tick_ms = self.last_tick_ms.max(input.now_ms);
        let mut health = input.health.iter().peekable();
        for (name, capture) in &mut self.captures {
            while health.next_if(|(stream, _)| *stream < name).is_some() {}
            if health
                .peek()
                .is_some_and(|(stream, health)| *stream == name && health.alive)
            {
                capture.last_alive_ms = input.now_ms;
            }
        }
    }

    /// One step: update the book from `input` and say what to start and stop. Returns
    /// the actions and the ownership table.
    pub fn step(&mut self, input: &StepInput<'_>) -> (Vec<Action>, Vec<Row>) {
        self.tick_at(input.now_ms);
        let before = self
            .state_hash
            .take()
            .unwrap_or_else(|| self.decision_state_hash());
        let counts = self.counts();
        let mut wake = Wake::after(input.now_ms);
        let (actions, rows) = self.step_noting(input, &mut wake);
        let after = self.decision_state_hash();
        self.state_hash = Some(after);
        let kept_state = after == before;
        self.quiet
            .stepped(input, counts, actions.is_empty(), kept_state, wake);
        (actions, rows)
    }

    /// A hash of everything a step reads from the book to decide and may change: a step
    /// that leaves it unchanged left the book as the next step on the same input needs
    /// it to decide the same (see `quiet`). Left out:
    /// - the liveness times a step (and [`IngestBook::idle`]) overwrite before reading
    ///   them, and the adverts index (a cache of the input);
    /// - the epochs seen: a step first takes in every epoch of the input (a maximum, so
    ///   a second step on the same input takes in nothing new), and changes them
    ///   otherwise only with a start (an action) or by fencing a capture (its epoch is
    ///   hashed);
    /// - the owners' `since`: only the table reads it, and the owner it belongs to is a
    ///   function of the input and the hashed state, so the next step keeps it.
    ///
    /// The last two, hashed, cost a second step after most changes of a peer's adverts (a
    /// fifth of a simulated cluster's steps). 64 bits ([`StateHasher`]): two different
    /// states colliding is a 2^-64 event per step.
    fn decision_state_hash(&self) -> u64 {
        let mut hasher = StateHasher::default();
        self.started_ms.hash(&mut hasher);
        self.settled.hash(&mut hasher);
        self.restrained.hash(&mut hasher);
        self.resuming.hash(&mut hasher);
        self.failed_until_ms.hash(&mut hasher);
        self.failed_while_down.hash(&mut hasher);
        self.captures.len().hash(&mut hasher);
        for (name, capture) in &self.captures {
            // Not `last_alive_ms`: a step sets it to now for a capture with frames
            // before reading it, and leaves it otherwise.
            name.hash(&mut hasher);
            capture.epoch.hash(&mut hasher);
            capture.started_ms.hash(&mut hasher);
            capture.ever_alive.hash(&mut hasher);
            capture.restarts_seen.hash(&mut hasher);
            capture.restart_times_ms.hash(&mut hasher);
            capture.handover.hash(&mut hasher);
        }
        hasher.finish()
    }

    /// [`IngestBook::step`], noting in `wake` every moment a time rule compares `now` with.
    fn step_noting(&mut self, input: &StepInput<'_>, wake: &mut Wake) -> (Vec<Action>, Vec<Row>) {
        let now_ms = input.now_ms;
        let settings = self.settings();
        let mut actions = Vec::new();
        self.failed_until_ms.retain(|_, until| {
            wake.at(*until);
            *until > now_ms
        });
        if !self.settled && input.peers_unheard != 0 {
            wake.at(self.started_ms.saturating_add(settings.settle_ms));
        }
        self.settled = self.settled
            || input.peers_unheard == 0
            || now_ms.saturating_sub(self.started_ms) >= settings.settle_ms;
        // Minority restraint counts only the peers heard recently: cut off from the rest,
        // a node sees its peers go stale one by one, up to a fetch interval apart, and
        // must not take over while it still counts the last ones.
        let heard = input.peers.len().saturating_sub(input.peers_fading) + 1;
        self.restrained = settings.minority_restraint && heard * 2 < input.cluster_size;
        let heard_majority = heard * 2 > input.cluster_size;
        // Rule 5: after a pause, nothing is taken until every peer is heard again or gone.
        self.resuming = input.peers_unconfirmed != 0;

        // Epochs only grow: take in every epoch the peers advertise (each map once), and
        // index what each peer advertises by configured stream.
        self.adverts.configure(input.streams, &mut self.owners);
        let mut columns = Vec::with_capacity(input.peers.len());
        for peer in input.peers.iter() {
            let known = self
                .adverts
                .columns
                .iter()
                .position(|seen| Arc::ptr_eq(&seen.map, &peer.streams));
            let column = match known {
                Some(index) => self.adverts.columns.swap_remove(index),
                None => {
                    let mut column = vec![None; self.adverts.names.len()];
                    let mut epochs = EpochsRaise::new(&mut self.epochs);
                    self.adverts
                        .walk(peer.streams.iter(), |name, at, advertised| {
                            epochs.raise(name, advertised.epoch);
                            if let Some(at) = at {
                                column[at] = Some(*advertised);
                            }
                        });
                    for (name, epoch) in epochs.finish() {
                        let known = self.epochs.entry(name).or_default();
                        *known = (*known).max(epoch);
                    }
                    PeerColumn {
                        map: peer.streams.clone(),
                        column,
                    }
                }
            };
            columns.push(column);
        }
        let mut table = vec![None; input.streams.len() * columns.len()];
        for (peer_index, peer) in columns.iter().enumerate() {
            for (stream_index, advertised) in peer.column.iter().enumerate() {
                table[stream_index * columns.len() + peer_index] = *advertised;
            }
        }
        self.adverts.columns = columns;
        let adverts = PeerAdverts {
            table,
            peers: input.peers.len(),
            index: &self.adverts,
        };
        // A mark taken while the source was down for everyone ends once another node has
        // frames again: this node is a candidate again (its capture_at preference comes
        // back). A source really unreachable from here is marked again after one probe,
        // now with frames elsewhere, for the full hold.
        let back: Vec<String> = self
            .failed_while_down
            .iter()
            .filter(|stream| adverts.flowing_elsewhere(stream))
            .cloned()
            .collect();
        for stream in back {
            self.failed_until_ms.remove(&stream);
            self.failed_while_down.remove(&stream);
        }
        self.failed_while_down
            .retain(|stream| self.failed_until_ms.contains_key(stream));

        // Rule 3: captures whose source keeps failing here.
        for (name, capture) in &mut self.captures {
            let health = input.health.get(name).copied().unwrap_or_default();
            capture.ever_alive |= health.alive;
            if health.alive {
                capture.last_alive_ms = now_ms;
            }
            match capture.restarts_seen {
                Some(seen) if health.restarts > seen => capture.restart_times_ms.push(now_ms),
                _ => {}
            }
            capture.restarts_seen = Some(health.restarts);
            capture.restart_times_ms.retain(|at| {
                wake.at(at.saturating_add(FAILURE_WINDOW_MS));
                now_ms.saturating_sub(*at) < FAILURE_WINDOW_MS
            });
            // Restarts count against the source only while the current incarnation has
            // no frames: a restart that reached the source (a camera back after an
            // outage, just as the restart bound was reached) is a recovery, and a mark
            // taken then would keep the stream from the one node that reaches it. The
            // newest restart started the current incarnation: it counts once that
            // incarnation had its grace to get a frame.
            let mut judged_restarts = capture.restart_times_ms.len();
            if let Some(newest) = capture.restart_times_ms.last() {
                let judged_from_ms = newest.saturating_add(FIRST_FRAME_GRACE_MS);
                if now_ms < judged_from_ms {
                    wake.at(judged_from_ms);
                    judged_restarts -= 1;
                }
            }
            let restarting = judged_restarts >= MAX_CAPTURE_RESTARTS && !health.frames_since_start;
            let silent_from_ms = if capture.ever_alive {
                capture.last_alive_ms.saturating_add(CAPTURE_SILENCE_MS)
            } else {
                capture.started_ms.saturating_add(CAPTURE_START_DEADLINE_MS)
            };
            wake.at(silent_from_ms);
            let silent = now_ms >= silent_from_ms;
            if restarting || silent {
                let why = if restarting {
                    format!(
                        "source failed here: {} restarts within {} s",
                        capture.restart_times_ms.len(),
                        FAILURE_WINDOW_MS / 1000
                    )
                } else if capture.ever_alive {
                    format!(
                        "source failed here: no frames for {} s",
                        CAPTURE_SILENCE_MS / 1000
                    )
                } else {
                    format!(
                        "source failed here: no frames within {} s",
                        CAPTURE_START_DEADLINE_MS / 1000
                    )
                };
                let hold_ms = if adverts.flowing_elsewhere(name) {
                    self.failed_while_down.remove(name);
                    FAILED_HOLD_MS
                } else {
                    self.failed_while_down.insert(name.clone());
                    FAILED_WHILE_DOWN_HOLD_MS
                };
                self.failed_until_ms.insert(name.clone(), now_ms + hold_ms);
                actions.push(Action::Stop {
                    stream: name.clone(),
                    reason: why,
                });
            }
        }
        for action in &actions {
            if let Action::Stop { stream, .. } = action {
                self.captures.remove(stream);
            }
        }

        // By configured position, what the rules below read of this node's own maps: a
        // lookup by name per stream per step (captures twice, epochs, failed marks) was a
        // fifth of a step; one lookup per capture, mark and epoch fills them instead. The
        // loop below changes a stream's entries only at its own position, after reading
        // them.
        let positions = self.own_by_position(input);

        // Placement over this node and the alive peers.
        let mut members: Vec<&Member> = input.peers.iter().collect();
        members.push(&**input.me);
        let candidates: Vec<Candidate> = members
            .iter()
            .map(|member| {
                let hold = self.hold_for(member, now_ms, wake);
                // Shifting the start by the extra hold makes a flapping node wait longer.
                let healthy_since_ms = member
                    .alive_since_ms
                    .saturating_add(hold - settings.failback_hold_ms);
                // Placement's one time rule: healthy for the hold.
                wake.at(healthy_since_ms.saturating_add(settings.failback_hold_ms));
                Candidate {
                    name: member.name.clone(),
                    healthy_since_ms,
                    channel_limit: member.channel_limit,
                    over_cpu_limit: member.over_cpu_limit,
                }
            })
            .collect();
        // Every name `capture_at` may use for a member: its identity and its aliases.
        let member_names: Vec<(&str, Vec<&str>)> = members
            .iter()
            .map(|member| {
                let names = std::iter::once(&member.name)
                    .chain(&member.aliases)
                    .map(String::as_str)
                    .collect();
                (member.name.as_str(), names)
            })
            .collect();
        // Resolved once per distinct `capture_at` (a few nodes' names, written on many
        // streams), not once per stream.
        let mut resolved: Vec<(&str, Option<&str>)> = Vec::new();
        // By configured stream: whether its capture here has frames flowing (`None`: no
        // capture here before placement), for the table after it without a second lookup.
        let mut flowing_here: Vec<Option<bool>> = Vec::with_capacity(input.streams.len());
        // By configured stream: its highest captures at peers, for the table after it.
        let mut peer_tops: Vec<PeerTops<'_>> = Vec::with_capacity(input.streams.len());
        let placed_streams: Vec<IngestStream> = input
            .streams
            .iter()
            .enumerate()
            .map(|(index, stream)| {
                let mut excluded: Vec<Cow<'_, str>> = input
                    .peers
                    .iter()
                    .zip(adverts.of(index))
                    .filter(|(_, advertised)| {
                        advertised.is_none_or(|advertised| {
                            matches!(advertised.role, IngestRole::None | IngestRole::Failed)
                        })
                    })
                    .map(|(peer, _)| Cow::Borrowed(peer.name.as_str()))
                    .collect();
                if positions.failed[index] {
                    excluded.push(Cow::Borrowed(input.me.name.as_str()));
                }
                let mine = positions.capture[index];
                flowing_here.push(mine.map(|(_, flowing)| flowing));
                let tops = PeerTops::of(input, adverts.of(index));
                peer_tops.push(tops);
                // Who holds the stream, for placement's stickiness.
                let captured_by = tops
                    .with_here(input, mine, Counting::Any)
                    .map(|(_, node)| Cow::Borrowed(node));
                // Whose capture has frames now, for placement's shares.
                let flowing_at = tops
                    .with_here(input, mine, Counting::Flowing)
                    .map(|(_, node)| Cow::Borrowed(node));
                let no_failback =
                    super::sabotaged!(settings.sabotage, NoFailback) && captured_by.is_some();
                IngestStream {
                    name: Cow::Borrowed(stream.name.as_str()),
                    // An unresolvable capture_at (that node is down) is simply no preference.
                    capture_at: stream
                        .capture_at
                        .as_deref()
                        .and_then(|at| resolve_capture_at(&mut resolved, &member_names, at))
                        .map(Cow::Borrowed)
                        .filter(|_| !no_failback),
                    excluded,
                    captured_by,
                    flowing_at,
                }
            })
            .collect();
        // By configured stream, as `input.streams`.
        let placement = place_each(
            &placed_streams,
            &candidates,
            now_ms,
            settings.failback_hold_ms,
        );

        let mut rows = Vec::with_capacity(input.streams.len());
        for (index, stream) in input.streams.iter().enumerate() {
            let name = &stream.name;
            let peer_adverts = adverts.of(index);
            let placed = placement[index];
            let owner = placed.map(|(node, _)| node.to_string());
            // What the owner, when it is a peer, advertises about this stream.
            let owner_advert = owner.as_deref().and_then(|owner| {
                input
                    .peers
                    .iter()
                    .zip(peer_adverts)
                    .find(|(peer, _)| peer.name == owner)
                    .and_then(|(_, advertised)| *advertised)
            });
            let reason = match placed {
                Some((_, Reason::Preferred)) => OwnerReason::Preferred,
                Some((_, Reason::Kept)) => OwnerReason::Kept,
                Some((_, Reason::Hashed)) => OwnerReason::Hashed,
                None => OwnerReason::NoCandidate,
            };
            // By position: a lookup by name per stream per step was a fifth of a step.
            let since = match &mut self.owners[index] {
                Some((previous, since)) if *previous == owner => *since,
                slot => {
                    *slot = Some((owner.clone(), now_ms));
                    now_ms
                }
            };
            let second_choice = || {
                members
                    .iter()
                    .map(|member| member.name.as_str())
                    .filter(|name| Some(*name) != owner.as_deref())
                    .min()
            };
            let owner_is_me = owner.as_deref() == Some(input.me.name.as_str())
                || (super::sabotaged!(settings.sabotage, DoubleCapture)
                    && owner.is_some()
                    && second_choice() == Some(input.me.name.as_str()));
            // A node still settling after a start may already take a stream that prefers
            // it and that no peer it hears captures, once it hears a majority: its peers
            // place such a stream on it at once, so waiting would leave it uncaptured (and
            // a node restarting faster than the settle time would hold it hostage).
            let unclaimed_preference =
                matches!(placed, Some((_, Reason::Preferred))) && peer_tops[index].any.is_none();
            let may_take =
                (self.settled || (heard_majority && unclaimed_preference)) && !self.resuming;
            // This node's capture epoch of the stream once the rules ran (`None`: none).
            let held = positions.capture[index].and_then(|_| self.captures.get_mut(name));
            let capture_epoch = match held {
                None if owner_is_me && may_take && !self.restrained => {
                    // Rule 1: a new capture, above every epoch seen.
                    let epoch = positions.epoch[index].saturating_add(1);
                    self.epochs.insert(name.clone(), epoch);
                    self.captures.insert(
                        name.clone(),
                        Capture {
                            epoch,
                            started_ms: now_ms,
                            ever_alive: false,
                            last_alive_ms: 0,
                            restarts_seen: input.health.get(name).map(|h| h.restarts),
                            restart_times_ms: Vec::new(),
                            handover: None,
                        },
                    );
                    actions.push(Action::Start {
                        stream: name.clone(),
                        epoch,
                    });
                    Some(epoch)
                }
                None => None,
                Some(capture) if owner_is_me => {
                    capture.handover = None;
                    // Fencing: a capture elsewhere above ours (a partition healed) must not
                    // stay the current one while we own the stream: we take a new epoch.
                    let ours = (capture.epoch, input.me.name.as_str());
                    // Not while resuming (rule 5): a capture above ours may be the one
                    // that took the stream over while this node was paused.
                    let above = peer_tops[index].flowing.filter(|theirs| *theirs > ours);
                    if let Some(higher) = above.filter(|_| !self.resuming) {
                        capture.epoch = higher.0.saturating_add(1);
                        self.epochs.insert(name.clone(), capture.epoch);
                    }
                    Some(capture.epoch)
                }
                Some(capture) if owner.is_none() => {
                    // Nobody else may take it: keep it.
                    capture.handover = None;
                    Some(capture.epoch)
                }
                Some(capture) => {
                    // Rule 2: make before break. Captures are ordered by (epoch, node): ours
                    // ends once a capture above it has frames flowing, whoever holds it (views
                    // may disagree on the owner for a while; waiting for "our" owner could
                    // keep two captures running until they agree). The highest flowing capture
                    // never ends here, so the stream is never left without one.
                    let owner = owner.as_deref().unwrap_or_default();
                    let ours = (capture.epoch, input.me.name.as_str());
                    let above = peer_tops[index].flowing.filter(|theirs| *theirs > ours);
                    let owner_started = owner_advert
                        .is_some_and(|advertised| advertised.role == IngestRole::Capturing);
                    let since = match &capture.handover {
                        Some((to, since)) if owner_started && to == owner => Some(*since),
                        _ if owner_started => {
                            capture.handover = Some((owner.to_string(), now_ms));
                            Some(now_ms)
                        }
                        _ => {
                            capture.handover = None;
                            None
                        }
                    };
                    if let Some(since) = since {
                        wake.at(since.saturating_add(HANDOVER_DEADLINE_MS));
                    }
                    let reason = match above {
                        Some((_, by)) if by == owner => Some(format!("handed over to {owner}")),
                        Some((_, by)) => Some(format!("superseded by {by}'s capture")),
                        None if since.is_some_and(|since| {
                            now_ms.saturating_sub(since) >= HANDOVER_DEADLINE_MS
                        }) =>
                        {
                            Some(format!(
                                "hand-over deadline: {owner} started it but had no frames within {} s",
                                HANDOVER_DEADLINE_MS / 1000
                            ))
                        }
                        None => None,
                    };
                    match reason {
                        Some(reason) => {
                            self.captures.remove(name);
                            actions.push(Action::Stop {
                                stream: name.clone(),
                                reason,
                            });
                            None
                        }
                        None => Some(capture.epoch),
                    }
                }
            };
            let (local, local_epoch) = advertised_as(
                capture_epoch,
                positions.failed[index],
                positions.epoch[index],
            );
            // Frames of a capture placement saw were looked up then; a capture started
            // just now is looked up here.
            let mine = capture_epoch.map(|epoch| {
                let flowing = flowing_here[index]
                    .unwrap_or_else(|| input.health.get(name).is_some_and(|health| health.alive));
                (epoch, flowing)
            });
            let current = peer_tops[index].with_here(input, mine, Counting::Flowing);
            rows.push(Row {
                stream: name.clone(),
                owner,
                capture_at: stream.capture_at.clone(),
                reason,
                since_ms: since,
                capturer: current.map(|(_, node)| node.to_string()),
                epoch: current.map_or(0, |(epoch, _)| epoch),
                local,
                local_epoch,
            });
        }
        // Streams no longer configured here stop.
        let mut unconfigured: Vec<String> = Vec::new();
        self.adverts.walk(self.captures.iter(), |name, at, _| {
            if at.is_none() {
                unconfigured.push(name.clone());
            }
        });
        for name in unconfigured {
            self.captures.remove(&name);
            actions.push(Action::Stop {
                stream: name,
                reason: "no longer configured here".into(),
            });
        }
        (actions, rows)
    }
}
