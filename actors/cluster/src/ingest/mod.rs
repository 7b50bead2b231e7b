//! The cluster_ingest coordinator: decides which cluster_ingest streams this node
//! captures, and makes it so through the `streams` supervisor.
//!
//! Every tick it reads the cluster view and the health of its captures, runs one step of
//! the [`book`] (pure: [`placement`] plus make-before-break, epochs, failure marks and
//! restraint), then applies the actions: taking a stream over is the `streams`
//! supervisor starting its stream actor; giving it up is the supervisor stopping it. The
//! [`board`] carries the result to the rest of the node (mesh advertisement, HTTP API,
//! the `streams` supervisor's own rebuild after a restart).

/// Whether `$sabotage` (an `Option<Sabotage>` field) breaks rule `$rule` on purpose:
/// always `false`, and the field never read, without the `sabotage` feature, so the
/// node's release binary has no sabotage branch.
macro_rules! sabotaged {
    ($sabotage:expr, $rule:ident) => {{
        #[cfg(feature = "sabotage")]
        let broken = $sabotage == Some($crate::ingest::sabotage::Sabotage::$rule);
        #[cfg(not(feature = "sabotage"))]
        let broken = false;
        broken
    }};
}
pub(crate) use sabotaged;

pub mod board;
pub mod book;
pub mod placement;
mod quiet;
#[cfg(feature = "sabotage")]
pub mod sabotage;
mod seen;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ractor::ActorProcessingErr;

use self::board::{BoardState, IngestBoard, LocalPart};
use self::book::{Action, BookSettings, Configured, Health, IngestBook, Row};
use self::seen::ClusterSeen;
use crate::mesh::view::{ClusterView, IngestRole};
use crate::stream::StreamMedia;
use crate::tree::{NodePlan, StreamPlan, stream_child};
use flotilla_otp::registry::{ActorPath, Entry};
use flotilla_otp::supervisor::{SupervisorError, SupervisorMsg, supervisor_at};
use flotilla_otp::worker::{Handle, Worker};

/// A node's limits for cluster_ingest (`channel_limit`, `cpu_limit` of its `peer` entry).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IngestLimits {
    /// Most streams it captures.
    pub channel_limit: Option<u32>,
    /// CPU percent from which it takes nothing new.
    pub cpu_limit_percent: Option<u32>,
}

/// The coordinator's settings, from the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IngestPlan {
    /// This node's identity, `host:port` (the name placement uses).
    pub me: String,
    /// Other names `capture_at` may use for this node.
    pub aliases: Vec<String>,
    /// This node's limits.
    pub limits: IngestLimits,
    /// Peers' limits, by their node key (`host:port`).
    pub peer_limits: BTreeMap<String, IngestLimits>,
    /// How long a returning `capture_at` node must be alive before fail-back.
    pub failback_hold_ms: u64,
    /// At start, how long to wait for unheard peers before taking streams over.
    pub settle_ms: u64,
    /// How often the coordinator looks at the cluster.
    pub tick_ms: u64,
    /// Minority restraint (off by default: survivors take everything over).
    pub minority_restraint: bool,
    /// A gap between two ticks longer than this was a pause of this node (book rule 5;
    /// `None`: gaps are not looked at).
    pub pause_after_ms: Option<u64>,
    /// A rule broken on purpose (simulator only; see [`sabotage`]).
    #[cfg(feature = "sabotage")]
    pub sabotage: Option<sabotage::Sabotage>,
}

/// What the coordinator reads from the node.
pub trait IngestIo: Send + Sync + 'static {
    /// The cluster view (`None` without a mesh: this node is the whole cluster).
    fn view(&self) -> Option<Arc<RwLock<ClusterView>>>;
    /// This host's CPU usage, percent.
    fn cpu_usage(&self) -> f32;
    /// The frames of `stream` here at `now_ms` (`None`: it does not run here).
    fn frames(&self, stream: &str, now_ms: u64) -> Option<StreamFrames>;
}

