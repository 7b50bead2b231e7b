//! The cluster_ingest coordinator: decides which cluster_ingest streams this node
//! captures, and makes it so through the `streams` supervisor.
//!
//! Every tick it reads the cluster view and the health of its captures, runs one step of
//! the [`book`] (pure: [`placement`] plus make-before-break, epochs, failure marks and
//! restraint), then applies the actions: taking a stream over is the `streams`
//! supervisor starting its stream actor; giving it up is the supervisor stopping it. The
//! [`board`] carries the result to the rest of the node (mesh advertisement, HTTP API,
//! the `streams` supervisor's own rebuild after a restart).

pub mod board;
pub mod book;
pub mod placement;
mod quiet;
pub mod sabotage;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use ractor::ActorProcessingErr;

use self::board::{BoardState, IngestBoard, LocalPart};
use self::book::{Action, Advertised, BookSettings, Configured, Health, IngestBook, Member};
use crate::mesh::view::{ClusterView, IngestRole, PeerRecord, PeerState};
use crate::registry::{ActorPath, Entry};
use crate::stream::StreamMedia;
use crate::supervisor::{SupervisorError, SupervisorMsg, supervisor_at};
use crate::tree::{NodePlan, StreamPlan, stream_child};
use crate::worker::{Handle, Worker};

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
    /// This node's hostname (the name placement uses).
    pub me: String,
    /// Other names `capture_at` may use for this node.
    pub aliases: Vec<String>,
    /// This node's limits.
    pub limits: IngestLimits,
    /// Peers' limits, by any of their names (`host`, `host:port`, hostname).
    pub peer_limits: BTreeMap<String, IngestLimits>,
    /// How long a returning `capture_at` node must be alive before fail-back.
    pub failback_hold_ms: u64,
    /// At start, how long to wait for unheard peers before taking streams over.
    pub settle_ms: u64,
    /// How often the coordinator looks at the cluster.
    pub tick_ms: u64,
    /// Minority restraint (off by default: survivors take everything over).
    pub minority_restraint: bool,
    /// A rule broken on purpose (simulator only; see [`sabotage`]).
    pub sabotage: Option<sabotage::Sabotage>,
}

/// What the coordinator reads from the node.
pub trait IngestIo: Send + Sync + 'static {
    /// The cluster view (`None` without a mesh: this node is the whole cluster).
    fn view(&self) -> Option<Arc<RwLock<ClusterView>>>;
    /// This host's CPU usage, percent.
    fn cpu_usage(&self) -> f32;
    /// The frames of each of `streams` here, in the order given, into `out` (cleared
    /// first): whether they are flowing, and Unix ms of the last one (`None`: none yet).
    /// Asked for every capture at every tick, so one look at the node's streams for all
    /// of them.
    fn frames(&self, streams: &mut dyn Iterator<Item = &str>, out: &mut Vec<StreamFrames>);
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
    fn frames(&self, streams: &mut dyn Iterator<Item = &str>, out: &mut Vec<StreamFrames>) {
        out.clear();
        out.extend(streams.map(|_| StreamFrames::default()));
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
    streams: BTreeMap<String, StreamPlan>,
    configured: Arc<[Configured]>,
    book: IngestBook,
    last_action: Option<String>,
    adverts: AdvertCache,
    /// The `streams` supervisor's children as of the last [`IngestCoordinator::reconcile`]
    /// (`None`: reconcile at the next tick).
    reconciled: Option<ChildSetStamp>,
    /// The captures' health as of the last tick (rewritten at every tick, kept for its
    /// allocations and registry entries).
    health: CaptureHealth,
}

/// The health of this node's captures, with what it is read from.
#[derive(Default)]
struct CaptureHealth {
    /// By stream, as the book's captures.
    by_stream: BTreeMap<String, Health>,
    /// Each capture's registry entry (`node/streams/NAME`), in the same order: looked up
    /// again only when the captures or the `streams` supervisor's children changed.
    entries: Vec<Option<Arc<Entry>>>,
    /// The `streams` supervisor's stamp when `entries` were looked up.
    stamp: Option<ChildSetStamp>,
    /// Each capture's frames, in the same order (kept for its allocation).
    frames: Vec<StreamFrames>,
}

