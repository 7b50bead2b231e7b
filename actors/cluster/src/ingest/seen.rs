//! What the coordinator sees of the cluster at each tick: this node, the alive peers
//! with what they advertise about cluster_ingest streams, and the counts minority
//! restraint needs, read from the cluster view.
//!
//! The coordinator ticks four times per exchange interval, and most ticks see the very
//! cluster the last one saw: only the times peers were last heard moved. Rebuilding
//! every member, a string at a time, and then comparing it with the last tick's was
//! most of an idle tick. [`ClusterSeen`] keeps the last tick's members and compares the
//! view with them field by field, copying nothing; a part is replaced only when it
//! changed, so the book recognises an unchanged part by its address (see `quiet`).

use std::sync::Arc;

use super::book::{Advertised, Member};
use super::{IngestIo, IngestLimits, IngestPlan};
use crate::mesh::view::{IngestRole, PeerRecord, PeerState};

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

/// What the coordinator sees of the cluster, kept from tick to tick (see the module
/// header).
#[derive(Default)]
pub(super) struct ClusterSeen {
    /// This node (`None` before the first tick).
    pub(super) me: Option<Arc<Member>>,
    /// The alive peers, in the view's order.
    pub(super) peers: Arc<[Member]>,
    /// For each of `peers`: what it was read from.
    read_from: Vec<ReadFrom>,
    /// Every known node, this one included.
    pub(super) cluster_size: usize,
    /// Known peers never heard from.
    pub(super) unheard: usize,
    /// Alive peers not heard for [`fading_after_ms`].
    pub(super) fading: usize,
    /// Alive peers not heard since this node resumed from a pause
    /// (`PeerRecord::unconfirmed`).
    pub(super) unconfirmed: usize,
}

/// What one peer's member was read from.
struct ReadFrom {
    /// Its record's key in the view.
    key: String,
    /// The (incarnation, ingest version) its streams were read at: what a peer
    /// advertises about cluster_ingest streams changes only with those.
    ingest: (u64, u64),
    /// The (incarnation, state version) read: while they stand, so does all the member
    /// takes from the peer's state (its load, its streams), so only the hello's parts
    /// (hostname, history) need a look.
    state: (u64, u64),
}

/// One alive peer as this tick reads it.
struct PeerRead {
    /// Its position in the last tick's peers.
    previous: Option<usize>,
    /// The (incarnation, ingest version) read.
    read: (u64, u64),
    /// The (incarnation, state version) read.
    state: (u64, u64),
    /// The member and the record's key, when it differs from the last tick's.
    fresh: Option<(Member, String)>,
}

impl ClusterSeen {
    /// Reads the cluster again at `now_ms`.
    pub(super) fn update(
        &mut self,
        plan: &IngestPlan,
        io: &dyn IngestIo,
        started_ms: u64,
        now_ms: u64,
    ) {
        let over_cpu_limit = plan
            .limits
            .cpu_limit_percent
            .is_some_and(|limit| io.cpu_usage() >= limit as f32);
        let Some(view) = io.view() else {
            self.update_me(plan, started_ms, &[], over_cpu_limit);
            self.peers = Arc::default();
            self.read_from.clear();
            self.cluster_size = 1;
            self.unheard = 0;
            self.fading = 0;
            self.unconfirmed = 0;
            return;
        };
        // A tick is one of this node's moments: after a pause, the view keeps the peers
        // it heard before alive, unconfirmed (`ClusterView::awake`), rather than all dead.
        view.write()
            .unwrap_or_else(|p| p.into_inner())
            .awake(now_ms);
        let view = view.read().unwrap_or_else(|p| p.into_inner());
        // This node as its peers see it: since its start or its last rejoin, with the
        // restarts they told it about (mesh::history).
        let alive_since_ms = started_ms.max(view.own().healthy_since_ms());
        self.update_me(
            plan,
            alive_since_ms,
            view.own().returns_ms(),
            over_cpu_limit,
        );
        let mut reads: Vec<PeerRead> = Vec::with_capacity(self.peers.len());
        // Identities already read: a node known under two keys (configured, and learnt
        // from its call) counts once.
        let mut ids: Vec<&str> = Vec::with_capacity(self.peers.len());
        let mut size = 1;
        let mut unheard = 0;
        let mut fading = 0;
        let mut unconfirmed = 0;
        for (record, state) in view.peers(now_ms) {
            size += 1;
            let state =
                if super::sabotaged!(plan.sabotage, BlindResume) && record.unconfirmed(now_ms) {
                    PeerState::Stale
                } else {
                    state
                };
            match state {
                PeerState::Connecting => unheard += 1,
                PeerState::Alive | PeerState::Stale
                    if (state == PeerState::Alive
                        || super::sabotaged!(plan.sabotage, IgnoreStale))
                        && !record.id.is_empty()
                        && record.id != plan.me
                        && !ids.contains(&record.id.as_str()) =>
                {
                    if now_ms.saturating_sub(record.last_seen_ms)
                        >= fading_after_ms(record, plan.tick_ms)
                    {
                        fading += 1;
                    }
                    if record.unconfirmed(now_ms) {
                        unconfirmed += 1;
                    }
                    ids.push(&record.id);
                    reads.push(self.read_peer(plan, record, reads.len()));
                }
                _ => {}
            }
        }
        self.cluster_size = size;
        self.unheard = unheard;
        self.fading = fading;
        self.unconfirmed = unconfirmed;
        let kept = reads.len() == self.peers.len()
            && reads
                .iter()
                .enumerate()
                .all(|(index, read)| read.previous == Some(index) && read.fresh.is_none());
        if kept {
            for (slot, read) in self.read_from.iter_mut().zip(&reads) {
                slot.ingest = read.read;
                slot.state = read.state;
            }
            return;
        }
        let mut peers = Vec::with_capacity(reads.len());
        let mut read_from = Vec::with_capacity(reads.len());
        for read in reads {
            let (member, name) = match (read.fresh, read.previous) {
                (Some(fresh), _) => fresh,
                (None, Some(previous)) => (
                    self.peers[previous].clone(),
                    self.read_from[previous].key.clone(),
                ),
                (None, None) => unreachable!("a peer read afresh has a fresh member"),
            };
            peers.push(member);
            read_from.push(ReadFrom {
                key: name,
                ingest: read.read,
                state: read.state,
            });
        }
        self.peers = peers.into();
        self.read_from = read_from;
    }