/// A stream's frames as the coordinator reads them ([`IngestIo::frames`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamFrames {
    /// Frames are flowing here now.
    pub alive: bool,
    /// Unix ms of the last frame here (`None`: none yet).
    pub last_frame_ms: Option<u64>,
}

/// Ingest io for tests of the tree: no mesh, idle CPU, no frames.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoIngestIo;

impl IngestIo for NoIngestIo {
    fn view(&self) -> Option<Arc<RwLock<ClusterView>>> {
        None
    }
    fn cpu_usage(&self) -> f32 {
        0.0
    }
    fn frames(&self, _stream: &str, _now_ms: u64) -> Option<StreamFrames> {
        None
    }
}

/// The coordinator behaviour.
#[derive(Clone)]
pub struct IngestCoordinator {
    /// The node's side.
    pub io: Arc<dyn IngestIo>,
    /// The media plane, for the stream actors it starts.
    pub media: Arc<dyn StreamMedia>,
    /// Where decisions are published.
    pub board: IngestBoard,
    /// The node's plan: a reload replaces it (a new `revision`), and the next tick takes
    /// the new set of cluster_ingest streams — captures of streams still configured go
    /// on, streams no longer configured are stopped by the book.
    pub plan: crate::tree::SharedPlan,
}

/// Messages to the coordinator.
#[derive(Debug)]
pub enum IngestMsg {
    /// Time to look at the cluster again.
    Tick,
}

/// What the coordinator holds.
pub struct IngestState {
    plan: IngestPlan,
    /// The revision of the node plan `streams` was taken from.
    revision: u64,
    streams: BTreeMap<String, StreamPlan>,
    configured: Arc<[Configured]>,
    book: IngestBook,
    last_action: Option<String>,
    /// The cluster as the last tick saw it.
    seen: ClusterSeen,
    /// The `streams` supervisor's children as of the last [`IngestCoordinator::reconcile`]
    /// (`None`: reconcile at the next tick).
    reconciled: Option<ChildSetStamp>,
    /// The captures' health as of the last tick (shared with the book's last input:
    /// replaced only when some capture's health changed, see `quiet`).
    health: Arc<BTreeMap<String, Health>>,
}

/// Which set of children a supervisor had: its registry entry (by its registration),
/// restarts, start and children version. While all stand, the set does, and the book's
/// captures were already compared with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChildSetStamp {
    registration: u64,
    restarts: u64,
    started_at_ms: u64,
    children_version: u64,
}

impl ChildSetStamp {
    fn of(entry: &Entry) -> ChildSetStamp {
        ChildSetStamp {
            registration: entry.registration,
            restarts: entry.restarts(),
            started_at_ms: entry.started_at_ms(),
            children_version: entry.children_version(),
        }
    }
}

/// The cluster_ingest streams of `plan`, by name, and as the book takes them.
fn cluster_ingest_streams(plan: &NodePlan) -> (BTreeMap<String, StreamPlan>, Arc<[Configured]>) {
    let streams: BTreeMap<String, StreamPlan> = plan
        .streams
        .iter()
        .filter(|stream| stream.cluster_ingest)
        .map(|stream| (stream.name.clone(), stream.clone()))
        .collect();
    let configured = streams
        .values()
        .map(|stream| Configured {
            name: stream.name.clone(),
            capture_at: stream.capture_at.clone(),
        })
        .collect();
    (streams, configured)
}

