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
}