    /// This node, replaced only when it changed.
    fn update_me(
        &mut self,
        plan: &IngestPlan,
        alive_since_ms: u64,
        returns_ms: &[u64],
        over_cpu_limit: bool,
    ) {
        let same = self.me.as_ref().is_some_and(|me| {
            me.alive_since_ms == alive_since_ms
                && me.returns_ms == returns_ms
                && me.over_cpu_limit == over_cpu_limit
        });
        if !same {
            self.me = Some(Arc::new(Member {
                name: plan.me.clone(),
                aliases: plan.aliases.clone(),
                alive_since_ms,
                returns_ms: returns_ms.to_vec(),
                channel_limit: plan.limits.channel_limit,
                over_cpu_limit,
                streams: Arc::default(),
            }));
        }
    }

    /// `record`, the `index`th alive peer this tick, compared with what the last tick
    /// read from it.
    fn read_peer(&self, plan: &IngestPlan, record: &PeerRecord, index: usize) -> PeerRead {
        let read = (record.incarnation, record.ingest_version);
        let state = (record.incarnation, record.version);
        // Most ticks: the same peer at the same position, at the same state version.
        if let Some(from) = self.read_from.get(index)
            && from.state == state
            && from.key == record.name
        {
            let old = &self.peers[index];
            if old.name == record.id
                && old.alive_since_ms == record.history.healthy_since_ms
                && old.returns_ms == record.history.returns_ms
            {
                return PeerRead {
                    previous: Some(index),
                    read,
                    state,
                    fresh: None,
                };
            }
        }
        let limits = limits_of(plan, &[&record.name, &record.id])
            .copied()
            .unwrap_or_default();
        let over_cpu_limit = limits
            .cpu_limit_percent
            .is_some_and(|limit| record.load.cpu_usage >= limit as f32);
        // At the same position while the alive peers stay the same.
        let previous = match self.read_from.get(index) {
            Some(from) if from.key == record.name => Some(index),
            _ => self
                .read_from
                .iter()
                .position(|from| from.key == record.name),
        };
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
        let old = previous.map(|previous| &self.peers[previous]);
        let streams = match old {
            Some(old)
                if previous.is_some_and(|previous| self.read_from[previous].ingest == read) =>
            {
                old.streams.clone()
            }
            // A new incarnation or a full state may still say the same: the old map is
            // kept, so the book sees an unchanged peer.
            Some(old)
                if old
                    .streams
                    .iter()
                    .map(|(name, a)| (name, *a))
                    .eq(ingest_streams()) =>
            {
                old.streams.clone()
            }
            _ => Arc::new(
                ingest_streams()
                    .map(|(name, advertised)| (name.clone(), advertised))
                    .collect(),
            ),
        };
        // Its aliases follow from the record's key and hostname, the same when `previous`
        // matched.
        let unchanged = old.is_some_and(|old| {
            old.name == record.id
                && old.alive_since_ms == record.history.healthy_since_ms
                && old.returns_ms == record.history.returns_ms
                && old.channel_limit == limits.channel_limit
                && old.over_cpu_limit == over_cpu_limit
                && Arc::ptr_eq(&old.streams, &streams)
        });
        let fresh = (!unchanged).then(|| {
            let member = Member {
                name: record.id.clone(),
                aliases: vec![record.name.clone(), record.hostname.clone()],
                // What the peer publishes, so every node counts the same returns.
                alive_since_ms: record.history.healthy_since_ms,
                returns_ms: record.history.returns_ms.clone(),
                channel_limit: limits.channel_limit,
                over_cpu_limit,
                streams,
            };
            (member, record.name.clone())
        });
        PeerRead {
            previous: previous.filter(|_| unchanged),
            read,
            state,
            fresh,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::RwLock;

    use super::*;
    use crate::ingest::{NoIngestIo, StreamFrames};
    use crate::mesh::view::{ClusterView, PeerLoad, PeerUpdate, RemoteStream};

    struct ViewIo(Arc<RwLock<ClusterView>>);

    /// [`NoIngestIo`] with a cluster view.
    impl IngestIo for ViewIo {
        fn view(&self) -> Option<Arc<RwLock<ClusterView>>> {
            Some(self.0.clone())
        }
        fn cpu_usage(&self) -> f32 {
            NoIngestIo.cpu_usage()
        }
        fn frames(&self, stream: &str, now_ms: u64) -> Option<StreamFrames> {
            NoIngestIo.frames(stream, now_ms)
        }
    }

    /// A full state of `host` capturing `cam` (frames flowing or not) and running `other`.
    fn state(host: &str, version: u64, cam_alive: bool) -> PeerUpdate {
        let stream = |alive, ingest, epoch| RemoteStream {
            alive,
            ondemand: false,
            clients: 0,
            bitrate_kbit: 0,
            epoch,
            ingest,
        };
        PeerUpdate {
            id: format!("{host}:80"),
            hostname: host.into(),
            public_url: String::new(),
            rtmp_url: String::new(),
            incarnation: 1,
            started_ms: 1,
            version,
            load: PeerLoad::default(),
            uptime_ms: 0,
            returns_ms: Vec::new(),
            your_restarts_ms: Vec::new(),
            full: true,
            upserts: vec![
                ("cam".into(), stream(cam_alive, IngestRole::Capturing, 3)),
                ("other".into(), stream(true, IngestRole::None, 0)),
            ],
            removals: Vec::new(),
            called_by_peer: false,
        }
    }

    #[test]
    fn an_unchanged_cluster_keeps_its_allocations_and_a_change_replaces_only_its_part() {
        let view = Arc::new(RwLock::new(ClusterView::default()));
        for name in ["b:80", "c:80", "d:80"] {
            view.write().unwrap().add_peer(name, "", 1_000, 3_000);
        }
        let apply = |name: &str, update, now_ms| {
            view.write().unwrap().apply(name, update, now_ms);
        };
        apply("b:80", state("b", 1, true), 10_000);
        apply("c:80", state("c", 1, true), 10_000);
        let io = ViewIo(view.clone());
        let plan = IngestPlan {
            me: "a:80".into(),
            tick_ms: 250,
            ..IngestPlan::default()
        };
        let mut seen = ClusterSeen::default();
        seen.update(&plan, &io, 0, 10_100);
        let (me, peers) = (seen.me.clone().unwrap(), seen.peers.clone());
        assert_eq!(
            peers.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(),
            ["b:80", "c:80"]
        );
        assert_eq!((seen.cluster_size, seen.unheard, seen.fading), (4, 1, 0));
        assert_eq!(peers[0].aliases, ["b:80", "b"]);
        assert_eq!(
            peers[0].streams.keys().collect::<Vec<_>>(),
            ["cam"],
            "only cluster_ingest streams"
        );

        // Heard again with the same state: nothing is copied.
        apply("b:80", state("b", 2, true), 11_000);
        seen.update(&plan, &io, 0, 11_100);
        assert!(Arc::ptr_eq(&me, seen.me.as_ref().unwrap()));
        assert!(Arc::ptr_eq(&peers, &seen.peers));
        // Heard again without a new state (the same version): nothing is read again.
        apply("b:80", state("b", 2, true), 11_200);
        seen.update(&plan, &io, 0, 11_300);
        assert!(Arc::ptr_eq(&peers, &seen.peers));

        // b's capture loses its frames: b's map is new, c's the very same.
        apply("b:80", state("b", 3, false), 11_500);
        seen.update(&plan, &io, 0, 11_600);
        assert!(!Arc::ptr_eq(&peers, &seen.peers));
        assert!(!Arc::ptr_eq(&peers[0].streams, &seen.peers[0].streams));
        assert!(!seen.peers[0].streams["cam"].alive);
        assert!(Arc::ptr_eq(&peers[1].streams, &seen.peers[1].streams));

        // c falls silent: fading, then stale and gone; b stays, its map kept.
        let before = seen.peers.clone();
        apply("b:80", state("b", 4, false), 12_000);
        seen.update(&plan, &io, 0, 12_100);
        assert_eq!(seen.fading, 1, "c not heard for 2.1 s");
        assert!(Arc::ptr_eq(&before, &seen.peers));
        apply("b:80", state("b", 5, false), 13_000);
        seen.update(&plan, &io, 0, 13_100);
        assert_eq!(
            seen.peers
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>(),
            ["b:80"]
        );
        assert_eq!(seen.fading, 0);
        assert!(Arc::ptr_eq(&before[0].streams, &seen.peers[0].streams));
    }
}
