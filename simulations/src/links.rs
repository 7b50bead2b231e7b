//! Link faults that overlap, composed.
//!
//! turmoil keeps one state per link, and each of `partition`, `repair`, `hold` and
//! `release` overwrites it: the end of one fault (a pause released) would silently end
//! another still on the same link (an isolation), and a "cut off" node would hear its
//! peers again in the middle of its isolation. Here every fault on a link is counted, and
//! the link is set from all of them whenever one starts or ends: a cut wins over a hold,
//! a hold over a healthy link, and one-way cuts apply on top.

use std::collections::BTreeMap;

/// An unordered pair of node indexes, smaller first.
fn pair(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

/// The faults active on each link.
#[derive(Debug, Default)]
pub struct Links {
    /// Symmetric cuts (partitions, isolations) per pair.
    cuts: BTreeMap<(usize, usize), u32>,
    /// Holds (pauses) per pair.
    holds: BTreeMap<(usize, usize), u32>,
    /// One-way cuts per (from, to).
    one_way: BTreeMap<(usize, usize), u32>,
    /// Extra latency of the delay fault in force, ms (0: none).
    pub delay_ms: u64,
}

fn add(counts: &mut BTreeMap<(usize, usize), u32>, key: (usize, usize)) {
    *counts.entry(key).or_default() += 1;
}

fn remove(counts: &mut BTreeMap<(usize, usize), u32>, key: (usize, usize)) {
    if let Some(count) = counts.get_mut(&key) {
        *count = count.saturating_sub(1);
        if *count == 0 {
            counts.remove(&key);
        }
    }
}

impl Links {
    /// A symmetric cut between `a` and `b` starts.
    pub fn cut(&mut self, sim: &mut turmoil::Sim<'_>, names: &[String], a: usize, b: usize) {
        add(&mut self.cuts, pair(a, b));
        self.settle(sim, names, a, b);
    }

    /// A symmetric cut between `a` and `b` ends.
    pub fn mend(&mut self, sim: &mut turmoil::Sim<'_>, names: &[String], a: usize, b: usize) {
        remove(&mut self.cuts, pair(a, b));
        self.settle(sim, names, a, b);
    }

    /// Messages between `a` and `b` start being held.
    pub fn hold(&mut self, sim: &mut turmoil::Sim<'_>, names: &[String], a: usize, b: usize) {
        add(&mut self.holds, pair(a, b));
        self.settle(sim, names, a, b);
    }

    /// A hold between `a` and `b` ends.
    pub fn release(&mut self, sim: &mut turmoil::Sim<'_>, names: &[String], a: usize, b: usize) {
        remove(&mut self.holds, pair(a, b));
        self.settle(sim, names, a, b);
    }

    /// Messages from `from` to `to` start being dropped.
    pub fn cut_one_way(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        names: &[String],
        from: usize,
        to: usize,
    ) {
        add(&mut self.one_way, (from, to));
        self.settle(sim, names, from, to);
    }

    /// A one-way cut from `from` to `to` ends.
    pub fn mend_one_way(
        &mut self,
        sim: &mut turmoil::Sim<'_>,
        names: &[String],
        from: usize,
        to: usize,
    ) {
        remove(&mut self.one_way, (from, to));
        self.settle(sim, names, from, to);
    }

    /// Every fault ends (the heal mends and releases every link itself).
    pub fn clear(&mut self) {
        *self = Links::default();
    }

    /// Sets the link between `a` and `b` from every fault active on it.
    fn settle(&self, sim: &mut turmoil::Sim<'_>, names: &[String], a: usize, b: usize) {
        let key = pair(a, b);
        let (first, second) = (names[key.0].as_str(), names[key.1].as_str());
        if self.cuts.contains_key(&key) {
            sim.partition(first, second);
        } else if self.holds.contains_key(&key) {
            sim.repair(first, second);
            sim.hold(first, second);
        } else {
            // Healthy, delivering whatever a hold kept.
            sim.release(first, second);
        }
        for (from, to) in [(key.0, key.1), (key.1, key.0)] {
            if self.one_way.contains_key(&(from, to)) {
                sim.partition_oneway(names[from].as_str(), names[to].as_str());
            }
        }
    }
}
