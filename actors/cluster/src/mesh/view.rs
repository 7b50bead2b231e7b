//! The cluster view: what this node knows about its peers. Sans-IO: every input carries
//! `now_ms`, nothing here reads a clock, sends a byte or spawns a task, so the same code
//! runs in the node and in the deterministic simulator.
//!
//! Rules:
//! 1. A peer is `Alive` while its last good exchange is younger than its
//!    `stale_timeout_ms`, then `Stale`. `Unauthorized` (another cluster key) and
//!    `Connecting` (never heard from) are never alive.
//! 2. State is versioned by (incarnation, version). A restarted peer has a higher
//!    incarnation and replaces everything; within an incarnation a state with a version
//!    not above the last applied one is ignored, so gossip never goes backwards.
//! 3. A stream's location is the alive peers that advertise it alive (or on-demand),
//!    in name order: deterministic for every node with the same view.
//! 4. **A pause of this node is not its peers' silence.** A node stopped for a while
//!    (SIGSTOP, a frozen VM, a long stall) wakes with its clock jumped: every peer it
//!    heard a moment before looks silent for the whole pause, and judged by rule 1 alone
//!    all of them would be dead at once — although they were silent only because this
//!    node was not running. So the view remembers this node's own moments (each
//!    exchange, each coordinator tick: [`ClusterView::awake`]). When two of them lie
//!    further apart than a peer's [`pause_after_ms`] (its stale timeout less one fetch
//!    interval: a peer heard on schedule just before may have gone stale over such a
//!    gap, and so may this node in its peers' views), each peer that was alive at the
//!    last moment before the gap stays `Alive` but *unconfirmed*
//!    ([`PeerRecord::unconfirmed`]): what the view holds of it is from before the pause.
//!    It is confirmed by the next exchange with it, or, if none comes, goes stale by rule
//!    1 a fresh `stale_timeout` after the resume. A peer that was already stale or
//!    unconfirmed before the gap gets no grace. The node itself counts as cut off by the
//!    pause (its peers may have declared it dead): its next majority of peers actually
//!    heard is a rejoin ([`history`](super::history)). What a resumed node may decide
//!    meanwhile is its users' rule: the ingest coordinator takes no stream while any
//!    peer is unconfirmed (`ingest::book`).
//!
//!    Liveness is judged on the wall clock the view is given, so a forward step of that
//!    clock (an NTP correction beyond the threshold) counts as a pause too: it is one,
//!    as far as the peers' silence goes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use super::history::RETURNS_KEPT;
use super::history::{OwnHistory, PeerHistory};

/// A peer's state as this node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerState {
    /// Configured or learnt, never heard from.
    Connecting,
    /// A good exchange within `stale_timeout`.
    Alive,
    /// Heard from, but not within `stale_timeout`.
    Stale,
    /// It answered with another cluster key.
    Unauthorized,
}

/// A node's part in a cluster_ingest stream, as it advertises it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IngestRole {
    /// Not a cluster_ingest stream there.
    #[default]
    None,
    /// Configured there and able to capture it, not capturing.
    Standby,
    /// Capturing it there (frames may not flow yet: see `alive`).
    Capturing,
    /// Its source kept failing there: that node is out of the running for a while.
    Failed,
}

impl IngestRole {
    /// Its name as the APIs write it.
    pub fn name(self) -> &'static str {
        match self {
            IngestRole::None => "none",
            IngestRole::Standby => "standby",
            IngestRole::Capturing => "capturing",
            IngestRole::Failed => "failed",
        }
    }
}

/// What a peer advertises about one of its streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RemoteStream {
    /// Frames are arriving there now.
    pub alive: bool,
    /// Configured on-demand there (startable by a viewer).
    pub ondemand: bool,
    /// Viewers there.
    pub clients: u64,
    /// Input bitrate there, kbit/s.
    pub bitrate_kbit: u64,
    /// cluster_ingest capture epoch (0 for other streams).
    pub epoch: u64,
    /// Its cluster_ingest role there.
    pub ingest: IngestRole,
    /// A copy that node relays from another one (for its own viewers): never where a
    /// viewer or a relay is sent.
    pub relayed: bool,
}

/// A peer's load (the cluster overview's numbers).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PeerLoad {
    /// Host CPU, percent.
    pub cpu_usage: f32,
    /// Host memory, percent.
    pub memory_usage: f32,
    /// Viewers on the node.
    pub total_clients: u64,
    /// Streams with frames arriving.
    pub online_streams: u64,
    /// Output bitrate, kbit/s.
    pub output_kbit: u64,
    /// Output against `total_bandwidth`, percent.
    pub bandwidth_usage: f32,
    /// `total_bandwidth`, bit/s (0: not configured).
    pub total_bandwidth: u64,
    /// Seconds since the node started.
    pub uptime: u64,
}