/// Which set of children a supervisor had: its registry entry (held, so that another
/// entry cannot take its address), its restarts, start and children version. While all
/// stand, the set does, and the book's captures were already compared with it.
struct ChildSetStamp {
    entry: Arc<Entry>,
    restarts: u64,
    started_at_ms: u64,
    children_version: u64,
}

impl ChildSetStamp {
    fn of(entry: Arc<Entry>) -> ChildSetStamp {
        ChildSetStamp {
            restarts: entry.restarts(),
            started_at_ms: entry.started_at_ms(),
            children_version: entry.children_version(),
            entry,
        }
    }

    fn same_as(&self, other: &ChildSetStamp) -> bool {
        Arc::ptr_eq(&self.entry, &other.entry)
            && self.restarts == other.restarts
            && self.started_at_ms == other.started_at_ms
            && self.children_version == other.children_version
    }
}

fn limits_of<'a>(plan: &'a IngestPlan, names: &[&str]) -> Option<&'a IngestLimits> {
    names.iter().find_map(|name| plan.peer_limits.get(*name))
}

/// A peer heard this long ago may be cut off already: its stale timeout, less the fetch
/// interval (the peers of a node cut off were last heard up to one interval apart, so
/// when the first goes stale the others are at least this old) and one coordinator tick
/// of margin. Never below one interval and a tick, so a connected peer always counts.
fn fading_after_ms(record: &PeerRecord, tick_ms: u64) -> u64 {
    record
        .stale_timeout_ms
        .saturating_sub(record.fetch_timeout_ms)
        .saturating_sub(tick_ms)
        .max(record.fetch_timeout_ms + tick_ms)
}

/// What the coordinator sees of the cluster.
struct Members {
    /// This node.
    me: Member,
    /// The alive peers.
    peers: Vec<Member>,
    /// Every known node, this one included.
    cluster_size: usize,
    /// Known peers never heard from.
    unheard: usize,
    /// Alive peers not heard for [`fading_after_ms`].
    fading: usize,
}

/// What each peer advertises about cluster_ingest streams, by peer name, with the
/// (incarnation, ingest version) of the state it was read from: what a peer advertises
/// about them changes only with that, so an unchanged peer costs no copy per tick.
type AdvertCache = BTreeMap<String, ((u64, u64), Arc<BTreeMap<String, Advertised>>)>;

