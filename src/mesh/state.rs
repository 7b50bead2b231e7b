//! The mesh's state protocol, apart from any connection: what a node tells a peer in an
//! exchange (its hello and its versioned state), how it turns that into a delta, and how
//! a received pair becomes an update of the cluster view. `service` moves these messages
//! over QUIC; nothing here does IO or reads a clock.
//!
//! State deltas: each side remembers, per peer, the last stream list it sent and under
//! which version. A `Hello` says which version of the other side's state the sender has;
//! when that matches what was last sent, only the difference goes out, otherwise the
//! whole list. Versions grow with every change, so a receiver never goes backwards.
//!
//! Peers' addresses (how a node configured with one seed peer learns the whole mesh) are
//! part of the versioned state: a change of the alive set bumps the version, and an
//! answer carries the addresses only to a caller not known to have them (known: it
//! applied exactly the last state we sent it, and that state or an earlier one it
//! applied likewise carried the current addresses). A caller's state carries none: the
//! answering side learns its peers from its own calls. With 20 nodes the list is 19
//! addresses, which every exchange would otherwise repeat.

use std::collections::HashMap;
use std::sync::Arc;

use flotilla_cluster::mesh::view::{ClusterView, PeerLoad, PeerState, PeerUpdate};

use super::wire::{MAX_PEERS, Message, NodeAddress, NodeLoad, StreamEntry};

/// This node's stream list as advertised (sorted by name, names unique), with its
/// generation: the advertiser raises it whenever the list changes, so "unchanged since"
/// is one comparison. Shared between the current state and what was last sent to each
/// peer (no copy per peer per exchange).
#[derive(Debug, Clone, Default)]
pub struct Advertised {
    pub generation: u64,
    pub streams: Arc<Vec<StreamEntry>>,
}

/// What this node advertises, read fresh for every exchange: its load and its streams.
pub type LocalState = Arc<dyn Fn() -> (NodeLoad, Advertised) + Send + Sync>;

/// Who this node is to its peers, for its hellos.
#[derive(Debug, Clone)]
pub struct Introduction {
    pub me: NodeAddress,
    pub incarnation: u64,
    /// This node's start, Unix ms (its clock).
    pub started_ms: u64,
}

/// The last state sent to one peer.
struct Sent {
    version: u64,
    streams: Advertised,
    /// The version of our alive addresses the peer holds once it applies this state:
    /// those it carried, else (when the peer had applied the state before it) the ones
    /// that one left it with; `None`: not known to have any.
    addresses_version: Option<u64>,
}

/// The local state as last read, with what changed when.
#[derive(Clone)]
struct LastState {
    load: NodeLoad,
    streams: Advertised,
    /// The alive peers' addresses, in the view's order.
    addresses: Arc<Vec<NodeAddress>>,
    /// The version at which `addresses` last changed.
    addresses_version: u64,
}

/// The versioned local state and what each peer was last sent of it. One per node,
/// behind one lock: an exchange reads and updates both at once.
#[derive(Default)]
pub struct Outbox {
    /// Raised whenever the load, the streams or the alive addresses change.
    version: u64,
    last: Option<LastState>,
    /// Keyed by the peer's view key.
    sent: HashMap<String, Sent>,
}

impl Outbox {
    /// The current state, with its version (raised when anything changed since the last
    /// read).
    fn refresh(
        &mut self,
        load: NodeLoad,
        streams: Advertised,
        view: &ClusterView,
        now_ms: u64,
    ) -> LastState {
        debug_assert!(
            streams.streams.windows(2).all(|w| w[0].name < w[1].name),
            "the local state gives streams in name order, names unique"
        );
        // The addresses are compared with the view in place, and copied only when they
        // changed.
        let previous = self.last.take();
        let (same_streams, same_addresses) = previous.as_ref().map_or((false, false), |l| {
            (
                l.streams.generation == streams.generation,
                l.addresses.iter().eq(alive_addresses(view, now_ms)),
            )
        });
        let state = match previous {
            Some(l) if l.load == load && same_streams && same_addresses => l,
            previous => {
                // The load alone moves at most exchanges (uptime, bitrates).
                self.version += 1;
                let (addresses, addresses_version) = match previous {
                    Some(l) if same_addresses => (l.addresses, l.addresses_version),
                    _ => (Arc::new(owned_addresses(view, now_ms)), self.version),
                };
                LastState {
                    load,
                    streams,
                    addresses,
                    addresses_version,
                }
            }
        };
        self.last = Some(state.clone());
        state
    }

