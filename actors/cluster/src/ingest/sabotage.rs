//! Sabotage: one rule broken on purpose (a cluster_ingest rule, or a node's teardown), so
//! the simulator can prove that its invariant checks catch what they exist to catch (a
//! check that never fails proves nothing).
//!
//! Nothing in the config language can set it: only the simulator's `--sabotage` flag,
//! which builds the plan itself. A node started from a config always runs with `None`.

use std::fmt;
use std::str::FromStr;

/// The rule to break.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sabotage {
    /// A `capture_at` node that returns never gets its streams back.
    NoFailback,
    /// Besides the owner, the first other node by name captures every stream too.
    DoubleCapture,
    /// Stale peers count as alive: a dead capturer is never replaced.
    IgnoreStale,
    /// A node's owner never ends its registry, so the node's actor tree (held in a cycle
    /// through the registry) outlives it. Applied by whoever owns the node.
    LeakNode,
    /// The coordinator takes a peer not heard since this node resumed from a pause for
    /// dead (as before the cluster view kept such peers alive): a resumed node takes
    /// over, blind, streams that run fine elsewhere.
    BlindResume,
}

impl Sabotage {
    /// Every sabotage, for sweeps and tests.
    pub const ALL: [Sabotage; 5] = [
        Sabotage::NoFailback,
        Sabotage::DoubleCapture,
        Sabotage::IgnoreStale,
        Sabotage::LeakNode,
        Sabotage::BlindResume,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Sabotage::NoFailback => "no-failback",
            Sabotage::DoubleCapture => "double-capture",
            Sabotage::IgnoreStale => "ignore-stale",
            Sabotage::LeakNode => "leak-node",
            Sabotage::BlindResume => "blind-resume",
        }
    }
}

impl fmt::Display for Sabotage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Sabotage {
    type Err = String;

    fn from_str(text: &str) -> Result<Sabotage, String> {
        Sabotage::ALL
            .into_iter()
            .find(|sabotage| sabotage.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Sabotage::ALL.iter().map(|s| s.name()).collect();
                format!("unknown sabotage {text:?} (one of: {})", names.join(", "))
            })
    }
}
