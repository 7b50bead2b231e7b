//! The supervisor actor: OTP's `supervisor` behaviour on ractor.
//!
//! ractor only reports child exits to the parent (and by default stops the parent on any
//! of them); this actor turns those reports into OTP semantics:
//!
//! 1. Start: children start in order; if one fails to start, those already started are
//!    stopped in reverse order and the supervisor fails to start.
//! 2. Exit of a child: its restart type decides whether it restarts (permanent always,
//!    transient on abnormal exits, temporary never). A restart is counted against the
//!    intensity; past it, every child is stopped in reverse order and the supervisor
//!    fails, which its own supervisor sees as a child failure (escalation).
//! 3. The strategy decides which siblings restart with it (one_for_one: none;
//!    one_for_all: all; rest_for_one: those started after it).
//! 4. Stop: children stop in reverse start order, each per its shutdown policy.
//!
//! Exits of children the supervisor is stopping itself are expected and ignored: each
//! incarnation is tracked by its ractor id, and only the current one counts.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};

use super::error::{StartError, SupervisorError, SupervisorFailure};
use super::intensity::RestartWindow;
use super::spec::{ChildSpec, Restart, Shutdown, StartContext, Strategy, SupervisorSpec};
use crate::node::NodeContext;
use crate::registry::{ActorPath, ActorStatus, Entry};
use crate::rt::Instant;

/// How long a kill is given to take effect before the child is forgotten anyway. Killing
/// aborts the actor's task, so this only bounds a runtime that is shutting down.
pub const KILL_CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// Messages a supervisor accepts.
pub enum SupervisorMsg {
    /// Adds and starts a dynamic child.
    StartChild(ChildSpec, RpcReplyPort<Result<(), SupervisorError>>),
    /// Stops and removes a child.
    TerminateChild(String, RpcReplyPort<Result<(), SupervisorError>>),
    /// Lists the children.
    Children(RpcReplyPort<Vec<ChildSummary>>),
    /// A backoff delay ran out: start this child again (ignored if `generation` is old).
    RestartDue {
        /// Start-order position of the child.
        seq: u64,
        /// Which failure this restart answers.
        generation: u64,
    },
    /// Fails on purpose (the kill API), so the parent supervisor acts.
    InjectFailure(String),
}

/// A child as `Children` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildSummary {
    /// Its id.
    pub id: String,
    /// Whether an incarnation is running now.
    pub running: bool,
}

/// The supervisor behaviour.
pub struct Supervisor;

/// What a supervisor starts with.
pub struct SupervisorArgs {
    /// The node it belongs to.
    pub node: NodeContext,
    /// Its own path.
    pub path: ActorPath,
    /// Its own registry entry.
    pub entry: Arc<Entry>,
    /// What it supervises.
    pub spec: SupervisorSpec,
}

struct Child {
    spec: ChildSpec,
    path: ActorPath,
    entry: Arc<Entry>,
    /// The running incarnation.
    cell: Option<ActorCell>,
    /// Bumped at each failure, so a stale `RestartDue` is ignored.
    generation: u64,
    /// Failures since the child last ran for `backoff.reset_after`.
    consecutive_failures: u32,
    started_at: Instant,
}

/// A supervisor's state: children in start order, keyed by a start sequence number.
pub struct SupervisorState {
    node: NodeContext,
    path: ActorPath,
    entry: Arc<Entry>,
    spec: SupervisorSpec,
    children: BTreeMap<u64, Child>,
    by_actor: HashMap<ActorId, u64>,
    by_id: HashMap<String, u64>,
    next_seq: u64,
    window: RestartWindow,
    /// Children with a running incarnation (kept, not counted, so that the summary
    /// costs O(1) with 10⁵ dynamic children).
    running: usize,
}

/// Whether an exit reason is a normal one (transient children stay down after it).
pub fn is_normal_exit(reason: Option<&str>) -> bool {
    match reason {
        None => true,
        Some(reason) => {
            reason == "normal" || reason == "shutdown" || reason.starts_with("shutdown:")
        }
    }
}

