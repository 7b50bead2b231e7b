//! The load table: a balancer's servers with their load as last read from the mesh and
//! this node's own figures, and where to send viewers. The balancer actor refreshes it
//! every tick and publishes it on the board; a request reads the newest table and never
//! waits on the actor (control plane in the actor, data plane on shared state).

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use super::choose::Server;

/// A server's state version: (incarnation, version) for a peer, the stats sampler's tick
/// for this node. A new one means new figures, which already include the viewers sent
/// there earlier, so the redirects counted against the server start again from zero.
pub type StateVersion = (u64, u64);

/// A balancer's servers as of `taken_ms`, in config order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoadTable {
    /// When it was read (runtime wall clock, ms).
    pub taken_ms: u64,
    /// Requests may use it until then; after, they read the load themselves (the actor
    /// is restarting or stuck).
    pub fresh_until_ms: u64,
    /// The servers with their load.
    pub servers: Vec<Server>,
    /// The state version each server's figures come from.
    pub versions: Vec<StateVersion>,
    /// Where to send viewers per server: a base URL, `None` for this node.
    pub urls: Vec<Option<String>>,
}

impl LoadTable {
    /// Usable at `now_ms`.
    pub fn fresh(&self, now_ms: u64) -> bool {
        now_ms <= self.fresh_until_ms
    }
}

/// What a balancer reads from the node.
pub trait BalancerIo: Send + Sync + 'static {
    /// The load table of balancer `name` now (`None`: no such balancer).
    fn load(&self, name: &str, now_ms: u64) -> Option<LoadTable>;
}

/// Balancer io for tests of the tree: no balancer exists.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoBalancerIo;

impl BalancerIo for NoBalancerIo {
    fn load(&self, _name: &str, _now_ms: u64) -> Option<LoadTable> {
        None
    }
}

/// Where balancer actors publish their tables. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct BalancerBoard {
    tables: Arc<RwLock<BTreeMap<String, Arc<LoadTable>>>>,
}

impl BalancerBoard {
    /// Publishes the newest table of balancer `name`.
    pub fn publish(&self, name: &str, table: LoadTable) {
        self.tables
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), Arc::new(table));
    }

    /// Forgets balancer `name`'s table (removed or changed by a config reload: a table
    /// of its old servers must not route anybody).
    pub fn remove(&self, name: &str) {
        self.tables
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    /// The newest table of balancer `name`.
    pub fn table(&self, name: &str) -> Option<Arc<LoadTable>> {
        self.tables
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }
}