/// Everything known about one peer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PeerRecord {
    /// Its key: the address it is configured or learnt under (`host:port`).
    pub name: String,
    /// The identity it gave itself, `host:port` (empty until its first exchange): what
    /// the cluster's decisions name it by.
    pub id: String,
    /// The hostname it gave itself (empty until its first exchange), for people.
    pub hostname: String,
    /// Where viewers are sent.
    pub public_url: String,
    /// Its RTMP listener (`rtmp://host:port`; empty when it has none), for RTMP redirects.
    pub rtmp_url: String,
    /// Exchange period.
    pub fetch_timeout_ms: u64,
    /// Silence after which it is stale.
    pub stale_timeout_ms: u64,
    /// Unix ms of the last good exchange (0: never).
    pub last_seen_ms: u64,
    /// Unix ms of the last good exchange the peer called (0: never): see
    /// [`PeerRecord::called_this_round`].
    pub called_us_ms: u64,
    /// Its start and returns as it publishes them (agreed by every node: see
    /// [`history`](super::history)).
    pub history: PeerHistory,
    /// Its last answer used another cluster key.
    pub unauthorized: bool,
    /// Its incarnation (bumped by every restart).
    pub incarnation: u64,
    /// The last applied state version within the incarnation.
    pub version: u64,
    /// Its load.
    pub load: PeerLoad,
    /// Its streams.
    pub streams: BTreeMap<String, RemoteStream>,
    /// The version (within the incarnation) that last touched `streams`: most versions
    /// change only the load, and readers that derive something from the streams redo
    /// it only when this moves.
    pub streams_version: u64,
    /// The version (within the incarnation) that last changed what it advertises about
    /// cluster_ingest streams (a stream's role, liveness or epoch where it has a part):
    /// most stream changes are other streams' counters, and the ingest coordinator
    /// reads the peer's cluster_ingest streams again only when this moves.
    pub ingest_version: u64,
    /// Why the last exchange failed, if it did.
    pub last_error: Option<String>,
    /// The round-trip time of this node's connection to it at its last exchange call
    /// (QUIC's estimate), for operators; no decision reads it.
    pub rtt_ms: Option<u64>,
    /// Unix ms until which the peer stays alive unheard because this node was paused
    /// while it was alive (rule 4 of the module; 0: no such grace). Cleared by the next
    /// exchange with it.
    pub unconfirmed_until_ms: u64,
}

/// A gap between two of this node's own moments longer than this, for a peer with
/// these timeouts, is a pause of this node (rule 4 of the module): its stale timeout
/// less one fetch interval, the silence over which a peer heard on schedule just before
/// the gap may have gone stale. Never below one fetch interval: a running node has a
/// moment at least once per interval (every peer link's exchange), so only a node that
/// did not run goes longer.
pub fn pause_after_ms(fetch_timeout_ms: u64, stale_timeout_ms: u64) -> u64 {
    stale_timeout_ms
        .saturating_sub(fetch_timeout_ms)
        .max(fetch_timeout_ms)
}

/// What a stream's entry says about cluster_ingest: its role, liveness and epoch, for a
/// stream the peer has a part in (`None`: not a cluster_ingest stream there).
fn ingest_part(stream: &RemoteStream) -> Option<(IngestRole, bool, u64)> {
    (stream.ingest != IngestRole::None).then_some((stream.ingest, stream.alive, stream.epoch))
}

impl PeerRecord {
    /// Where viewers are sent, without a trailing slash: its `public_url`, else
    /// `http://` and the address it is known by.
    pub fn viewer_base_url(&self) -> String {
        if self.public_url.is_empty() {
            format!("http://{}", self.name)
        } else {
            self.public_url.trim_end_matches('/').to_string()
        }
    }

    /// Bytes this record holds: itself, its texts and its stream list (map nodes are
    /// counted as their key and value; the allocator's overhead is not).
    pub fn held_bytes(&self) -> u64 {
        let texts = [
            &self.name,
            &self.id,
            &self.hostname,
            &self.public_url,
            &self.rtmp_url,
        ]
        .iter()
        .map(|text| text.capacity())
        .sum::<usize>();
        let streams = self
            .streams
            .keys()
            .map(|name| {
                name.capacity()
                    + std::mem::size_of::<String>()
                    + std::mem::size_of::<RemoteStream>()
            })
            .sum::<usize>();
        (std::mem::size_of::<PeerRecord>() + texts + streams + self.history.held_bytes()) as u64
    }

    /// Whether the peer called this node in the current exchange round, less than half
    /// a fetch interval before `now_ms`: one exchange informs both sides, so this node's
    /// own call would tell neither anything new, and is skipped.
    ///
    /// Each pair then settles on one caller: with equal intervals, one side's tick falls
    /// within half an interval after the other's call whatever their phases, and a
    /// skip needs the other side's call, so both never skip the same round and each
    /// side still hears the other once per interval. A call that failed (a one-way cut)
    /// is no call: the other side calls then.
    pub fn called_this_round(&self, now_ms: u64) -> bool {
        self.called_us_ms != 0
            && now_ms.saturating_sub(self.called_us_ms) < self.fetch_timeout_ms / 2
    }