    /// Our state for `peer_key`, as a delta when the peer has what we last sent it
    /// (`peer_has`: the incarnation and version of ours it holds). `with_addresses`: an
    /// answer, which carries the alive peers' addresses when the peer may not have them
    /// yet (a caller's state never does: see the module header).
    #[allow(clippy::too_many_arguments)]
    pub fn state_for(
        &mut self,
        peer_key: &str,
        peer_has: (u64, u64),
        with_addresses: bool,
        incarnation: u64,
        (load, streams): (NodeLoad, Advertised),
        view: &ClusterView,
        now_ms: u64,
    ) -> Message {
        let current = self.refresh(load, streams, view, now_ms);
        let version = self.version;
        // The peer applied exactly the last state we sent it (else it gets a full one).
        let delta_base = self
            .sent
            .get(peer_key)
            .filter(|last| peer_has == (incarnation, last.version));
        let peer_addresses = delta_base.and_then(|last| last.addresses_version);
        let (full, upserts, removals) = match delta_base {
            Some(last) if last.streams.generation == current.streams.generation => {
                (false, Vec::new(), Vec::new())
            }
            Some(last) => {
                let (upserts, removals) = delta(&last.streams.streams, &current.streams.streams);
                (false, upserts, removals)
            }
            None => (true, current.streams.streams.to_vec(), Vec::new()),
        };
        let carries_addresses = with_addresses && peer_addresses != Some(current.addresses_version);
        let entry = Sent {
            version,
            streams: current.streams,
            addresses_version: if carries_addresses {
                Some(current.addresses_version)
            } else {
                peer_addresses
            },
        };
        match self.sent.get_mut(peer_key) {
            Some(last) => *last = entry,
            None => {
                self.sent.insert(peer_key.to_string(), entry);
            }
        }
        Message::State {
            incarnation,
            version,
            load: current.load,
            full,
            upserts,
            removals,
            peers: if carries_addresses {
                current.addresses.to_vec()
            } else {
                Vec::new()
            },
        }
    }
}

/// The hello this node sends `peer_key`: who it is, what it knows of the peer's state,
/// and what it saw of the peer's restarts.
pub fn hello(us: &Introduction, view: &ClusterView, peer_key: &str, now_ms: u64) -> Message {
    let (known_incarnation, known_version) = view.known(peer_key);
    Message::Hello {
        node: us.me.clone(),
        incarnation: us.incarnation,
        started_ms: us.started_ms,
        known_incarnation,
        known_version,
        uptime_ms: now_ms.saturating_sub(us.started_ms),
        returns_ms: view.own().returns_ms().to_vec(),
        your_restarts_ms: view
            .peer(peer_key, now_ms)
            .map(|(peer, _)| peer.history.restarts_seen().to_vec())
            .unwrap_or_default(),
    }
}