impl IngestCoordinator {
    /// Takes the streams of a reloaded plan (a new revision), once per reload.
    fn follow_reload(&self, state: &mut IngestState) {
        let plan = self.plan.read().unwrap_or_else(|p| p.into_inner());
        if plan.revision == state.revision {
            return;
        }
        let (streams, configured) = cluster_ingest_streams(&plan);
        state.revision = plan.revision;
        // Peers may have joined or left: their limits follow.
        state.plan.peer_limits = plan.ingest.peer_limits.clone();
        state.streams = streams;
        state.configured = configured;
        state.reconciled = None;
        state.book.configuration_changed();
        tracing::info!(
            streams = state.configured.len(),
            revision = state.revision,
            "cluster_ingest: the reloaded config's streams taken"
        );
    }
    async fn apply(&self, me: &Handle<IngestMsg>, state: &mut IngestState, action: Action) {
        let streams_path = ActorPath::root().child("streams");
        let now_ms = me.runtime().wall_clock_ms();
        match action {
            Action::Start { stream, epoch } => {
                tracing::info!(%stream, epoch, "cluster_ingest: capturing here");
                self.board.set_local(
                    &stream,
                    LocalPart {
                        role: IngestRole::Capturing,
                        epoch,
                    },
                );
                let Some(plan) = state.streams.get(&stream).cloned() else {
                    return;
                };
                let result = match supervisor_at(me.node(), &streams_path) {
                    Some(supervisor) => ractor::call!(
                        supervisor,
                        SupervisorMsg::StartChild,
                        stream_child(plan, self.media.clone())
                    )
                    .map_err(|error| error.to_string())
                    .and_then(|started| match started {
                        Ok(()) | Err(SupervisorError::DuplicateId(_)) => Ok(()),
                        Err(error) => Err(error.to_string()),
                    }),
                    None => Err("the streams supervisor is not running".to_string()),
                };
                state.last_action = Some(format!("start {stream} (epoch {epoch})"));
                if let Err(error) = result {
                    tracing::warn!(%stream, %error, "cluster_ingest: could not start the capture");
                    state.book.start_failed(&stream, now_ms);
                }
            }
            Action::Stop { stream, reason } => {
                tracing::info!(%stream, %reason, "cluster_ingest: capture stops here");
                let (role, epoch) = state.book.advertised(&stream, now_ms);
                self.board.set_local(&stream, LocalPart { role, epoch });
                if let Some(supervisor) = supervisor_at(me.node(), &streams_path) {
                    let _ =
                        ractor::call!(supervisor, SupervisorMsg::TerminateChild, stream.clone());
                }
                state.last_action = Some(format!("stop {stream}: {reason}"));
            }
        }
    }

    /// Makes the `streams` supervisor's cluster_ingest children match the book's
    /// captures: a start or stop that raced with a restart of that supervisor is
    /// repaired at the next tick, never left running untracked or missing.
    ///
    /// Asking the supervisor for its children every tick was a twentieth of a simulated
    /// cluster's work: it is asked again only when its set of children or the book's
    /// captures may have changed (a new stamp, or actions applied since).
    async fn reconcile(&self, me: &Handle<IngestMsg>, state: &mut IngestState) {
        let streams_path = ActorPath::root().child("streams");
        let Some(entry) = me.node().registry.get(&streams_path) else {
            return;
        };
        // Taken before the question: a change racing with it shows at the next tick.
        let stamp = ChildSetStamp::of(&entry);
        if state.reconciled == Some(stamp) {
            return;
        }
        let Some(supervisor) = supervisor_at(me.node(), &streams_path) else {
            return;
        };
        let Ok(children) = ractor::call!(supervisor, SupervisorMsg::Children) else {
            return;
        };
        state.reconciled = Some(stamp);
        let now_ms = me.runtime().wall_clock_ms();
        let captures = state.book.captures();
        let running: std::collections::BTreeSet<&str> =
            children.iter().map(|child| child.id.as_str()).collect();
        // Only the two sets' differences need repair: walked from the (few) children and
        // captures of this node, not from every configured stream, then taken in name
        // order.
        let mut differ: Vec<&str> = children
            .iter()
            .map(|child| child.id.as_str())
            .filter(|name| !captures.contains_key(*name))
            .chain(
                captures
                    .keys()
                    .map(String::as_str)
                    .filter(|name| !running.contains(name)),
            )
            .filter(|name| state.streams.contains_key(*name))
            .collect();
        differ.sort_unstable();
        for name in differ {
            if running.contains(name) {
                tracing::warn!(stream = %name, "cluster_ingest: stopping a capture this node does not own");
                let _ = ractor::call!(supervisor, SupervisorMsg::TerminateChild, name.to_string());
            } else {
                let epoch = state.book.advertised(name, now_ms).1;
                tracing::warn!(stream = %name, epoch, "cluster_ingest: restarting a capture missing from the streams supervisor");
                self.board.set_local(
                    name,
                    LocalPart {
                        role: IngestRole::Capturing,
                        epoch,
                    },
                );
                let spec = stream_child(state.streams[name].clone(), self.media.clone());
                let _ = ractor::call!(supervisor, SupervisorMsg::StartChild, spec);
            }
        }
    }

