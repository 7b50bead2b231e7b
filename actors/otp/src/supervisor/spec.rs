//! How a supervisor is told what to supervise: strategies, restart types, shutdown
//! policies, restart intensity, backoff, and child specifications. Modeled on OTP's
//! `supervisor` behaviour (see docs/runtime-semantics.md for the exact semantics).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use ractor::ActorCell;

use super::error::StartError;
use crate::node::NodeContext;
use crate::registry::{ActorPath, Entry};

/// Which children restart when one of them must.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Only the child that exited.
    OneForOne,
    /// Every child: the others are stopped (reverse order), then all start again in order.
    OneForAll,
    /// The child and every child started after it.
    RestForOne,
    /// Dynamic children of one kind, added and removed at run time; restarts as
    /// `OneForOne`. The supervisor rebuilds them from [`SupervisorSpec::child_source`]
    /// when it (re)starts, never from memory.
    SimpleOneForOne,
}

/// When a child is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Always.
    Permanent,
    /// Only after an abnormal exit (a failure, or a stop reason other than normal/shutdown).
    Transient,
    /// Never; the child is removed when it exits.
    Temporary,
}

/// How a child is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    /// Killed at once (its `terminate` does not run).
    BrutalKill,
    /// Asked to stop, then killed if still running after this long.
    Timeout(Duration),
    /// Asked to stop, and waited for however long it takes (supervisor children).
    Infinity,
}

/// Restart intensity: more than `max_restarts` within `period` and the supervisor gives
/// up, stops its children and fails, escalating to its own supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intensity {
    /// Restarts allowed within the period.
    pub max_restarts: u32,
    /// The sliding window.
    pub period: Duration,
}

impl Default for Intensity {
    /// OTP's default: one restart in five seconds.
    fn default() -> Intensity {
        Intensity {
            max_restarts: 1,
            period: Duration::from_secs(5),
        }
    }
}

/// Delay before restarting a child whose failures come from outside (a camera refusing
/// connections): `initial`, doubling per consecutive failure up to `max`; the count
/// resets once the child has run for `reset_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
    /// A run this long clears the failure count.
    pub reset_after: Duration,
}

impl Backoff {
    /// The delay before restart number `consecutive_failures` (1 for the first failure).
    pub fn delay(&self, consecutive_failures: u32) -> Duration {
        let doublings = consecutive_failures.saturating_sub(1).min(32);
        self.initial
            .checked_mul(1u32 << doublings.min(31))
            .map_or(self.max, |delay| delay.min(self.max))
    }
}

/// Everything a child's start function gets.
#[derive(Clone)]
pub struct StartContext {
    /// The node.
    pub node: NodeContext,
    /// The supervisor to link to.
    pub supervisor: ActorCell,
    /// Where the child sits.
    pub path: ActorPath,
    /// The child's registry entry (already created).
    pub entry: Arc<Entry>,
}

/// A boxed future, as start functions return.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Starts one incarnation of a child, linked to `supervisor`; returns its cell.
pub type StartFn =
    Arc<dyn Fn(StartContext) -> BoxFuture<Result<ActorCell, StartError>> + Send + Sync>;

/// A child specification: how to start, restart and stop one child.
#[derive(Clone)]
pub struct ChildSpec {
    /// Unique among its siblings; the last segment of its path.
    pub id: String,
    /// What it is (`stream`, `peer_link`, `supervisor`), for the registry.
    pub kind: &'static str,
    /// When it is restarted.
    pub restart: Restart,
    /// How it is stopped.
    pub shutdown: Shutdown,
    /// Delay before restarts, for failures that come from outside.
    pub backoff: Option<Backoff>,
    /// Starts one incarnation.
    pub start: StartFn,
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl ChildSpec {
    /// Sets the restart type.
    pub fn restart(mut self, restart: Restart) -> ChildSpec {
        self.restart = restart;
        self
    }

    /// Sets the shutdown policy.
    pub fn shutdown(mut self, shutdown: Shutdown) -> ChildSpec {
        self.shutdown = shutdown;
        self
    }

    /// Sets a restart backoff.
    pub fn backoff(mut self, backoff: Backoff) -> ChildSpec {
        self.backoff = Some(backoff);
        self
    }
}

/// The desired dynamic children of a `SimpleOneForOne` supervisor, read at each start.
pub type ChildSource = Arc<dyn Fn() -> Vec<ChildSpec> + Send + Sync>;

/// A supervisor's whole specification.
#[derive(Clone)]
pub struct SupervisorSpec {
    /// Restart strategy.
    pub strategy: Strategy,
    /// Restart intensity.
    pub intensity: Intensity,
    /// Static children, started in this order.
    pub children: Vec<ChildSpec>,
    /// Dynamic children to rebuild at start (`SimpleOneForOne`).
    pub child_source: Option<ChildSource>,
    /// Most dynamic children at once; more are refused.
    pub max_children: usize,
}

/// Default cap on dynamic children: sessions of a busy edge (10⁴–10⁵ viewers) fit; a
/// leak that would take the node down does not.
pub const DEFAULT_MAX_CHILDREN: usize = 200_000;

impl SupervisorSpec {
    /// A supervisor of static children.
    pub fn new(
        strategy: Strategy,
        intensity: Intensity,
        children: Vec<ChildSpec>,
    ) -> SupervisorSpec {
        SupervisorSpec {
            strategy,
            intensity,
            children,
            child_source: None,
            max_children: DEFAULT_MAX_CHILDREN,
        }
    }

    /// A `SimpleOneForOne` supervisor whose children come from `source` at each start.
    pub fn dynamic(intensity: Intensity, source: Option<ChildSource>) -> SupervisorSpec {
        SupervisorSpec {
            strategy: Strategy::SimpleOneForOne,
            intensity,
            children: Vec::new(),
            child_source: source,
            max_children: DEFAULT_MAX_CHILDREN,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let backoff = Backoff {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(60),
        };
        assert_eq!(backoff.delay(1), Duration::from_millis(500));
        assert_eq!(backoff.delay(2), Duration::from_secs(1));
        assert_eq!(backoff.delay(4), Duration::from_secs(4));
        assert_eq!(backoff.delay(8), Duration::from_secs(30));
        assert_eq!(backoff.delay(u32::MAX), Duration::from_secs(30));
        assert_eq!(backoff.delay(0), Duration::from_millis(500));
    }
}
