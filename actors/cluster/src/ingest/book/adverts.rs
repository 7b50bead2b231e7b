//! What a step reads of the cluster, gathered once: where each configured stream is,
//! what every alive peer advertises about it, and this node's own state of it, all by
//! the stream's position in the step's input. The rules ask these several times per
//! stream; gathering them first keeps each rule a read of a slice.

use super::{Advertised, IngestBook, StepInput};
use crate::mesh::view::IngestRole;

/// Where each configured stream is in `input.streams`, found by name.
pub(super) struct StreamPositions<'a> {
    /// (name, position), in name order.
    sorted: Vec<(&'a str, usize)>,
}

impl<'a> StreamPositions<'a> {
    pub(super) fn of(input: &StepInput<'a>) -> StreamPositions<'a> {
        let mut sorted: Vec<(&str, usize)> = input
            .streams
            .iter()
            .enumerate()
            .map(|(index, stream)| (stream.name.as_str(), index))
            .collect();
        sorted.sort_unstable();
        StreamPositions { sorted }
    }

    /// The position of `stream` (`None`: not configured here).
    pub(super) fn get(&self, stream: &str) -> Option<usize> {
        self.sorted
            .binary_search_by(|(name, _)| (*name).cmp(stream))
            .ok()
            .map(|found| self.sorted[found].1)
    }
}

/// What every alive peer advertises about every configured stream.
pub(super) struct PeerAdverts {
    /// `[stream × peers + peer]`, streams in `input.streams` order, peers in
    /// `input.peers` order.
    table: Vec<Option<Advertised>>,
    peers: usize,
}

impl PeerAdverts {
    /// Each peer's map read once.
    pub(super) fn gather(input: &StepInput<'_>, positions: &StreamPositions<'_>) -> PeerAdverts {
        let peers = input.peers.len();
        let mut table = vec![None; input.streams.len() * peers];
        for (peer_index, peer) in input.peers.iter().enumerate() {
            for (name, advertised) in peer.streams.iter() {
                if let Some(at) = positions.get(name) {
                    table[at * peers + peer_index] = Some(*advertised);
                }
            }
        }
        PeerAdverts { table, peers }
    }

    /// What each peer advertises about the stream at `index`, in peer order.
    pub(super) fn of(&self, index: usize) -> &[Option<Advertised>] {
        &self.table[index * self.peers..(index + 1) * self.peers]
    }

    /// Whether some alive peer has frames of the stream at `index` flowing.
    pub(super) fn flowing_at(&self, index: usize) -> bool {
        self.of(index)
            .iter()
            .flatten()
            .any(|advertised| advertised.role == IngestRole::Capturing && advertised.alive)
    }
}

/// This node's own state of each configured stream, by position.
pub(super) struct OwnByPosition {
    /// Its capture here: the epoch, and whether frames flow.
    pub(super) capture: Vec<Option<(u64, bool)>>,
    /// A failed mark holds it off this node.
    pub(super) failed: Vec<bool>,
    /// The highest epoch this node has seen or used for it.
    pub(super) epoch: Vec<u64>,
}

impl OwnByPosition {
    /// As `book` stands at the moment of the call.
    pub(super) fn of(book: &IngestBook, input: &StepInput<'_>) -> OwnByPosition {
        let mut own = OwnByPosition {
            capture: Vec::with_capacity(input.streams.len()),
            failed: Vec::with_capacity(input.streams.len()),
            epoch: Vec::with_capacity(input.streams.len()),
        };
        for stream in input.streams.iter() {
            let name = &stream.name;
            own.capture.push(book.captures.get(name).map(|capture| {
                let flowing = input.health.get(name).is_some_and(|health| health.alive);
                (capture.epoch, flowing)
            }));
            own.failed.push(
                book.failed_until_ms
                    .get(name)
                    .is_some_and(|until_ms| *until_ms > input.now_ms),
            );
            own.epoch.push(book.epochs.get(name).copied().unwrap_or(0));
        }
        own
    }
}