    /// The health of every capture, read afresh: its actor's restarts and start from the
    /// registry (`node/streams/NAME`), its frames from the node. The last tick's map is
    /// kept when nothing in it changed (few ticks change it), so the book's input is
    /// known unchanged (see `quiet`).
    fn health(
        &self,
        me: &Handle<IngestMsg>,
        book: &IngestBook,
        last: &mut Arc<BTreeMap<String, Health>>,
        now_ms: u64,
    ) {
        let streams = ActorPath::root().child("streams");
        let now: BTreeMap<String, Health> = book
            .captures()
            .keys()
            .map(|name| {
                let entry = me.node().registry.get(&streams.child(name));
                let restarts = entry.as_ref().map_or(0, |entry| entry.restarts());
                let started_at_ms = entry.as_ref().map_or(0, |entry| entry.started_at_ms());
                let frames = self.io.frames(name, now_ms).unwrap_or_default();
                let health = Health {
                    alive: frames.alive,
                    restarts,
                    frames_since_start: started_at_ms != 0
                        && frames
                            .last_frame_ms
                            .is_some_and(|frame_ms| frame_ms >= started_at_ms),
                };
                (name.clone(), health)
            })
            .collect();
        if **last != now {
            *last = Arc::new(now);
        }
    }
}

/// What this node advertises about each configured stream after a step: the step's
/// table has it (asking the book again per stream was a tenth of a step), but for the
/// streams it `started`: a start that failed changed the book since (`apply` is the only
/// change to the book after the step).
fn local_parts(
    book: &IngestBook,
    rows: &[Row],
    started: &[String],
    now_ms: u64,
) -> BTreeMap<String, LocalPart> {
    rows.iter()
        .map(|row| {
            let (role, epoch) = if started.contains(&row.stream) {
                book.advertised(&row.stream, now_ms)
            } else {
                (row.local, row.local_epoch)
            };
            (row.stream.clone(), LocalPart { role, epoch })
        })
        .collect()
}

impl Worker for IngestCoordinator {
    type Msg = IngestMsg;
    type State = IngestState;
    type Args = NodePlan;

