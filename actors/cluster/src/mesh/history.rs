//! When each node (re)joined the cluster, told the same way to every node.
//!
//! cluster_ingest holds a returning node back (fail-back with hysteresis, longer for a
//! node that flaps), and placement is only agreed when every node agrees on who is
//! returning. Each observer's own memory cannot give that: when the link between two
//! nodes breaks, each sees the other "come back", while the rest saw nothing happen; two
//! observers then spread streams over different sets of nodes, and a stream can end up
//! placed on a node by everyone but that node (nobody captures it; simulation seeds 246
//! and 458). So a node's returns are facts about that node, published by it:
//!
//! - **a restart**: a new incarnation (a number that orders the node's lives, see
//!   `mesh::service`), begun at its start (its own clock). Peers that see a new
//!   incarnation remember its start and tell the node back (`your_restarts_ms` of the
//!   hello), so a node learns its own recent restarts, which it cannot remember itself;
//! - **a rejoin**: it heard fewer than a majority of the cluster, itself included, after
//!   having heard one, and then a majority again (it was cut off, paused, or on the
//!   small side of a partition). A broken link to one peer is not a rejoin.
//!
//! A node publishes its returns and its uptime in every hello. An observer places the
//! node's start at `now - uptime` (once per incarnation) and shifts the node's clock by
//! the same offset, so clocks need not agree. The node and its observers then compute
//! the same "healthy since" and the same return count, up to the delay of one message.

use serde::Serialize;

/// How many recent returns are kept per node: enough to see a node flapping, bounded
/// whatever it does (also the most a hello may carry).
pub const RETURNS_KEPT: usize = 8;

/// Adds `at` to a sorted list of return times, keeping the newest [`RETURNS_KEPT`].
fn remember(list: &mut Vec<u64>, at: u64) {
    if let Err(index) = list.binary_search(&at) {
        list.insert(index, at);
    }
    if list.len() > RETURNS_KEPT {
        list.drain(..list.len() - RETURNS_KEPT);
    }
}

/// This node's own history: its rejoins, seen here, and its restarts, learnt from peers.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OwnHistory {
    /// Unix ms (this node's clock) of its start, which the mesh publishes beside its
    /// incarnation.
    pub started_ms: u64,
    /// It has heard a majority of the cluster since it started.
    had_majority: bool,
    /// It heard fewer than a majority after having heard one: the next majority is a
    /// rejoin.
    cut_off: bool,
    /// Its recent returns (restarts and rejoins), this node's clock, oldest first.
    returns_ms: Vec<u64>,
}

impl OwnHistory {
    /// A node started at `started_ms` (its clock).
    pub fn new(started_ms: u64) -> OwnHistory {
        OwnHistory {
            started_ms,
            ..OwnHistory::default()
        }
    }

    /// Takes in how many nodes this node hears now (itself included) out of the cluster
    /// it knows (itself included).
    pub fn observe(&mut self, heard: usize, cluster_size: usize, now_ms: u64) {
        let majority = heard * 2 > cluster_size;
        if !majority {
            self.cut_off |= self.had_majority;
        } else if self.cut_off {
            self.cut_off = false;
            remember(&mut self.returns_ms, now_ms);
        }
        self.had_majority |= majority;
    }

    /// This node was paused (see `ClusterView::awake`): its peers may have declared it
    /// dead, so, if it had a majority, it counts as cut off, and the next majority it
    /// hears is a rejoin.
    pub fn paused(&mut self) {
        self.cut_off |= self.had_majority;
    }

    /// Takes in this node's restarts as a peer saw them (its starts, its clock).
    /// Nothing after its current start is believed.
    pub fn learn_restarts(&mut self, restarts_ms: &[u64]) {
        for at in restarts_ms.iter().filter(|at| **at <= self.started_ms) {
            remember(&mut self.returns_ms, *at);
        }
    }

    /// Its recent returns, oldest first (this node's clock).
    pub fn returns_ms(&self) -> &[u64] {
        &self.returns_ms
    }

    /// Since when it has been in the cluster without interruption: its start or its last
    /// rejoin.
    pub fn healthy_since_ms(&self) -> u64 {
        self.returns_ms
            .last()
            .map_or(self.started_ms, |last| self.started_ms.max(*last))
    }
}

/// A peer's history as this node knows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PeerHistory {
    /// Unix ms (this node's clock) of the peer's current start: `now - uptime` when its
    /// incarnation was first heard.
    pub started_ms: u64,
    /// Its current incarnation.
    incarnation: u64,
    /// The start of its current incarnation, in its clock.
    their_start_ms: u64,
    /// Starts of the incarnations of the peer this node saw begin (its restarts, its
    /// clock): told back to the peer, and counted here before the peer has learnt them.
    restarts_seen: Vec<u64>,
    /// The returns the peer published (its clock).
    published: Vec<u64>,
    /// Since when it has been in the cluster without interruption (this node's clock).
    pub healthy_since_ms: u64,
    /// Its recent returns, this node's clock, oldest first.
    pub returns_ms: Vec<u64>,
}