impl SupervisorState {
    fn add_child(&mut self, spec: ChildSpec) -> Result<u64, SupervisorError> {
        if self.by_id.contains_key(&spec.id) {
            return Err(SupervisorError::DuplicateId(spec.id));
        }
        if self.children.len() >= self.spec.max_children {
            return Err(SupervisorError::TooManyChildren(self.spec.max_children));
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let path = self.path.child(&spec.id);
        let entry = self
            .node
            .registry
            .ensure(&path, spec.kind, Some(&self.path));
        self.by_id.insert(spec.id.clone(), seq);
        self.entry.bump_children_version();
        self.children.insert(
            seq,
            Child {
                spec,
                path,
                entry,
                cell: None,
                generation: 0,
                consecutive_failures: 0,
                started_at: self.node.runtime.now(),
            },
        );
        Ok(seq)
    }

    fn remove_child(&mut self, seq: u64) {
        if let Some(child) = self.children.remove(&seq) {
            self.entry.bump_children_version();
            self.by_id.remove(&child.spec.id);
            if let Some(cell) = &child.cell {
                self.by_actor.remove(&cell.get_id());
                self.running -= 1;
            }
            self.node.registry.remove_subtree(&child.path);
        }
    }

    /// Starts one incarnation of child `seq`.
    async fn start_child(&mut self, myself: &ActorCell, seq: u64) -> Result<(), StartError> {
        let Some(child) = self.children.get_mut(&seq) else {
            return Ok(());
        };
        child.entry.set_status(ActorStatus::Starting);
        let context = StartContext {
            node: self.node.clone(),
            supervisor: myself.clone(),
            path: child.path.clone(),
            entry: child.entry.clone(),
        };
        let cell = (child.spec.start)(context).await?;
        child
            .entry
            .mark_started(cell.clone(), self.node.runtime.wall_clock_ms());
        child.started_at = self.node.runtime.now();
        self.by_actor.insert(cell.get_id(), seq);
        debug_assert!(
            child.cell.is_none(),
            "a child runs one incarnation at a time"
        );
        child.cell = Some(cell);
        self.running += 1;
        Ok(())
    }

    /// Takes the running incarnation of child `seq` out of the books (it is being stopped
    /// or has exited), returning its cell.
    fn take_cell(&mut self, seq: u64) -> Option<ActorCell> {
        let cell = self.children.get_mut(&seq)?.cell.take()?;
        self.by_actor.remove(&cell.get_id());
        self.running -= 1;
        Some(cell)
    }

    /// Stops the running incarnation of child `seq` per its shutdown policy.
    async fn stop_child(&mut self, seq: u64) {
        let Some(cell) = self.take_cell(seq) else {
            return;
        };
        let child = &self.children[&seq];
        child.entry.set_status(ActorStatus::Stopping);
        match child.spec.shutdown {
            Shutdown::BrutalKill => {
                let _ = cell.kill_and_wait(Some(KILL_CONFIRM_TIMEOUT)).await;
            }
            Shutdown::Timeout(timeout) => {
                let stopped = cell
                    .stop_and_wait(Some("shutdown".into()), Some(timeout))
                    .await;
                if stopped.is_err() {
                    tracing::warn!(path = %child.path, ?timeout, "child ignored shutdown; killing it");
                    let _ = cell.kill_and_wait(Some(KILL_CONFIRM_TIMEOUT)).await;
                }
            }
            Shutdown::Infinity => {
                let _ = cell.stop_and_wait(Some("shutdown".into()), None).await;
            }
        }
    }

    /// Stops every child with a running incarnation: in reverse start order, one at a
    /// time; or, for dynamic children (independent of each other, as in OTP), all at once,
    /// so that tearing down 10⁵ sessions takes one shutdown timeout, not 10⁵ of them.
    async fn stop_all(&mut self) {
        let order: Vec<u64> = self.children.keys().rev().copied().collect();
        if self.spec.strategy != Strategy::SimpleOneForOne {
            for seq in order {
                self.stop_child(seq).await;
            }
            return;
        }
        let mut stopping = Vec::new();
        for seq in order {
            if let Some(cell) = self.take_cell(seq) {
                let child = &self.children[&seq];
                child.entry.set_status(ActorStatus::Stopping);
                match child.spec.shutdown {
                    Shutdown::BrutalKill => cell.kill(),
                    Shutdown::Timeout(_) | Shutdown::Infinity => cell.stop(Some("shutdown".into())),
                }
                stopping.push((cell, child.spec.shutdown, child.path.clone()));
            }
        }
        let started = self.node.runtime.now();
        for (cell, shutdown, path) in stopping {
            let waited = match shutdown {
                Shutdown::Infinity => cell.wait(None).await,
                Shutdown::BrutalKill => cell.wait(Some(KILL_CONFIRM_TIMEOUT)).await,
                Shutdown::Timeout(timeout) => {
                    let remaining =
                        timeout.saturating_sub(self.node.runtime.now().duration_since(started));
                    cell.wait(Some(remaining)).await
                }
            };
            if waited.is_err() {
                tracing::warn!(%path, "child ignored shutdown; killing it");
                let _ = cell.kill_and_wait(Some(KILL_CONFIRM_TIMEOUT)).await;
            }
        }
    }

    /// Stops every child (reverse order) and removes them and their registry subtrees:
    /// what a supervisor does before it stops or fails.
    async fn shut_down(&mut self) {
        self.stop_all().await;
        for seq in self.children.keys().copied().collect::<Vec<_>>() {
            self.remove_child(seq);
        }
    }

    /// Children that restart along with `seq` under the strategy, in start order.
    fn restart_group(&self, seq: u64) -> Vec<u64> {
        match self.spec.strategy {
            Strategy::OneForOne | Strategy::SimpleOneForOne => vec![seq],
            Strategy::OneForAll => self.children.keys().copied().collect(),
            Strategy::RestForOne => self.children.range(seq..).map(|(s, _)| *s).collect(),
        }
    }

    /// Counts a restart; Err (escalation) when the intensity is exceeded.
    fn count_restart(&mut self) -> Result<(), ActorProcessingErr> {
        let now = self.node.runtime.now();
        if self.window.allow(self.spec.intensity, now) {
            Ok(())
        } else {
            Err(SupervisorFailure::IntensityExceeded {
                max_restarts: self.spec.intensity.max_restarts,
                period: self.spec.intensity.period,
            }
            .into())
        }
    }
}

impl Supervisor {
    /// Handles the exit of the current incarnation of child `seq`.
    async fn on_child_exit(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        seq: u64,
        abnormal: bool,
        reason: String,
    ) -> Result<(), ActorProcessingErr> {
        state.take_cell(seq);
        let Some(child) = state.children.get_mut(&seq) else {
            return Ok(());
        };
        if abnormal {
            tracing::warn!(path = %child.path, %reason, "child failed");
            child.entry.mark_failed(&reason);
        }
        let restart = match child.spec.restart {
            Restart::Permanent => true,
            Restart::Transient => abnormal,
            Restart::Temporary => false,
        };
        if !restart {
            state.remove_child(seq);
            return Ok(());
        }
        let single = matches!(
            state.spec.strategy,
            Strategy::OneForOne | Strategy::SimpleOneForOne
        );
        // A child restarted under its backoff is rate-limited by it (one restart per
        // `initial` at most, less as failures repeat): its failures come from outside
        // (a camera, an origin), and a hundred cameras behind one dead recorder failing
        // together is the world, not a crash loop of this node. The intensity counts the
        // other restarts.
        let under_backoff = single && child.spec.backoff.is_some();
        if !under_backoff && let Err(escalation) = state.count_restart() {
            tracing::error!(path = %state.path, error = %escalation, "supervisor gives up");
            state.shut_down().await;
            return Err(escalation);
        }
        let now = state.node.runtime.now();
        let child = state.children.get_mut(&seq).expect("child present above");
        child.generation += 1;
        let ran_long_enough = child
            .spec
            .backoff
            .is_some_and(|backoff| now.duration_since(child.started_at) >= backoff.reset_after);
        child.consecutive_failures = if ran_long_enough {
            1
        } else {
            child.consecutive_failures + 1
        };
        if let (true, Some(backoff)) = (single, child.spec.backoff) {
            let delay = backoff.delay(child.consecutive_failures);
            child.entry.set_status(ActorStatus::Restarting);
            let generation = child.generation;
            // The delay is a task of the node's runtime seam (stopped with a suspended
            // simulated node), as ractor's `send_after` would be a tokio task.
            let supervisor = myself.clone();
            drop(state.node.runtime.spawn("restart-due", async move {
                tokio::time::sleep(delay).await;
                let _ = supervisor.send_message(SupervisorMsg::RestartDue { seq, generation });
            }));
            return Ok(());
        }
        self.restart_group(myself, state, seq).await
    }

