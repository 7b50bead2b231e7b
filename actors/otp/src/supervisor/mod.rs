//! Supervision: OTP's supervisor behaviour on ractor (see docs/runtime-semantics.md).

mod actor;
mod error;
mod intensity;
mod spec;
#[cfg(test)]
mod tests;

pub use actor::{
    ChildSummary, KILL_CONFIRM_TIMEOUT, Supervisor, SupervisorArgs, SupervisorMsg, is_normal_exit,
};
pub use error::{StartError, SupervisorError, SupervisorFailure};
pub use intensity::RestartWindow;
pub use spec::{
    Backoff, BoxFuture, ChildSource, ChildSpec, DEFAULT_MAX_CHILDREN, Intensity, Restart, Shutdown,
    StartContext, StartFn, Strategy, SupervisorSpec,
};

use std::sync::Arc;

use ractor::{Actor, ActorRef};

use crate::node::NodeContext;
use crate::registry::ActorPath;

/// A child that is itself a supervisor. Its shutdown is `Infinity`: a supervisor stops
/// when its own children have stopped.
pub fn supervisor_child(id: impl Into<String>, spec: SupervisorSpec) -> ChildSpec {
    ChildSpec {
        id: id.into(),
        kind: "supervisor",
        restart: Restart::Permanent,
        shutdown: Shutdown::Infinity,
        backoff: None,
        start: Arc::new(move |context: StartContext| {
            let spec = spec.clone();
            Box::pin(async move {
                let args = SupervisorArgs {
                    node: context.node,
                    path: context.path,
                    entry: context.entry,
                    spec,
                };
                Actor::spawn_linked(None, Supervisor, args, context.supervisor)
                    .await
                    .map(|(actor, _)| actor.get_cell())
                    .map_err(StartError::from)
            })
        }),
    }
}

/// The supervisor running at `path` in `node`'s tree (e.g. `node/streams`), if running.
pub fn supervisor_at(node: &NodeContext, path: &ActorPath) -> Option<ActorRef<SupervisorMsg>> {
    let entry = node.registry.get(path)?;
    (entry.kind == "supervisor")
        .then(|| entry.cell())
        .flatten()
        .map(ActorRef::from)
}

/// Starts the root supervisor of a node at `node`, unlinked (nothing above it).
pub async fn start_root(
    node: &NodeContext,
    spec: SupervisorSpec,
) -> Result<(ActorRef<SupervisorMsg>, tokio::task::JoinHandle<()>), StartError> {
    let path = ActorPath::root();
    let entry = node.registry.ensure(&path, "supervisor", None);
    let args = SupervisorArgs {
        node: node.clone(),
        path,
        entry: entry.clone(),
        spec,
    };
    let (actor, handle) = Actor::spawn(None, Supervisor, args).await?;
    entry.mark_started(actor.get_cell(), node.runtime.wall_clock_ms());
    Ok((actor, handle))
}