    /// The peer's state at `now_ms`.
    pub fn state(&self, now_ms: u64) -> PeerState {
        if self.unauthorized {
            PeerState::Unauthorized
        } else if self.last_seen_ms == 0 {
            PeerState::Connecting
        } else if self.heard_within_stale(now_ms) || now_ms < self.unconfirmed_until_ms {
            PeerState::Alive
        } else {
            PeerState::Stale
        }
    }

    /// Whether an exchange with the peer came within its stale timeout before `now_ms`
    /// (alive by rule 1 of the module, not by a pause's grace).
    fn heard_within_stale(&self, now_ms: u64) -> bool {
        !self.unauthorized
            && self.last_seen_ms != 0
            && now_ms.saturating_sub(self.last_seen_ms) < self.stale_timeout_ms
    }

    /// Whether the peer is alive at `now_ms` only by the grace of this node's pause: not
    /// heard since this node resumed (rule 4 of the module), so what the view holds of it
    /// is from before the pause.
    pub fn unconfirmed(&self, now_ms: u64) -> bool {
        !self.unauthorized && now_ms < self.unconfirmed_until_ms
    }
}

/// A state a peer sent.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerUpdate {
    /// The identity the peer gave itself (`host:port`).
    pub id: String,
    /// The hostname the peer gave itself.
    pub hostname: String,
    /// Where the peer says viewers should go (used when the config names none).
    pub public_url: String,
    /// Its RTMP listener (`rtmp://host:port`; empty when it has none).
    pub rtmp_url: String,
    /// The sender's incarnation.
    pub incarnation: u64,
    /// The sender's start, Unix ms in its clock.
    pub started_ms: u64,
    /// The last applied state version within the incarnation.
    pub version: u64,
    /// Its load.
    pub load: PeerLoad,
    /// Milliseconds since its start (its clock).
    pub uptime_ms: u64,
    /// Its recent returns, as it publishes them (its clock).
    pub returns_ms: Vec<u64>,
    /// This node's restarts as the peer saw them (this node's clock).
    pub your_restarts_ms: Vec<u64>,
    /// The whole stream list (`true`) or changes since the last version.
    pub full: bool,
    /// Streams added or changed.
    pub upserts: Vec<(String, RemoteStream)>,
    /// Streams gone.
    pub removals: Vec<String>,
    /// The peer called this exchange (this node answered).
    pub called_by_peer: bool,
}

/// What applying an update did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// New state applied (the peer also counts as seen).
    Changed,
    /// An old or repeated version: only the liveness was refreshed.
    Stale,
}

/// The cluster as this node sees it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClusterView {
    peers: BTreeMap<String, PeerRecord>,
    /// This node's own history, published to its peers.
    own: OwnHistory,
    /// Unix ms of this node's last moment ([`ClusterView::awake`]; 0: none yet).
    awake_ms: u64,
}

impl ClusterView {
    /// Adds a peer (configured or learnt); an existing one keeps its state.
    pub fn add_peer(
        &mut self,
        name: &str,
        public_url: &str,
        fetch_timeout_ms: u64,
        stale_timeout_ms: u64,
    ) {
        assert!(stale_timeout_ms > 0, "stale_timeout must be positive");
        self.peers
            .entry(name.to_string())
            .or_insert_with(|| PeerRecord {
                name: name.to_string(),
                id: String::new(),
                hostname: String::new(),
                public_url: public_url.to_string(),
                rtmp_url: String::new(),
                fetch_timeout_ms,
                stale_timeout_ms,
                last_seen_ms: 0,
                called_us_ms: 0,
                history: PeerHistory::default(),
                unauthorized: false,
                incarnation: 0,
                version: 0,
                streams_version: 0,
                ingest_version: 0,
                load: PeerLoad::default(),
                streams: BTreeMap::new(),
                last_error: None,
                rtt_ms: None,
                unconfirmed_until_ms: 0,
            });
    }

    /// Forgets peer `name` (removed from the config by a reload); whether it was known.
    pub fn remove_peer(&mut self, name: &str) -> bool {
        self.peers.remove(name).is_some()
    }

    /// The (incarnation, version) of `name`'s state this node has.
    pub fn known(&self, name: &str) -> (u64, u64) {
        self.peers
            .get(name)
            .map_or((0, 0), |peer| (peer.incarnation, peer.version))
    }

    /// Whether `name` is known.
    pub fn knows(&self, name: &str) -> bool {
        self.peers.contains_key(name)
    }

    /// This node is running at `now_ms`: one of its own moments (an exchange begins or
    /// ends, the ingest coordinator ticks). A gap since the last one longer than a
    /// peer's [`pause_after_ms`] was a pause of this node, and each peer it heard
    /// before the gap stays alive, unconfirmed, until it is heard again or a fresh
    /// stale timeout has passed (rule 4 of the module).
    pub fn awake(&mut self, now_ms: u64) {
        let last_ms = self.awake_ms;
        if now_ms <= last_ms {
            return;
        }
        self.awake_ms = now_ms;
        if last_ms == 0 {
            return;
        }
        let gap_ms = now_ms - last_ms;
        let mut paused = false;
        for peer in self.peers.values_mut() {
            if gap_ms > pause_after_ms(peer.fetch_timeout_ms, peer.stale_timeout_ms)
                && peer.heard_within_stale(last_ms)
            {
                peer.unconfirmed_until_ms = now_ms.saturating_add(peer.stale_timeout_ms);
                paused = true;
            }
        }
        if paused {
            // Its peers may have declared it dead meanwhile: the next majority it hears
            // is a rejoin.
            self.own.paused();
        }
    }

