//! What every actor of one node shares: the node's name, runtime seam and registry.
//!
//! Passed explicitly to every actor at start; never stored in a static, so that a
//! simulation can run many nodes in one process.

use std::sync::Arc;

use crate::registry::Registry;
use crate::rt::Runtime;

/// The per-node context.
#[derive(Debug, Clone)]
pub struct NodeContext {
    /// The node's name in the cluster.
    pub name: Arc<str>,
    /// Time, randomness and spawning.
    pub runtime: Runtime,
    /// Every live actor of this node.
    pub registry: Registry,
}

impl NodeContext {
    /// A context with an empty registry.
    pub fn new(name: impl Into<Arc<str>>, runtime: Runtime) -> NodeContext {
        NodeContext {
            name: name.into(),
            runtime,
            registry: Registry::default(),
        }
    }

    /// The guard whose drop ends this node's registry; see [`NodeTeardown`].
    pub fn teardown(&self) -> NodeTeardown {
        NodeTeardown {
            registry: self.registry.clone(),
        }
    }
}

/// Ends a node's registry when whoever owns the node lets go of it.
///
/// The registry keeps each actor's typed handle and probes, and those reach the node's
/// context, which holds the registry: a cycle by design (a handle looked up by path can
/// still reach its node's runtime). Reference counting never frees it, so the node's
/// owner (the binary's node, a simulated host, a test) holds this guard, and its drop
/// clears the registry. Without it, every simulated node that crashed or ended kept its
/// whole actor tree and media state allocated until the process exited (3–4 MB per
/// 5 × 100 run).
#[derive(Debug)]
#[must_use = "dropping the guard ends the node's registry at once"]
pub struct NodeTeardown {
    registry: Registry,
}

impl Drop for NodeTeardown {
    fn drop(&mut self) {
        self.registry.clear();
    }
}
