//! Why supervision refused or failed, as types rather than text.
//!
//! Three different parties can be wrong: the caller asking a supervisor for something
//! it cannot do ([`SupervisorError`]), a child whose start failed ([`StartError`]), and
//! the supervisor itself giving up ([`SupervisorFailure`], which its own supervisor sees
//! as a child failure). This crate does not know who is at fault in a node's terms
//! (config, peer, network): the node classifies these (`flotilla::error::Classified`).

use std::time::Duration;

use crate::registry::ActorPath;

/// Why one incarnation of a child did not start: its actor could not be spawned (its
/// `pre_start` returned an error or panicked). The child is at fault; its supervisor's
/// restart policy decides whether it is tried again.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// ractor refused the spawn; the text is ractor's (it names the child's own reason).
    #[error("{0}")]
    Spawn(#[from] ractor::SpawnErr),
}

/// Why a supervisor refused a request (`StartChild`, `TerminateChild`). The caller asked
/// for something the supervisor's state does not allow, except `StartFailed`.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorError {
    /// A child with this id exists already.
    #[error("a child `{0}` exists already")]
    DuplicateId(String),
    /// No child has this id.
    #[error("no child `{0}`")]
    NotFound(String),
    /// The child's start function failed (the child is at fault).
    #[error("start failed: {0}")]
    StartFailed(#[source] StartError),
    /// `max_children` reached; a later request may fit.
    #[error("already {0} children")]
    TooManyChildren(usize),
}

/// Why a supervisor stopped abnormally: the reason its own supervisor (or the node,
/// for the root) sees.
#[derive(Debug, thiserror::Error)]
pub enum SupervisorFailure {
    /// A child could not be added at the supervisor's start (duplicate id, too many).
    #[error("{path}: a child failed to start: {source}")]
    ChildRefused {
        /// The supervisor's own path.
        path: ActorPath,
        /// Why the child was refused.
        source: SupervisorError,
    },
    /// A child's start function failed at the supervisor's start.
    #[error("{path}: a child failed to start: {source}")]
    ChildFailed {
        /// The supervisor's own path.
        path: ActorPath,
        /// Why the child did not start.
        source: StartError,
    },
    /// More restarts than the intensity allows: escalated to the parent.
    #[error("restart intensity exceeded: more than {max_restarts} restarts in {period:?}")]
    IntensityExceeded {
        /// Restarts allowed within the period.
        max_restarts: u32,
        /// The intensity's window.
        period: Duration,
    },
    /// The kill API (or a test) asked it to fail, with this reason.
    #[error("failure injected: {0}")]
    Injected(String),
}