    /// Applies a state received from `name` at `now_ms`.
    pub fn apply(&mut self, name: &str, update: PeerUpdate, now_ms: u64) -> Applied {
        self.awake(now_ms);
        // Whether this node was cut off is judged before the news, which may be the
        // first it hears after a pause or a partition.
        self.observe_own(now_ms);
        let applied = self.apply_to_peer(name, update, now_ms);
        self.observe_own(now_ms);
        applied
    }

    /// This node's own history (its start, rejoins and restarts).
    pub fn own(&self) -> &OwnHistory {
        &self.own
    }

    /// Sets this node's start (its incarnation); a restart is a new view.
    pub fn set_own_start(&mut self, started_ms: u64) {
        self.own = OwnHistory::new(started_ms);
    }

    /// Takes in how many peers this node hears at `now_ms`: peers actually heard within
    /// their stale timeout, not those alive only by a pause's grace.
    fn observe_own(&mut self, now_ms: u64) {
        let heard = 1 + self
            .peers
            .values()
            .filter(|peer| peer.heard_within_stale(now_ms))
            .count();
        self.own.observe(heard, self.peers.len() + 1, now_ms);
    }

    fn apply_to_peer(&mut self, name: &str, update: PeerUpdate, now_ms: u64) -> Applied {
        let Some(peer) = self.peers.get_mut(name) else {
            return Applied::Stale;
        };
        self.own.learn_restarts(&update.your_restarts_ms);
        peer.history.heard(
            update.incarnation,
            update.started_ms,
            update.uptime_ms,
            &update.returns_ms,
            now_ms,
        );
        peer.last_seen_ms = peer.last_seen_ms.max(now_ms);
        peer.unconfirmed_until_ms = 0;
        if update.called_by_peer {
            peer.called_us_ms = peer.called_us_ms.max(now_ms);
        }
        peer.unauthorized = false;
        peer.last_error = None;
        peer.id.clone_from(&update.id);
        peer.hostname.clone_from(&update.hostname);
        if peer.public_url.is_empty() {
            peer.public_url.clone_from(&update.public_url);
        }
        peer.rtmp_url.clone_from(&update.rtmp_url);
        let newer_incarnation = update.incarnation > peer.incarnation;
        let newer_version = update.incarnation == peer.incarnation && update.version > peer.version;
        if !newer_incarnation && !newer_version {
            return Applied::Stale;
        }
        if newer_incarnation
            || update.full
            || !update.removals.is_empty()
            || !update.upserts.is_empty()
        {
            peer.streams_version = update.version;
        }
        let mut ingest_changed = newer_incarnation || update.full;
        if newer_incarnation || update.full {
            peer.streams.clear();
        }
        for name in &update.removals {
            let gone = peer.streams.remove(name);
            ingest_changed |= gone.as_ref().and_then(ingest_part).is_some();
        }
        for (name, stream) in update.upserts {
            let part = ingest_part(&stream);
            let was = peer.streams.insert(name, stream);
            ingest_changed |= was.as_ref().and_then(ingest_part) != part;
        }
        if ingest_changed {
            peer.ingest_version = update.version;
        }
        debug_assert!(update.incarnation > peer.incarnation || update.version > peer.version);
        peer.incarnation = update.incarnation;
        peer.version = update.version;
        peer.load = update.load;
        Applied::Changed
    }

    /// Records a failed exchange (the peer goes stale on its own when time passes).
    pub fn failed(&mut self, name: &str, error: &str, unauthorized: bool) {
        if let Some(peer) = self.peers.get_mut(name) {
            peer.last_error = Some(error.chars().take(200).collect());
            peer.unauthorized = unauthorized;
        }
    }

    /// Every peer with its state at `now_ms`, in name order.
    pub fn peers(&self, now_ms: u64) -> impl Iterator<Item = (&PeerRecord, PeerState)> {
        self.peers
            .values()
            .map(move |peer| (peer, peer.state(now_ms)))
    }

    /// Records the round-trip time of this node's connection to peer `name`.
    pub fn set_rtt(&mut self, name: &str, rtt_ms: u64) {
        if let Some(peer) = self.peers.get_mut(name) {
            peer.rtt_ms = Some(rtt_ms);
        }
    }

    /// The peer called `name` (`host:port`) with its state at `now_ms`.
    pub fn peer(&self, name: &str, now_ms: u64) -> Option<(&PeerRecord, PeerState)> {
        self.peers.get(name).map(|peer| (peer, peer.state(now_ms)))
    }