    fn kind(&self) -> &'static str {
        "ingest_coordinator"
    }

    async fn init(
        &self,
        me: &Handle<IngestMsg>,
        plan: NodePlan,
    ) -> Result<IngestState, ActorProcessingErr> {
        let now_ms = me.runtime().wall_clock_ms();
        let (streams, configured) = cluster_ingest_streams(&plan);
        let settings = BookSettings {
            failback_hold_ms: plan.ingest.failback_hold_ms,
            settle_ms: plan.ingest.settle_ms,
            minority_restraint: plan.ingest.minority_restraint,
            pause_after_ms: plan.ingest.pause_after_ms.unwrap_or(u64::MAX),
            #[cfg(feature = "sabotage")]
            sabotage: plan.ingest.sabotage,
        };
        // A restarted coordinator picks up the captures still running under `streams`.
        let mut book = IngestBook::new(settings, now_ms);
        let previous = self.board.snapshot();
        for (name, part) in previous.local.iter() {
            if !streams.contains_key(name) {
                continue;
            }
            match part.role {
                IngestRole::Capturing => book.adopt(name, part.epoch, now_ms),
                role => book.remember(name, part.epoch, role == IngestRole::Failed, now_ms),
            }
        }
        // Ticks run without cluster_ingest streams too: a reload may add some.
        let _ = me.send(IngestMsg::Tick);
        me.send_interval(Duration::from_millis(plan.ingest.tick_ms.max(10)), || {
            IngestMsg::Tick
        });
        Ok(IngestState {
            plan: plan.ingest,
            revision: plan.revision,
            streams,
            configured,
            book,
            last_action: None,
            seen: ClusterSeen::default(),
            reconciled: None,
            health: Arc::default(),
        })
    }

    async fn handle(
        &self,
        me: &Handle<IngestMsg>,
        message: IngestMsg,
        state: &mut IngestState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            IngestMsg::Tick => {
                self.follow_reload(state);
                if state.configured.is_empty() && state.book.captures().is_empty() {
                    return Ok(());
                }
                let now_ms = me.runtime().wall_clock_ms();
                // This node has been alive since it started.
                let uptime_ms = u64::try_from(me.runtime().uptime().as_millis()).unwrap_or(0);
                let started_ms = now_ms.saturating_sub(uptime_ms);
                state
                    .seen
                    .update(&state.plan, self.io.as_ref(), started_ms, now_ms);
                self.reconcile(me, state).await;
                self.health(me, &state.book, &mut state.health, now_ms);
                let seen = &state.seen;
                let Some(member) = &seen.me else {
                    return Ok(());
                };
                let input = book::StepInput {
                    me: member,
                    peers: &seen.peers,
                    cluster_size: seen.cluster_size,
                    peers_unheard: seen.unheard,
                    peers_fading: seen.fading,
                    peers_unconfirmed: seen.unconfirmed,
                    streams: &state.configured,
                    health: &state.health,
                    now_ms,
                };
                // An unchanged cluster (most ticks) decides nothing new: the board stands.
                let was_resuming = state.book.resuming();
                let stepped = state.book.step_if_changed(&input);
                let Some((actions, rows)) = stepped else {
                    return Ok(());
                };
                match (was_resuming, state.book.resuming()) {
                    (false, true) => tracing::warn!(
                        unconfirmed = seen.unconfirmed,
                        "cluster_ingest: this node was paused; it takes nothing until its peers are heard again"
                    ),
                    (true, false) => {
                        tracing::info!("cluster_ingest: peers heard again after a pause")
                    }
                    _ => {}
                }
                let starts: Vec<String> = actions
                    .iter()
                    .filter_map(|action| match action {
                        Action::Start { stream, .. } => Some(stream.clone()),
                        Action::Stop { .. } => None,
                    })
                    .collect();
                // The captures change: compare them with the supervisor's children again.
                if !actions.is_empty() {
                    state.reconciled = None;
                }
                for action in actions {
                    self.apply(me, state, action).await;
                }
                let local = local_parts(&state.book, &rows, &starts, now_ms);
                self.board.publish(BoardState {
                    local,
                    local_generation: 0,
                    rows,
                    restrained: state.book.restrained(),
                    settled: state.book.settled(),
                });
            }
        }
        Ok(())
    }

    fn summary(&self, state: &IngestState) -> String {
        let mut summary = format!(
            "{} cluster_ingest stream(s), capturing {}",
            state.configured.len(),
            state.book.captures().len()
        );
        if !state.book.settled() && !state.configured.is_empty() {
            summary.push_str(", settling");
        }
        if state.book.restrained() {
            summary.push_str(", restrained (sees a minority)");
        }
        if state.book.resuming() {
            summary.push_str(", resuming (peers not heard since a pause)");
        }
        if let Some(action) = &state.last_action {
            summary.push_str("; last: ");
            summary.push_str(action);
        }
        summary
    }
}