impl PeerHistory {
    /// Takes in what the peer said in an exchange heard at `now_ms`.
    pub fn heard(
        &mut self,
        incarnation: u64,
        their_start_ms: u64,
        uptime_ms: u64,
        returns_ms: &[u64],
        now_ms: u64,
    ) {
        if incarnation > self.incarnation {
            if self.incarnation != 0 {
                remember(&mut self.restarts_seen, their_start_ms);
            }
            self.incarnation = incarnation;
            self.their_start_ms = their_start_ms;
            self.started_ms = now_ms.saturating_sub(uptime_ms);
        } else if incarnation < self.incarnation {
            // An exchange of an older incarnation, overtaken: nothing to learn.
            return;
        }
        self.published.clear();
        self.published.extend(
            returns_ms
                .iter()
                .copied()
                .filter(|at| *at <= self.their_start_ms.saturating_add(uptime_ms))
                .take(RETURNS_KEPT),
        );
        let mut theirs = self.restarts_seen.clone();
        for at in &self.published {
            remember(&mut theirs, *at);
        }
        // Their clock to ours: their start is our `started_ms`.
        let ours = |at: u64| {
            (at as i128 + self.started_ms as i128 - self.their_start_ms as i128).max(0) as u64
        };
        self.returns_ms = theirs.into_iter().map(ours).collect();
        self.healthy_since_ms = self
            .returns_ms
            .last()
            .map_or(self.started_ms, |last| self.started_ms.max(*last));
    }

    /// Bytes its lists hold (the allocator's overhead is not counted).
    pub fn held_bytes(&self) -> usize {
        (self.restarts_seen.capacity() + self.published.capacity() + self.returns_ms.capacity())
            * std::mem::size_of::<u64>()
    }

    /// The peer's restarts this node saw (the peer's clock), to tell it.
    pub fn restarts_seen(&self) -> &[u64] {
        &self.restarts_seen
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_node_rejoins_only_after_losing_the_majority_it_had() {
        let mut own = OwnHistory::new(1_000);
        // Starting alone is not a loss: it never had a majority.
        own.observe(1, 5, 1_500);
        own.observe(3, 5, 2_000);
        assert!(own.returns_ms().is_empty());
        // One link broken: still a majority, nothing happened to it.
        own.observe(4, 5, 3_000);
        own.observe(5, 5, 4_000);
        assert!(own.returns_ms().is_empty());
        assert_eq!(own.healthy_since_ms(), 1_000);
        // Cut off, then back: a rejoin.
        own.observe(2, 5, 5_000);
        own.observe(1, 5, 6_000);
        own.observe(3, 5, 7_000);
        assert_eq!(own.returns_ms(), [7_000]);
        assert_eq!(own.healthy_since_ms(), 7_000);
    }

    #[test]
    fn a_node_learns_its_restarts_from_its_peers() {
        let mut own = OwnHistory::new(50_000);
        own.learn_restarts(&[20_000, 50_000, 90_000]);
        assert_eq!(own.returns_ms(), [20_000, 50_000], "never after its start");
        assert_eq!(own.healthy_since_ms(), 50_000);
    }

    #[test]
    fn a_peer_is_healthy_since_its_published_start_or_rejoin_in_our_clock() {
        let mut peer = PeerHistory::default();
        // Its clock runs 7 s ahead of ours: started at 100_000 (its clock), up 20 s
        // when heard at our 113_000.
        peer.heard(100_000, 100_000, 20_000, &[], 113_000);
        assert_eq!(peer.started_ms, 93_000);
        assert_eq!(peer.healthy_since_ms, 93_000);
        assert!(peer.returns_ms.is_empty());
        // It rejoined at 125_000 (its clock).
        peer.heard(100_000, 100_000, 30_000, &[125_000], 123_000);
        assert_eq!(peer.healthy_since_ms, 118_000);
        assert_eq!(peer.returns_ms, [118_000]);
        // It restarted: seen here at once, before it publishes it.
        peer.heard(140_000, 140_000, 1_000, &[], 134_000);
        assert_eq!(peer.restarts_seen(), [140_000]);
        assert_eq!(peer.started_ms, 133_000);
        assert_eq!(peer.returns_ms, [133_000]);
        // Once it has learnt the restart from us it publishes it: counted once.
        peer.heard(140_000, 140_000, 2_000, &[140_000], 135_000);
        assert_eq!(peer.returns_ms, [133_000]);
    }

    #[test]
    fn an_older_incarnation_heard_late_changes_nothing() {
        let mut peer = PeerHistory::default();
        peer.heard(200, 200, 100, &[], 1_000);
        peer.heard(300, 300, 10, &[], 2_000);
        let before = peer.clone();
        peer.heard(200, 200, 150, &[250], 2_100);
        assert_eq!(peer, before);
    }

    proptest! {
        /// Whatever a peer publishes, at most RETURNS_KEPT returns are kept, in order,
        /// and "healthy since" is never before its start.
        #[test]
        fn histories_stay_bounded_and_ordered(
            hellos in proptest::collection::vec(
                (1u64..5, 0u64..10_000, proptest::collection::vec(0u64..50_000, 0..20)),
                1..30,
            ),
        ) {
            let mut peer = PeerHistory::default();
            let mut own = OwnHistory::new(30_000);
            for (now, (incarnation, uptime, returns)) in hellos.into_iter().enumerate() {
                let now = 100_000 + now as u64 * 1_000;
                peer.heard(incarnation * 10_000, incarnation * 10_000, uptime, &returns, now);
                own.learn_restarts(&returns);
                own.observe(returns.len() % 5 + 1, 5, now);
                prop_assert!(peer.returns_ms.len() <= RETURNS_KEPT);
                prop_assert!(peer.returns_ms.windows(2).all(|w| w[0] <= w[1]));
                prop_assert!(peer.healthy_since_ms >= peer.started_ms);
                prop_assert!(own.returns_ms().len() <= RETURNS_KEPT);
                prop_assert!(own.returns_ms().windows(2).all(|w| w[0] < w[1]));
            }
        }
    }
}