    /// The alive peers that can serve `stream` now (alive there, or on-demand there),
    /// highest capture epoch first, then in name order: a cluster_ingest stream's
    /// current capturer comes first, and a stale capturer (lower epoch) after it.
    pub fn locate(&self, stream: &str, now_ms: u64) -> Vec<&PeerRecord> {
        let mut found: Vec<(&PeerRecord, u64)> = self
            .peers
            .values()
            .filter(|peer| peer.state(now_ms) == PeerState::Alive)
            .filter_map(|peer| {
                let remote = peer.streams.get(stream)?;
                (remote.alive || remote.ondemand).then_some((peer, remote.epoch))
            })
            .collect();
        // The order of captures everywhere: (epoch, identity), highest first.
        found.sort_by(|(a, a_epoch), (b, b_epoch)| (b_epoch, &b.id).cmp(&(a_epoch, &a.id)));
        found.into_iter().map(|(peer, _)| peer).collect()
    }

    /// Where a viewer asking for `path` (a stream name, possibly followed by `/file`) is
    /// sent: the first peer [`ClusterView::locate`] gives for the longest stream name
    /// that prefixes the path. Every redirect of a node is this answer.
    pub fn redirect_target(&self, path: &str, now_ms: u64) -> Option<&PeerRecord> {
        let mut end = path.len();
        loop {
            let candidate = &path[..end];
            if let Some(peer) = self.first_located(candidate, now_ms) {
                return Some(peer);
            }
            end = candidate.rfind('/')?;
        }
    }