/// The members of the cluster this node sees alive: itself first, then the peers.
fn members(
    plan: &IngestPlan,
    io: &dyn IngestIo,
    started_ms: u64,
    now_ms: u64,
    cache: &mut AdvertCache,
) -> Members {
    let me = Member {
        name: plan.me.clone(),
        aliases: plan.aliases.clone(),
        alive_since_ms: started_ms,
        returns_ms: Vec::new(),
        channel_limit: plan.limits.channel_limit,
        over_cpu_limit: plan
            .limits
            .cpu_limit_percent
            .is_some_and(|limit| io.cpu_usage() >= limit as f32),
        streams: Arc::default(),
    };
    let Some(view) = io.view() else {
        return Members {
            me,
            peers: Vec::new(),
            cluster_size: 1,
            unheard: 0,
            fading: 0,
        };
    };
    let view = view.read().unwrap_or_else(|p| p.into_inner());
    // This node as its peers see it: since its start or its last rejoin, with the
    // restarts they told it about (mesh::history).
    let me = Member {
        alive_since_ms: me.alive_since_ms.max(view.own().healthy_since_ms()),
        returns_ms: view.own().returns_ms().to_vec(),
        ..me
    };
    let mut used = AdvertCache::new();
    let mut peers = Vec::new();
    let mut size = 1;
    let mut unheard = 0;
    let mut fading = 0;
    for (record, state) in view.peers(now_ms) {
        size += 1;
        match state {
            PeerState::Connecting => unheard += 1,
            PeerState::Alive | PeerState::Stale
                if (state == PeerState::Alive
                    || plan.sabotage == Some(sabotage::Sabotage::IgnoreStale))
                    && !record.hostname.is_empty()
                    && record.hostname != plan.me
                    && !peers.iter().any(|p: &Member| p.name == record.hostname) =>
            {
                let host = record
                    .name
                    .rsplit_once(':')
                    .map_or(record.name.as_str(), |(host, _)| host);
                let limits = limits_of(plan, &[&record.name, host, &record.hostname])
                    .copied()
                    .unwrap_or_default();
                if now_ms.saturating_sub(record.last_seen_ms)
                    >= fading_after_ms(record, plan.tick_ms)
                {
                    fading += 1;
                }
                let state = (record.incarnation, record.ingest_version);
                let ingest_streams = || {
                    record
                        .streams
                        .iter()
                        .filter(|(_, s)| s.ingest != IngestRole::None)
                        .map(|(name, s)| {
                            let advertised = Advertised {
                                role: s.ingest,
                                alive: s.alive,
                                epoch: s.epoch,
                            };
                            (name, advertised)
                        })
                };
                let streams = match cache.remove(&record.name) {
                    Some((read_from, streams)) if read_from == state => streams,
                    // A new incarnation or a full state may still say the same: the old
                    // map is kept, so the book sees an unchanged peer (see `quiet`).
                    Some((_, old))
                        if old.iter().map(|(name, a)| (name, *a)).eq(ingest_streams()) =>
                    {
                        old
                    }
                    _ => Arc::new(
                        ingest_streams()
                            .map(|(name, advertised)| (name.clone(), advertised))
                            .collect(),
                    ),
                };
                used.insert(record.name.clone(), (state, streams.clone()));
                peers.push(Member {
                    name: record.hostname.clone(),
                    aliases: vec![record.name.clone(), host.to_string()],
                    // What the peer publishes, so every node counts the same returns.
                    alive_since_ms: record.history.healthy_since_ms,
                    returns_ms: record.history.returns_ms.clone(),
                    channel_limit: limits.channel_limit,
                    over_cpu_limit: limits
                        .cpu_limit_percent
                        .is_some_and(|limit| record.load.cpu_usage >= limit as f32),
                    streams,
                });
            }
            _ => {}
        }
    }
    *cache = used;
    Members {
        me,
        peers,
        cluster_size: size,
        unheard,
        fading,
    }
}

