//! What the coordinator sees of the cluster at each tick: this node, the alive peers
//! with what they advertise about cluster_ingest streams, and the counts minority
//! restraint needs, read from the cluster view.
//!
//! Every tick reads every alive peer afresh, but for its advertised cluster_ingest
//! streams: those change only with the peer's (incarnation, ingest version), the view's
//! generation counter for them, so a peer's map is rebuilt only when that counter moved
//! (and kept, as the same allocation, when the rebuilt map says the same). The members
//! are replaced only when they differ, so the book sees an unchanged cluster as the very
//! same input (see `quiet`).

use std::collections::BTreeMap;
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

/// A peer's advertised cluster_ingest streams, shared from tick to tick.
type AdvertMap = Arc<BTreeMap<String, Advertised>>;

/// What a peer's adverts were read at (its (incarnation, ingest version)), and the map.
type AdvertsRead = BTreeMap<String, ((u64, u64), AdvertMap)>;

/// What the coordinator sees of the cluster, kept from tick to tick (see the module
/// header).
#[derive(Default)]
pub(super) struct ClusterSeen {
    /// This node (`None` before the first tick).
    pub(super) me: Option<Arc<Member>>,
    /// The alive peers, in the view's order.
    pub(super) peers: Arc<[Member]>,
    /// Per peer key: the (incarnation, ingest version) its advertised cluster_ingest
    /// streams were read at, and the map read.
    adverts: AdvertsRead,
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
            self.adverts.clear();
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
        let mut peers: Vec<Member> = Vec::with_capacity(self.peers.len());
        let mut read = AdvertsRead::new();
        let (mut size, mut unheard, mut fading, mut unconfirmed) = (1, 0, 0, 0);
        for (record, state) in view.peers(now_ms) {
            size += 1;
            let state =
                if super::sabotaged!(plan.sabotage, BlindResume) && record.unconfirmed(now_ms) {
                    PeerState::Stale
                } else {
                    state
                };
            let counted = match state {
                PeerState::Connecting => {
                    unheard += 1;
                    false
                }
                PeerState::Alive => true,
                PeerState::Stale => super::sabotaged!(plan.sabotage, IgnoreStale),
                _ => false,
            };
            // A node known under two keys (configured, and learnt from its call) counts
            // once; this node never counts as its own peer.
            if !counted
                || record.id.is_empty()
                || record.id == plan.me
                || peers.iter().any(|peer| peer.name == record.id)
            {
                continue;
            }
            if now_ms.saturating_sub(record.last_seen_ms) >= fading_after_ms(record, plan.tick_ms) {
                fading += 1;
            }
            if record.unconfirmed(now_ms) {
                unconfirmed += 1;
            }
            let streams = self.advertised(record);
            read.insert(
                record.name.clone(),
                ((record.incarnation, record.ingest_version), streams.clone()),
            );
            peers.push(member(plan, record, streams));
        }
        self.cluster_size = size;
        self.unheard = unheard;
        self.fading = fading;
        self.unconfirmed = unconfirmed;
        self.adverts = read;
        if *self.peers != *peers {
            self.peers = peers.into();
        }
    }

    /// What `record` advertises about cluster_ingest streams: the map read last time
    /// while its (incarnation, ingest version) stands; else read again, and the old map
    /// kept when the new one says the same.
    fn advertised(&self, record: &PeerRecord) -> AdvertMap {
        let generation = (record.incarnation, record.ingest_version);
        let last = self.adverts.get(&record.name);
        if let Some((read_at, map)) = last
            && *read_at == generation
        {
            return map.clone();
        }
        let fresh: BTreeMap<String, Advertised> = record
            .streams
            .iter()
            .filter(|(_, s)| s.ingest != IngestRole::None)
            .map(|(name, s)| {
                let advertised = Advertised {
                    role: s.ingest,
                    alive: s.alive,
                    epoch: s.epoch,
                };
                (name.clone(), advertised)
            })
            .collect();
        match last {
            Some((_, map)) if **map == fresh => map.clone(),
            _ => Arc::new(fresh),
        }
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
}

/// The member `record` is, with its advertised `streams`.
fn member(plan: &IngestPlan, record: &PeerRecord, streams: AdvertMap) -> Member {
    let limits = limits_of(plan, &[&record.name, &record.id])
        .copied()
        .unwrap_or_default();
    Member {
        name: record.id.clone(),
        aliases: vec![record.name.clone(), record.hostname.clone()],
        // What the peer publishes, so every node counts the same returns.
        alive_since_ms: record.history.healthy_since_ms,
        returns_ms: record.history.returns_ms.clone(),
        channel_limit: limits.channel_limit,
        over_cpu_limit: limits
            .cpu_limit_percent
            .is_some_and(|limit| record.load.cpu_usage >= limit as f32),
        streams,
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
            relayed: false,
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