    /// The longest stream name that prefixes `path` (a stream name, possibly followed by
    /// `/file`) and that some alive peer has: the stream a request for `path` is about.
    pub fn located_stream<'p>(&self, path: &'p str, now_ms: u64) -> Option<&'p str> {
        let mut end = path.len();
        loop {
            let candidate = &path[..end];
            if self.first_located(candidate, now_ms).is_some() {
                return Some(candidate);
            }
            end = candidate.rfind('/')?;
        }
    }

    /// The first peer [`ClusterView::locate`] gives, without collecting the others (every
    /// redirect asks this; ties keep name order, as `locate`'s stable sort does).
    fn first_located(&self, stream: &str, now_ms: u64) -> Option<&PeerRecord> {
        let mut best: Option<(&PeerRecord, u64)> = None;
        for peer in self.peers.values() {
            if peer.state(now_ms) != PeerState::Alive {
                continue;
            }
            let Some(remote) = peer.streams.get(stream) else {
                continue;
            };
            if !(remote.alive || remote.ondemand) {
                continue;
            }
            let above = best
                .is_none_or(|(held, held_epoch)| (remote.epoch, &peer.id) > (held_epoch, &held.id));
            if above {
                best = Some((peer, remote.epoch));
            }
        }
        best.map(|(peer, _)| peer)
    }

    /// The highest capture of `stream` among alive peers that capture it with frames
    /// flowing: (epoch, peer). Captures are ordered by (epoch, identity), the order every
    /// node uses, so two captures started with the same epoch in a partition still have
    /// one winner.
    pub fn best_capture(&self, stream: &str, now_ms: u64) -> Option<(u64, &PeerRecord)> {
        self.peers
            .values()
            .filter(|peer| peer.state(now_ms) == PeerState::Alive)
            .filter_map(|peer| {
                let remote = peer.streams.get(stream)?;
                (remote.ingest == IngestRole::Capturing && remote.alive)
                    .then_some((remote.epoch, peer))
            })
            .max_by(|(a_epoch, a), (b_epoch, b)| (a_epoch, &a.id).cmp(&(b_epoch, &b.id)))
    }

    /// Names of the alive peers.
    pub fn alive(&self, now_ms: u64) -> Vec<&str> {
        self.peers
            .values()
            .filter(|peer| peer.state(now_ms) == PeerState::Alive)
            .map(|peer| peer.name.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stream(alive: bool) -> RemoteStream {
        RemoteStream {
            alive,
            ondemand: false,
            clients: 0,
            bitrate_kbit: 300,
            epoch: 0,
            ingest: IngestRole::None,
            relayed: false,
        }
    }

    fn update(
        incarnation: u64,
        version: u64,
        full: bool,
        upserts: &[(&str, bool)],
        removals: &[&str],
    ) -> PeerUpdate {
        PeerUpdate {
            id: "b:80".into(),
            hostname: "b".into(),
            public_url: String::new(),
            rtmp_url: String::new(),
            incarnation,
            started_ms: incarnation,
            version,
            load: PeerLoad::default(),
            uptime_ms: 0,
            returns_ms: Vec::new(),
            your_restarts_ms: Vec::new(),
            full,
            upserts: upserts
                .iter()
                .map(|(n, a)| (n.to_string(), stream(*a)))
                .collect(),
            removals: removals.iter().map(|n| n.to_string()).collect(),
            called_by_peer: false,
        }
    }

    fn view() -> ClusterView {
        let mut view = ClusterView::default();
        view.add_peer("b", "http://b:8080", 1_000, 3_000);
        view
    }

    #[test]
    fn liveness_follows_the_stale_timeout() {
        let mut view = view();
        assert_eq!(view.peers(0).next().unwrap().1, PeerState::Connecting);
        view.apply("b", update(1, 1, true, &[], &[]), 10_000);
        assert_eq!(view.peers(12_999).next().unwrap().1, PeerState::Alive);
        assert_eq!(view.peers(13_000).next().unwrap().1, PeerState::Stale);
        view.failed("b", "bad certificate", true);
        assert_eq!(
            view.peers(10_001).next().unwrap().1,
            PeerState::Unauthorized
        );
    }

    /// The ingest version moves with a cluster_ingest stream's role, liveness or epoch,
    /// its arrival or removal, a full state or a new incarnation; not with counters or
    /// other streams.
    #[test]
    fn the_ingest_version_moves_only_with_cluster_ingest_parts() {
        let mut view = view();
        let ingest_version = |view: &ClusterView| view.peer("b", 0).unwrap().0.ingest_version;
        let capturing = |alive: bool, epoch: u64| RemoteStream {
            ingest: IngestRole::Capturing,
            relayed: false,
            epoch,
            ..stream(alive)
        };
        let with =
            |version: u64, upserts: Vec<(String, RemoteStream)>, removals: &[&str]| PeerUpdate {
                upserts,
                ..update(1, version, false, &[], removals)
            };
        view.apply("b", update(1, 1, true, &[("tv", true)], &[]), 1);
        assert_eq!(ingest_version(&view), 1, "a full state");
        view.apply(
            "b",
            with(2, vec![("cam".into(), capturing(true, 3))], &[]),
            2,
        );
        assert_eq!(ingest_version(&view), 2, "a cluster_ingest stream arrives");
        let busier = RemoteStream {
            clients: 9,
            bitrate_kbit: 900,
            ..capturing(true, 3)
        };
        view.apply("b", with(3, vec![("cam".into(), busier)], &[]), 3);
        view.apply("b", with(4, vec![("tv".into(), stream(false))], &[]), 4);
        view.apply(
            "b",
            with(5, vec![("radio".into(), stream(true))], &["tv"]),
            5,
        );
        assert_eq!(ingest_version(&view), 2, "counters and other streams");
        view.apply(
            "b",
            with(6, vec![("cam".into(), capturing(false, 3))], &[]),
            6,
        );
        assert_eq!(ingest_version(&view), 6, "liveness");
        view.apply(
            "b",
            with(7, vec![("cam".into(), capturing(false, 4))], &[]),
            7,
        );
        assert_eq!(ingest_version(&view), 7, "epoch");
        view.apply("b", with(8, Vec::new(), &["cam"]), 8);
        assert_eq!(ingest_version(&view), 8, "removal");
        view.apply("b", update(2, 1, false, &[], &[]), 9);
        assert_eq!(ingest_version(&view), 1, "a new incarnation");
    }

    #[test]
    fn versions_never_go_backwards_and_restarts_replace_state() {
        let mut view = view();
        assert_eq!(
            view.apply(
                "b",
                update(1, 5, true, &[("cam", true), ("tv", true)], &[]),
                1
            ),
            Applied::Changed
        );
        assert_eq!(
            view.apply("b", update(1, 4, false, &[("old", true)], &["cam"]), 2),
            Applied::Stale
        );
        assert_eq!(
            view.apply("b", update(1, 6, false, &[], &["tv"]), 3),
            Applied::Changed
        );
        assert_eq!(view.locate("cam", 3).len(), 1);
        assert!(view.locate("tv", 3).is_empty());
        // A restarted peer (new incarnation) starts from its own version 1 again.
        assert_eq!(
            view.apply("b", update(2, 1, false, &[("new", true)], &[]), 4),
            Applied::Changed
        );
        assert!(
            view.locate("cam", 4).is_empty(),
            "the old incarnation's streams are gone"
        );
        assert_eq!(view.locate("new", 4).len(), 1);
    }

    #[test]
    fn only_alive_peers_with_the_stream_alive_are_located() {
        let mut view = view();
        view.add_peer("c", "http://c:8080", 1_000, 3_000);
        view.apply(
            "b",
            update(1, 1, true, &[("cam", true), ("dead", false)], &[]),
            1_000,
        );
        view.apply("c", update(1, 1, true, &[("cam", true)], &[]), 1_000);
        let names: Vec<&str> = view
            .locate("cam", 2_000)
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        assert_eq!(names, vec!["b", "c"]);
        assert!(view.locate("dead", 2_000).is_empty());
        assert!(
            view.locate("cam", 5_000).is_empty(),
            "stale peers are never chosen"
        );
    }

    /// A hello of peer `b` of incarnation `started` heard at `now`, up since its start.
    fn heard_at(started: u64, now: u64, returns: &[u64], your_restarts: &[u64]) -> PeerUpdate {
        PeerUpdate {
            uptime_ms: now - started,
            returns_ms: returns.to_vec(),
            your_restarts_ms: your_restarts.to_vec(),
            ..update(started, now, true, &[], &[])
        }
    }

    #[test]
    fn a_broken_link_is_not_a_return_but_a_published_rejoin_is() {
        let mut view = view();
        view.set_own_start(1_000);
        view.apply("b", heard_at(500, 2_000, &[], &[]), 2_000);
        let b = |view: &ClusterView| view.peer("b", 0).unwrap().0.history.clone();
        assert_eq!(b(&view).healthy_since_ms, 500);
        // Our link to b broke for 10 s: b went stale here and came back, but nothing
        // happened to b, and b says so.
        view.apply("b", heard_at(500, 14_000, &[], &[]), 14_000);
        assert_eq!(b(&view).healthy_since_ms, 500, "every node agrees on b");
        assert!(b(&view).returns_ms.is_empty());
        // b was cut off from its majority and rejoined at 20 s: it publishes that.
        view.apply("b", heard_at(500, 21_000, &[20_000], &[]), 21_000);
        assert_eq!(b(&view).healthy_since_ms, 20_000);
        assert_eq!(b(&view).returns_ms, [20_000]);
    }

    #[test]
    fn a_node_cut_off_from_its_majority_rejoins_at_the_first_news() {
        let mut view = view();
        view.add_peer("c", "http://c:8080", 1_000, 3_000);
        view.set_own_start(1_000);
        view.apply("b", heard_at(500, 2_000, &[], &[]), 2_000);
        view.apply("c", heard_at(500, 2_000, &[], &[]), 2_000);
        assert!(view.own().returns_ms().is_empty());
        // Paused for 10 s: the first exchange after finds both peers stale first.
        view.apply("b", heard_at(500, 12_000, &[], &[]), 12_000);
        assert_eq!(view.own().returns_ms(), [12_000]);
        assert_eq!(view.own().healthy_since_ms(), 12_000);
    }

    /// A view of peers `b` and `c`, both heard at 2 s; this node's last moment then.
    fn heard_both_at_2s() -> ClusterView {
        let mut view = view();
        view.add_peer("c", "http://c:8080", 1_000, 3_000);
        view.set_own_start(1_000);
        view.apply("b", heard_at(500, 2_000, &[], &[]), 2_000);
        view.apply("c", heard_at(500, 2_000, &[], &[]), 2_000);
        view
    }

    fn states(view: &ClusterView, now_ms: u64) -> Vec<(PeerState, bool)> {
        view.peers(now_ms)
            .map(|(peer, state)| (state, peer.unconfirmed(now_ms)))
            .collect()
    }

    /// Paused 10 s: the peers it heard before are not dead at the resume — alive,
    /// unconfirmed — until heard again (confirmed) or a fresh stale timeout later.
    #[test]
    fn a_paused_node_keeps_its_peers_alive_unconfirmed_until_heard_again() {
        let mut view = heard_both_at_2s();
        view.awake(2_250);
        // Without a moment of its own in between, 12 s looks like 10 s of silence.
        assert_eq!(view.peers(12_250).next().unwrap().1, PeerState::Stale);
        view.awake(12_250);
        let alive_unconfirmed = (PeerState::Alive, true);
        assert_eq!(states(&view, 12_250), [alive_unconfirmed; 2]);
        assert_eq!(view.alive(12_250), ["b", "c"]);
        // b is heard again: confirmed; c is not, and goes stale 3 s after the resume.
        view.apply("b", heard_at(500, 12_600, &[], &[]), 12_600);
        assert_eq!(
            states(&view, 15_249),
            [(PeerState::Alive, false), alive_unconfirmed]
        );
        assert_eq!(
            states(&view, 15_250),
            [(PeerState::Alive, false), (PeerState::Stale, false)]
        );
        // The pause made it a returning node: it rejoined when it heard a majority.
        assert_eq!(view.own().returns_ms(), [12_600]);
    }

    /// A gap up to the stale timeout less a fetch interval is no pause, and a peer that
    /// was already stale before a pause gets no grace.
    #[test]
    fn only_a_long_gap_is_a_pause_and_only_peers_alive_before_it_get_a_grace() {
        let mut view = heard_both_at_2s();
        view.awake(2_000);
        view.awake(4_000);
        assert_eq!(states(&view, 4_000), [(PeerState::Alive, false); 2]);
        assert_eq!(states(&view, 5_000), [(PeerState::Stale, false); 2]);
        // Both stale at the last moment before a long gap: nothing to excuse.
        view.awake(5_500);
        view.awake(20_000);
        assert_eq!(states(&view, 20_000), [(PeerState::Stale, false); 2]);
        assert!(view.own().returns_ms().is_empty());
        // A peer alive by a grace only gets none from the next gap: it was not heard.
        view.apply("b", heard_at(500, 21_000, &[], &[]), 21_000);
        view.apply("c", heard_at(500, 21_000, &[], &[]), 21_000);
        view.awake(30_000);
        view.awake(40_000);
        assert_eq!(states(&view, 40_000), [(PeerState::Stale, false); 2]);
    }

    /// The first news after a pause is what ends it: an exchange that arrives first
    /// (before any tick) confirms its sender, and the others stay alive unconfirmed.
    #[test]
    fn the_first_exchange_after_a_pause_confirms_only_its_sender() {
        let mut view = heard_both_at_2s();
        view.apply("c", heard_at(500, 12_000, &[], &[]), 12_000);
        assert_eq!(
            states(&view, 12_000),
            [(PeerState::Alive, true), (PeerState::Alive, false)]
        );
    }

    #[test]
    fn restarts_seen_are_told_back_and_learnt() {
        let mut view = view();
        view.set_own_start(50_000);
        view.apply("b", heard_at(500, 2_000, &[], &[]), 2_000);
        view.apply("b", heard_at(3_500, 4_000, &[], &[40_000]), 4_000);
        let (b, _) = view.peer("b", 4_000).unwrap();
        assert_eq!(b.history.restarts_seen(), [3_500], "b restarted");
        assert_eq!(b.history.returns_ms, [3_500]);
        assert_eq!(view.own().returns_ms(), [40_000], "b saw us restart");
    }

    proptest! {
        /// Whatever order updates arrive in, the view ends at the highest (incarnation, version).
        #[test]
        fn gossip_is_monotonic(updates in proptest::collection::vec((1u64..4, 1u64..20), 1..40)) {
            let mut view = view();
            let mut best = (0, 0);
            for (now, (incarnation, version)) in updates.into_iter().enumerate() {
                view.apply("b", update(incarnation, version, true, &[], &[]), now as u64 + 1);
                best = best.max((incarnation, version));
                let record = view.peers(0).next().unwrap().0;
                prop_assert_eq!((record.incarnation, record.version), best);
            }
        }

        /// Two nodes ticking every interval at any phases, with exchanges taking any
        /// latency up to a quarter interval: each side hears the other at least once per
        /// interval and latency, never more than two calls go per round (as without the
        /// rule), and once both have ticked a round has one call, unless their ticks
        /// fall within one exchange's latency of each other (neither has heard of the
        /// other's call when it ticks).
        #[test]
        fn a_pair_settles_on_one_caller_and_both_keep_hearing(
            phase_a_ms in 0u64..1_000,
            phase_b_ms in 0u64..1_000,
            latencies_ms in proptest::collection::vec(1u64..250, 60),
        ) {
            const INTERVAL_MS: u64 = 1_000;
            // views[0] is A's view (of "b"), views[1] B's (of "b" too: the other node).
            let mut views = [ClusterView::default(), ClusterView::default()];
            for view in &mut views {
                view.add_peer("b", "", INTERVAL_MS, 3 * INTERVAL_MS);
            }
            let phases = [phase_a_ms, phase_b_ms];
            // Every tick of both, in time order: (time, node).
            let mut ticks: Vec<(u64, usize)> = (0..30u64)
                .flat_map(|round| [(phases[0] + round * INTERVAL_MS, 0), (phases[1] + round * INTERVAL_MS, 1)])
                .collect();
            ticks.sort_unstable();
            // Exchanges in flight: (done at, caller).
            let mut in_flight: Vec<(u64, usize)> = Vec::new();
            let mut calls: Vec<u64> = Vec::new();
            let mut heard: [Vec<u64>; 2] = [Vec::new(), Vec::new()];
            let mut latencies = latencies_ms.into_iter().cycle();
            let mut version = 0;
            for (now_ms, node) in ticks {
                // Exchanges that completed by now inform both sides.
                in_flight.sort_unstable();
                while let Some(&(done_ms, caller)) = in_flight.first().filter(|(done, _)| *done <= now_ms) {
                    in_flight.remove(0);
                    version += 1;
                    for side in [0, 1] {
                        let mut news = update(1, version, true, &[], &[]);
                        news.called_by_peer = side != caller;
                        views[side].apply("b", news, done_ms);
                        heard[side].push(done_ms);
                    }
                }
                let called = views[node].peer("b", now_ms).unwrap().0.called_this_round(now_ms);
                if !called {
                    calls.push(now_ms);
                    in_flight.push((now_ms + latencies.next().unwrap(), node));
                }
            }
            let settled: Vec<u64> = calls.iter().copied().filter(|at| *at >= 2 * INTERVAL_MS).collect();
            for round in settled.windows(3) {
                prop_assert!(round[2] - round[0] >= INTERVAL_MS / 2, "three calls in one round: {calls:?}");
            }
            let apart_ms = phase_a_ms.abs_diff(phase_b_ms);
            if apart_ms.min(INTERVAL_MS - apart_ms) > 250 {
                for pair in settled.windows(2) {
                    prop_assert!(pair[1] - pair[0] > INTERVAL_MS / 2, "two calls in one round: {calls:?}");
                }
            }
            for side in &heard {
                for pair in side.windows(2) {
                    prop_assert!(pair[1] - pair[0] <= INTERVAL_MS + 250, "a gap: {side:?}");
                }
            }
        }
    }
}
