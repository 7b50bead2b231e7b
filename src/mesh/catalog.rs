//! The catalog a node gives a restreaming edge of another cluster (`source` there): every
//! stream its cluster offers and which nodes have it, built from what the node advertises
//! itself and from its cluster view — no call to anyone, so answering costs one pass over
//! the view.
//!
//! A stream is offered where a node runs it from its own input (`alive`, or `ondemand`
//! and startable there), never where a node only relays it: an edge subscribes to a
//! stream's owner, as this cluster's own relays do. The owners are in the order the
//! cluster sends viewers: highest capture epoch first (a cluster_ingest stream's current
//! capturer), then by identity.

use std::collections::BTreeMap;

use flotilla_cluster::mesh::view::{ClusterView, PeerState};

use super::wire::{CatalogNode, CatalogStream, MAX_PEERS, MAX_STREAMS, Message, StreamEntry};

/// The catalog of the cluster as the node `me` sees it: its own `streams` (what it
/// advertises) and its alive peers' in `view`. `dial_of` gives the address this node dials
/// a peer at (its view key mapped through the peer's private address).
pub fn catalog(
    me: CatalogNode,
    streams: &[StreamEntry],
    view: &ClusterView,
    now_ms: u64,
    dial_of: impl Fn(&str) -> String,
) -> Message {
    let mut nodes = vec![me];
    // stream → (capture epoch, index of a node that has it)
    let mut offered: BTreeMap<&str, Vec<(u64, u16)>> = BTreeMap::new();
    for entry in streams
        .iter()
        .filter(|s| !s.relayed && (s.alive || s.ondemand))
    {
        offered
            .entry(&entry.name)
            .or_default()
            .push((entry.epoch, 0));
    }
    for (peer, state) in view.peers(now_ms) {
        if state != PeerState::Alive || peer.id.is_empty() {
            continue;
        }
        // The wire bounds a catalog's nodes; a view holds no more than that anyway.
        if nodes.len() > MAX_PEERS {
            break;
        }
        let index = u16::try_from(nodes.len()).expect("at most MAX_PEERS + 1 nodes");
        // Every alive node is listed, with streams or not: an edge asks any of them for
        // the catalog when the node it was configured with is down.
        nodes.push(CatalogNode {
            id: peer.id.clone(),
            mesh: dial_of(&peer.name),
        });
        for (name, remote) in &peer.streams {
            if !remote.relayed && (remote.alive || remote.ondemand) {
                offered.entry(name).or_default().push((remote.epoch, index));
            }
        }
    }
    let streams = offered
        .into_iter()
        .take(MAX_STREAMS)
        .map(|(name, mut owners)| {
            let id = |index: u16| nodes[usize::from(index)].id.as_str();
            owners.sort_by(|(a_epoch, a), (b_epoch, b)| (b_epoch, id(*b)).cmp(&(a_epoch, id(*a))));
            CatalogStream {
                name: name.to_string(),
                owners: owners.into_iter().map(|(_, index)| index).collect(),
            }
        })
        .collect();
    Message::Catalog { nodes, streams }
}

#[cfg(test)]
mod tests {
    use flotilla_cluster::mesh::view::{IngestRole, PeerLoad, PeerUpdate, RemoteStream};

    use super::*;

    fn entry(name: &str, alive: bool, relayed: bool, epoch: u64) -> StreamEntry {
        StreamEntry {
            name: name.into(),
            alive,
            ondemand: false,
            clients: 0,
            bitrate_kbit: 0,
            epoch,
            ingest: IngestRole::None,
            relayed,
        }
    }

    fn report(view: &mut ClusterView, peer: &str, streams: &[StreamEntry], now_ms: u64) {
        view.add_peer(peer, "", 1_000, 3_000);
        view.apply(
            peer,
            PeerUpdate {
                id: peer.into(),
                hostname: peer.into(),
                public_url: format!("http://{peer}"),
                rtmp_url: String::new(),
                incarnation: 1,
                started_ms: 1,
                version: 1,
                load: PeerLoad::default(),
                uptime_ms: 0,
                returns_ms: Vec::new(),
                your_restarts_ms: Vec::new(),
                full: true,
                upserts: streams
                    .iter()
                    .map(|s| (s.name.clone(), s.remote()))
                    .collect::<Vec<(String, RemoteStream)>>(),
                removals: vec![],
                called_by_peer: false,
            },
            now_ms,
        );
    }

    #[test]
    fn offers_captures_of_alive_nodes_current_capturer_first_and_never_a_relayed_copy() {
        let now_ms = 1_000_000;
        let mut view = ClusterView::default();
        report(
            &mut view,
            "b:80",
            &[entry("tv", true, false, 7), entry("copy", true, true, 0)],
            now_ms,
        );
        report(&mut view, "c:80", &[entry("tv", true, false, 9)], now_ms);
        report(&mut view, "gone:80", &[entry("old", true, false, 0)], 1);
        let own = [entry("tv", true, false, 3), entry("cam", true, false, 0)];
        let me = CatalogNode {
            id: "a:80".into(),
            mesh: "a:80".into(),
        };
        let dial = |key: &str| format!("private-{key}");
        let Message::Catalog { nodes, streams } = catalog(me, &own, &view, now_ms, dial) else {
            panic!("not a catalog");
        };
        let ids: Vec<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(ids, ["a:80", "b:80", "c:80"], "a stale node is not offered");
        assert_eq!(
            nodes[1].mesh, "private-b:80",
            "dialed where this node dials it"
        );
        let names: Vec<&str> = streams.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            ["cam", "tv"],
            "relayed copies and stale nodes' streams are not offered"
        );
        let tv_owners: Vec<&str> = streams[1]
            .owners
            .iter()
            .map(|&i| nodes[usize::from(i)].id.as_str())
            .collect();
        assert_eq!(
            tv_owners,
            ["c:80", "b:80", "a:80"],
            "highest capture epoch first"
        );
        // And the whole catalog passes the wire's checks.
        let message = Message::Catalog { nodes, streams };
        let frame = super::super::wire::encode(&message).expect("a valid catalog");
        assert_eq!(super::super::wire::decode(&frame), Ok(message));
    }
}