/// A received hello and state as an update of the view, with the peer addresses the
/// state taught (`None`: not a hello and a state). `called_by_peer`: this node answered
/// the exchange (see `PeerRecord::called_this_round`).
pub fn update_from(
    hello: Message,
    state: Message,
    called_by_peer: bool,
) -> Option<(PeerUpdate, Vec<NodeAddress>)> {
    let (
        Message::Hello {
            node,
            started_ms,
            uptime_ms,
            returns_ms,
            your_restarts_ms,
            ..
        },
        Message::State {
            incarnation,
            version,
            load,
            full,
            upserts,
            removals,
            peers,
        },
    ) = (hello, state)
    else {
        return None;
    };
    let update = PeerUpdate {
        id: node.id,
        hostname: node.hostname,
        public_url: node.public_url,
        rtmp_url: node.rtmp_url,
        incarnation,
        started_ms,
        version,
        load: to_load(&load),
        uptime_ms,
        returns_ms,
        your_restarts_ms,
        full,
        upserts: upserts
            .iter()
            .map(|s| (s.name.clone(), s.remote()))
            .collect(),
        removals,
        called_by_peer,
    };
    Some((update, peers))
}

fn to_load(load: &NodeLoad) -> PeerLoad {
    PeerLoad {
        cpu_usage: load.cpu_usage,
        memory_usage: load.memory_usage,
        total_clients: load.total_clients,
        online_streams: load.online_streams,
        output_kbit: load.output_kbit,
        bandwidth_usage: load.bandwidth_usage,
        total_bandwidth: load.total_bandwidth,
        uptime: load.uptime,
    }
}

/// The alive peers' addresses as the view has them (borrowed, at most [`MAX_PEERS`]),
/// each as it would be sent.
fn alive_addresses(view: &ClusterView, now_ms: u64) -> impl Iterator<Item = AddressRef<'_>> + '_ {
    view.peers(now_ms)
        .filter(|(_, state)| *state == PeerState::Alive)
        .map(|(peer, _)| AddressRef {
            id: &peer.id,
            hostname: &peer.hostname,
            mesh: &peer.name,
            public_url: &peer.public_url,
            rtmp_url: &peer.rtmp_url,
        })
        .take(MAX_PEERS)
}

/// Alive peers' addresses, owned, so that others learn them (peers of peers).
fn owned_addresses(view: &ClusterView, now_ms: u64) -> Vec<NodeAddress> {
    alive_addresses(view, now_ms)
        .map(|address| NodeAddress {
            id: address.id.to_string(),
            hostname: address.hostname.to_string(),
            mesh: address.mesh.to_string(),
            public_url: address.public_url.to_string(),
            rtmp_url: address.rtmp_url.to_string(),
        })
        .collect()
}

/// A [`NodeAddress`] borrowed from the view.
#[derive(Debug, Clone, Copy)]
struct AddressRef<'a> {
    id: &'a str,
    hostname: &'a str,
    mesh: &'a str,
    public_url: &'a str,
    rtmp_url: &'a str,
}

impl PartialEq<AddressRef<'_>> for &NodeAddress {
    fn eq(&self, other: &AddressRef<'_>) -> bool {
        self.id == other.id
            && self.hostname == other.hostname
            && self.mesh == other.mesh
            && self.public_url == other.public_url
            && self.rtmp_url == other.rtmp_url
    }
}

