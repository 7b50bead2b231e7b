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

mod adverts;
mod step;

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use serde::Serialize;

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
/// keeps them from tick to tick and replaces one only when it changed, so `quiet` finds
/// an unchanged part by its address before comparing values.
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

impl OwnerReason {
    /// Its name as the APIs write it.
    pub fn name(self) -> &'static str {
        match self {
            OwnerReason::Preferred => "preferred",
            OwnerReason::Kept => "kept",
            OwnerReason::Hashed => "hashed",
            OwnerReason::NoCandidate => "no_candidate",
        }
    }
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
    /// Per configured stream: its owner at the last step (`None`: no candidate) and
    /// since when.
    owners: BTreeMap<String, (Option<String>, u64)>,
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

    /// The configured streams changed (a reload): the next tick steps.
    pub fn configuration_changed(&mut self) {
        self.changed_outside_a_step();
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
    ///   them;
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
}