impl IngestCoordinator {
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
        let stamp = ChildSetStamp::of(entry);
        if state
            .reconciled
            .as_ref()
            .is_some_and(|reconciled| reconciled.same_as(&stamp))
        {
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

    /// The health of every capture, written into `health` (keyed as the book's captures;
    /// updated in place while the captures stay the same streams, as on most ticks).
    fn health(&self, me: &Handle<IngestMsg>, book: &IngestBook, health: &mut CaptureHealth) {
        let captures = book.captures();
        let same_streams =
            health.by_stream.len() == captures.len() && health.by_stream.keys().eq(captures.keys());
        if !same_streams {
            health.by_stream = captures
                .keys()
                .map(|name| (name.clone(), Health::default()))
                .collect();
        }
        // The captures' registry entries stand while the same streams are captured and
        // the `streams` supervisor added or removed no child (its stamp).
        let stamp = me
            .node()
            .registry
            .get(&ActorPath::root().child("streams"))
            .map(ChildSetStamp::of);
        let entries_stand = same_streams
            && health.entries.len() == captures.len()
            && matches!((&health.stamp, &stamp), (Some(old), Some(new)) if old.same_as(new));
        if !entries_stand {
            // `node/streams/NAME`, built in one buffer for every capture.
            let mut path = ActorPath::root().child("streams").as_str().to_string();
            path.push('/');
            let prefix = path.len();
            health.entries = health
                .by_stream
                .keys()
                .map(|name| {
                    path.truncate(prefix);
                    path.push_str(name);
                    me.node().registry.get_text(&path)
                })
                .collect();
            health.stamp = stamp;
        }
        self.io.frames(
            &mut health.by_stream.keys().map(String::as_str),
            &mut health.frames,
        );
        for ((health, entry), frames) in health
            .by_stream
            .values_mut()
            .zip(&health.entries)
            .zip(&health.frames)
        {
            let restarts = entry.as_ref().map_or(0, |entry| entry.restarts());
            let started_at_ms = entry.as_ref().map_or(0, |entry| entry.started_at_ms());
            let StreamFrames {
                alive,
                last_frame_ms,
            } = *frames;
            *health = Health {
                alive,
                restarts,
                frames_since_start: started_at_ms != 0
                    && last_frame_ms.is_some_and(|frame_ms| frame_ms >= started_at_ms),
            };
        }
    }
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
        let settings = BookSettings {
            failback_hold_ms: plan.ingest.failback_hold_ms,
            settle_ms: plan.ingest.settle_ms,
            minority_restraint: plan.ingest.minority_restraint,
            sabotage: plan.ingest.sabotage,
        };
        // A restarted coordinator picks up the captures still running under `streams`.
        let mut book = IngestBook::new(settings, now_ms);
        let previous = self.board.snapshot();
        for (name, part) in &previous.local {
            if !streams.contains_key(name) {
                continue;
            }
            match part.role {
                IngestRole::Capturing => book.adopt(name, part.epoch, now_ms),
                role => book.remember(name, part.epoch, role == IngestRole::Failed, now_ms),
            }
        }
        if !streams.is_empty() {
            let _ = me.send(IngestMsg::Tick);
            me.send_interval(Duration::from_millis(plan.ingest.tick_ms.max(10)), || {
                IngestMsg::Tick
            });
        }
        Ok(IngestState {
            plan: plan.ingest,
            streams,
            configured,
            book,
            last_action: None,
            adverts: AdvertCache::new(),
            reconciled: None,
            health: CaptureHealth::default(),
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
                let now_ms = me.runtime().wall_clock_ms();
                // This node has been alive since it started.
                let uptime_ms = u64::try_from(me.runtime().uptime().as_millis()).unwrap_or(0);
                let started_ms = now_ms.saturating_sub(uptime_ms);
                let Members {
                    me: member,
                    peers,
                    cluster_size,
                    unheard: peers_unheard,
                    fading: peers_fading,
                } = members(
                    &state.plan,
                    self.io.as_ref(),
                    started_ms,
                    now_ms,
                    &mut state.adverts,
                );
                self.reconcile(me, state).await;
                let mut health = std::mem::take(&mut state.health);
                self.health(me, &state.book, &mut health);
                let input = book::StepInput {
                    me: &member,
                    peers: &peers,
                    cluster_size,
                    peers_unheard,
                    peers_fading,
                    streams: &state.configured,
                    health: &health.by_stream,
                    now_ms,
                };
                // An unchanged cluster (most ticks) decides nothing new: the board stands.
                let stepped = state.book.step_if_changed(&input);
                state.health = health;
                let Some((actions, rows)) = stepped else {
                    return Ok(());
                };
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
                // The step's table has what this node advertises about each configured
                // stream (asking the book again per stream was a tenth of a step), but
                // for the streams it started: a start that failed changed the book since
                // (`apply` is the only change to the book after the step).
                let mut local: BTreeMap<String, LocalPart> = rows
                    .iter()
                    .map(|row| {
                        let part = LocalPart {
                            role: row.local,
                            epoch: row.local_epoch,
                        };
                        (row.stream.clone(), part)
                    })
                    .collect();
                for stream in starts {
                    if let Some(part) = local.get_mut(&stream) {
                        let (role, epoch) = state.book.advertised(&stream, now_ms);
                        *part = LocalPart { role, epoch };
                    }
                }
                self.board.publish(BoardState {
                    local,
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
        if let Some(action) = &state.last_action {
            summary.push_str("; last: ");
            summary.push_str(action);
        }
        summary
    }
}