/// What changed from `before` to `after` (both sorted by name, names unique): the
/// entries new or different in `after`, and the names gone from it, each in name order.
fn delta(before: &[StreamEntry], after: &[StreamEntry]) -> (Vec<StreamEntry>, Vec<String>) {
    let (mut upserts, mut removals) = (Vec::new(), Vec::new());
    let (mut old, mut new) = (before.iter().peekable(), after.iter().peekable());
    loop {
        match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(gone), None) => {
                removals.push(gone.name.clone());
                old.next();
            }
            (None, Some(added)) => {
                upserts.push((*added).clone());
                new.next();
            }
            (Some(was), Some(is)) => match was.name.cmp(&is.name) {
                std::cmp::Ordering::Less => {
                    removals.push(was.name.clone());
                    old.next();
                }
                std::cmp::Ordering::Greater => {
                    upserts.push((*is).clone());
                    new.next();
                }
                std::cmp::Ordering::Equal => {
                    if was != is {
                        upserts.push((*is).clone());
                    }
                    old.next();
                    new.next();
                }
            },
        }
    }
    (upserts, removals)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn stream(name: &str, clients: u64) -> StreamEntry {
        StreamEntry {
            name: name.into(),
            alive: true,
            ondemand: false,
            clients,
            bitrate_kbit: 300,
            epoch: 0,
            ingest: flotilla_cluster::mesh::view::IngestRole::None,
            relayed: false,
        }
    }

    proptest! {
        /// The merge walk gives what comparing name maps gives (the definition).
        #[test]
        fn the_delta_is_the_difference_of_the_name_maps(
            before in proptest::collection::btree_map("[a-f]{1,2}", 0u64..3, 0..12),
            after in proptest::collection::btree_map("[a-f]{1,2}", 0u64..3, 0..12),
        ) {
            let entries = |map: &BTreeMap<String, u64>| -> Vec<StreamEntry> {
                map.iter().map(|(name, clients)| stream(name, *clients)).collect()
            };
            let (old, new) = (entries(&before), entries(&after));
            let (upserts, removals) = delta(&old, &new);
            let expected_upserts: Vec<StreamEntry> = new
                .iter()
                .filter(|s| old.iter().find(|o| o.name == s.name) != Some(*s))
                .cloned()
                .collect();
            let expected_removals: Vec<String> =
                before.keys().filter(|name| !after.contains_key(*name)).cloned().collect();
            prop_assert_eq!(upserts, expected_upserts);
            prop_assert_eq!(removals, expected_removals);
        }
    }

    fn advertised(generation: u64, names: &[(&str, u64)]) -> (NodeLoad, Advertised) {
        let streams = names.iter().map(|(name, c)| stream(name, *c)).collect();
        (
            NodeLoad::default(),
            Advertised {
                generation,
                streams: Arc::new(streams),
            },
        )
    }

    fn streams_of(message: &Message) -> (bool, Vec<String>, Vec<String>) {
        match message {
            Message::State {
                full,
                upserts,
                removals,
                ..
            } => (
                *full,
                upserts.iter().map(|s| s.name.clone()).collect(),
                removals.clone(),
            ),
            other => panic!("not a state: {other:?}"),
        }
    }

    fn version_of(message: &Message) -> u64 {
        match message {
            Message::State { version, .. } => *version,
            other => panic!("not a state: {other:?}"),
        }
    }

    /// The generation decides "unchanged": the same generation sends an empty delta and
    /// keeps the version; a new one sends what differs, under a new version.
    #[test]
    fn deltas_follow_the_advertised_generation() {
        let view = ClusterView::default();
        let mut outbox = Outbox::default();
        let first = outbox.state_for(
            "p",
            (0, 0),
            false,
            9,
            advertised(1, &[("a", 0), ("b", 0)]),
            &view,
            0,
        );
        assert_eq!(
            streams_of(&first),
            (true, vec!["a".into(), "b".into()], vec![])
        );
        let has = (9, version_of(&first));
        let same = outbox.state_for(
            "p",
            has,
            false,
            9,
            advertised(1, &[("a", 0), ("b", 0)]),
            &view,
            0,
        );
        assert_eq!(streams_of(&same), (false, vec![], vec![]));
        assert_eq!(
            version_of(&same),
            has.1,
            "nothing changed: the same version"
        );
        let moved = outbox.state_for(
            "p",
            has,
            false,
            9,
            advertised(2, &[("a", 3), ("c", 0)]),
            &view,
            0,
        );
        assert_eq!(
            streams_of(&moved),
            (false, vec!["a".into(), "c".into()], vec!["b".into()])
        );
        assert!(version_of(&moved) > has.1);
        // Another incarnation of ours than the peer holds: everything again.
        let other = outbox.state_for(
            "p",
            (8, version_of(&moved)),
            false,
            9,
            advertised(2, &[("a", 3), ("c", 0)]),
            &view,
            0,
        );
        assert!(streams_of(&other).0);
    }
}