    /// Restarts child `seq` and the siblings its strategy restarts with it.
    async fn restart_group(
        &self,
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        seq: u64,
    ) -> Result<(), ActorProcessingErr> {
        let group = state.restart_group(seq);
        for sibling in group.iter().rev() {
            if *sibling != seq {
                state.stop_child(*sibling).await;
            }
        }
        for member in group {
            let Some(child) = state.children.get(&member) else {
                continue;
            };
            if member != seq && child.spec.restart == Restart::Temporary {
                // OTP: temporary children are never restarted, not even with a sibling.
                state.remove_child(member);
                continue;
            }
            child.entry.count_restart();
            if let Err(reason) = state.start_child(&myself.get_cell(), member).await {
                // A failed restart is one more failure: go through the same policy again.
                let failure = format!("restart failed: {reason}");
                Box::pin(self.on_child_exit(myself, state, member, true, failure)).await?;
            }
        }
        Ok(())
    }
}

impl Actor for Supervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        let mut state = SupervisorState {
            node: args.node,
            path: args.path,
            entry: args.entry,
            spec: args.spec,
            children: BTreeMap::new(),
            by_actor: HashMap::new(),
            by_id: HashMap::new(),
            next_seq: 0,
            window: RestartWindow::default(),
            running: 0,
        };
        let mut initial = state.spec.children.clone();
        if let Some(source) = &state.spec.child_source {
            initial.extend(source());
        }
        for spec in initial {
            let path = state.path.clone();
            let started = match state.add_child(spec) {
                Ok(seq) => state
                    .start_child(&myself.get_cell(), seq)
                    .await
                    .map_err(|source| SupervisorFailure::ChildFailed { path, source }),
                Err(source) => Err(SupervisorFailure::ChildRefused { path, source }),
            };
            if let Err(failure) = started {
                state.shut_down().await;
                return Err(failure.into());
            }
        }
        let injector_target = myself.clone();
        state.entry.set_injector(Arc::new(move |reason| {
            injector_target
                .send_message(SupervisorMsg::InjectFailure(reason))
                .is_ok()
        }));
        state.entry.set_summary(&summary(&state));
        Ok(state)
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        state.shut_down().await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        message: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        state
            .entry
            .counters
            .handled
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match message {
            SupervisorMsg::StartChild(spec, reply) => {
                let result = match state.add_child(spec) {
                    Ok(seq) => match state.start_child(&myself.get_cell(), seq).await {
                        Ok(()) => Ok(()),
                        Err(error) => {
                            state.remove_child(seq);
                            Err(SupervisorError::StartFailed(error))
                        }
                    },
                    Err(error) => Err(error),
                };
                let _ = reply.send(result);
            }
            SupervisorMsg::TerminateChild(id, reply) => {
                let result = match state.by_id.get(&id).copied() {
                    Some(seq) => {
                        state.stop_child(seq).await;
                        state.remove_child(seq);
                        Ok(())
                    }
                    None => Err(SupervisorError::NotFound(id)),
                };
                let _ = reply.send(result);
            }
            SupervisorMsg::Children(reply) => {
                let children = state
                    .children
                    .values()
                    .map(|c| ChildSummary {
                        id: c.spec.id.clone(),
                        running: c.cell.is_some(),
                    })
                    .collect();
                let _ = reply.send(children);
            }
            SupervisorMsg::RestartDue { seq, generation } => {
                let due = state
                    .children
                    .get(&seq)
                    .is_some_and(|c| c.generation == generation && c.cell.is_none());
                if due {
                    state.children[&seq].entry.count_restart();
                    if let Err(reason) = state.start_child(&myself.get_cell(), seq).await {
                        let failure = format!("restart failed: {reason}");
                        self.on_child_exit(&myself, state, seq, true, failure)
                            .await?;
                    }
                }
            }
            SupervisorMsg::InjectFailure(reason) => {
                state.shut_down().await;
                return Err(SupervisorFailure::Injected(reason).into());
            }
        }
        state.entry.set_summary(&summary(state));
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, abnormal, reason) = match event {
            SupervisionEvent::ActorFailed(cell, error) => (cell, true, error.to_string()),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let abnormal = !is_normal_exit(reason.as_deref());
                (cell, abnormal, reason.unwrap_or_else(|| "normal".into()))
            }
            _ => return Ok(()),
        };
        let Some(seq) = state.by_actor.get(&cell.get_id()).copied() else {
            // An incarnation we stopped ourselves, or one already replaced.
            return Ok(());
        };
        self.on_child_exit(&myself, state, seq, abnormal, reason)
            .await?;
        state.entry.set_summary(&summary(state));
        Ok(())
    }
}

fn summary(state: &SupervisorState) -> String {
    let running = state.running;
    let strategy = match state.spec.strategy {
        Strategy::OneForOne => "one_for_one",
        Strategy::OneForAll => "one_for_all",
        Strategy::RestForOne => "rest_for_one",
        Strategy::SimpleOneForOne => "simple_one_for_one",
    };
    format!(
        "{strategy}, {running}/{} children running, {} restarts in window",
        state.children.len(),
        state.window.len()
    )
}
