//! Workers: the leaf actors of the tree (streams, peer links, sessions, balancers).
//!
//! A [`Worker`] is written like a small ractor actor, and [`Managed`] runs it with what
//! the registry needs: message counters (ractor does not expose its mailbox depth, so we
//! count at our send wrapper, [`Handle`], and after each handled message), a one-line
//! state summary, and failure injection (the kill API sends [`Envelope::Fail`], which
//! makes the worker fail exactly as a bug would, so its supervisor acts).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use ractor::{Actor, ActorCell, ActorProcessingErr, ActorRef, MessagingErr};
use tokio::task::JoinHandle;

use crate::node::NodeContext;
use crate::registry::{Counters, Entry};
use crate::rt::Runtime;
use crate::supervisor::{ChildSpec, Restart, Shutdown, StartContext, StartError};

/// A leaf actor's behaviour.
pub trait Worker: Send + Sync + 'static {
    /// Its messages.
    type Msg: Send + 'static;
    /// Its state.
    type State: Send + 'static;
    /// What each incarnation starts from.
    type Args: Send + 'static;

    /// What it is, for the registry (`stream`, `peer_link`, …).
    fn kind(&self) -> &'static str;

    /// Builds the state. An error here is a failed start.
    fn init(
        &self,
        me: &Handle<Self::Msg>,
        args: Self::Args,
    ) -> impl Future<Output = Result<Self::State, ActorProcessingErr>> + Send;

    /// Handles one message. An error (or a panic) is a failure of this incarnation.
    fn handle(
        &self,
        me: &Handle<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> impl Future<Output = Result<(), ActorProcessingErr>> + Send;

    /// Runs when the worker is stopped (not when it fails or is killed).
    fn terminate(&self, _state: &mut Self::State) -> impl Future<Output = ()> + Send {
        async {}
    }

    /// One line about the state, for the registry.
    fn summary(&self, _state: &Self::State) -> String {
        String::new()
    }

    /// How this incarnation writes its summary when asked (see
    /// [`crate::registry::SummaryProbe`]); `None`: [`Worker::summary`] after each message.
    fn summary_probe(&self, _state: &Self::State) -> Option<crate::registry::SummaryProbe> {
        None
    }

    /// How this incarnation reports the bytes it holds (`None`: it does not).
    fn memory_probe(&self, _state: &Self::State) -> Option<crate::registry::MemoryProbe> {
        None
    }
}

/// What a managed worker's mailbox carries.
pub enum Envelope<M> {
    /// A message for the worker.
    User(M),
    /// Fail now with this reason (failure injection).
    Fail(String),
}

/// A handle to a managed worker: sends count towards its mailbox depth.
pub struct Handle<M> {
    actor: ActorRef<Envelope<M>>,
    counters: Arc<Counters>,
    node: NodeContext,
}

impl<M> Clone for Handle<M> {
    fn clone(&self) -> Self {
        Handle {
            actor: self.actor.clone(),
            counters: self.counters.clone(),
            node: self.node.clone(),
        }
    }
}

impl<M: Send + 'static> Handle<M> {
    /// Sends a message; Err when the worker is gone.
    pub fn send(&self, message: M) -> Result<(), MessagingErr<Envelope<M>>> {
        self.counters.enqueued.fetch_add(1, Ordering::Relaxed);
        let result = self.actor.send_message(Envelope::User(message));
        if result.is_err() {
            self.counters.enqueued.fetch_sub(1, Ordering::Relaxed);
        }
        result
    }

    /// Sends `make()` after `delay` (if the worker still runs then). The timer is a task
    /// of the node's runtime seam (as ractor's `send_after` is a tokio task), on tokio's
    /// clock, so it follows paused and simulated time and stops with a suspended node.
    /// Abort the returned handle to cancel.
    pub fn send_after(
        &self,
        delay: Duration,
        make: impl FnOnce() -> M + Send + 'static,
    ) -> JoinHandle<Result<(), MessagingErr<Envelope<M>>>> {
        let counters = self.counters.clone();
        let actor = self.actor.clone();
        self.node.runtime.spawn("send-after", async move {
            tokio::time::sleep(delay).await;
            counters.enqueued.fetch_add(1, Ordering::Relaxed);
            actor.send_message(Envelope::User(make()))
        })
    }

    /// Sends `make()` every `period` while the worker runs (missed periods are made up
    /// at once, as ractor's `send_interval` does). A task of the node's runtime seam, like
    /// [`Handle::send_after`]. Abort the returned handle to cancel.
    pub fn send_interval(
        &self,
        period: Duration,
        make: impl Fn() -> M + Send + 'static,
    ) -> JoinHandle<()> {
        let counters = self.counters.clone();
        let actor = self.actor.clone();
        self.node.runtime.spawn("send-interval", async move {
            let mut timer = tokio::time::interval(period);
            // The first tick is at once.
            timer.tick().await;
            while ractor::ACTIVE_STATES.contains(&actor.get_status()) {
                timer.tick().await;
                counters.enqueued.fetch_add(1, Ordering::Relaxed);
                // An error: the worker is gone.
                if actor.send_message(Envelope::User(make())).is_err() {
                    break;
                }
            }
        })
    }

    /// Stops the worker: `None` or `"normal"` is a normal exit, anything else abnormal.
    pub fn stop(&self, reason: Option<String>) {
        self.actor.stop(reason);
    }

    /// The ractor cell of this incarnation.
    pub fn cell(&self) -> ActorCell {
        self.actor.get_cell()
    }

    /// The node's runtime seam.
    pub fn runtime(&self) -> &Runtime {
        &self.node.runtime
    }

    /// The node this worker belongs to (its registry, name and runtime).
    pub fn node(&self) -> &NodeContext {
        &self.node
    }
}

/// Runs a [`Worker`] as a ractor actor with registry bookkeeping.
pub struct Managed<W: Worker> {
    worker: W,
}

/// State of a managed worker.
pub struct ManagedState<W: Worker> {
    inner: W::State,
    me: Handle<W::Msg>,
    entry: Arc<Entry>,
    /// Its summary is written on demand (a probe), not after each message.
    probed_summary: bool,
}

impl<W: Worker> Actor for Managed<W> {
    type Msg = Envelope<W::Msg>;
    type State = ManagedState<W>;
    type Arguments = (W::Args, Arc<Entry>, NodeContext);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (args, entry, node): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let me = Handle {
            actor: myself.clone(),
            counters: entry.counters.clone(),
            node: node.clone(),
        };
        let inner = self.worker.init(&me, args).await?;
        entry.set_handle(Arc::new(me.clone()));
        let target = me.clone();
        entry.set_injector(Arc::new(move |reason| {
            target.counters.enqueued.fetch_add(1, Ordering::Relaxed);
            target.actor.send_message(Envelope::Fail(reason)).is_ok()
        }));
        let summary_probe = self.worker.summary_probe(&inner);
        let probed_summary = summary_probe.is_some();
        if !probed_summary {
            entry.set_summary(&self.worker.summary(&inner));
        }
        entry.set_summary_probe(summary_probe);
        entry.set_memory_probe(self.worker.memory_probe(&inner));
        Ok(ManagedState {
            inner,
            me,
            entry,
            probed_summary,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let result = match message {
            Envelope::User(message) => {
                self.worker
                    .handle(&state.me, message, &mut state.inner)
                    .await
            }
            Envelope::Fail(reason) => Err(format!("failure injected: {reason}").into()),
        };
        state.entry.mark_handled();
        if !state.probed_summary {
            state.entry.set_summary(&self.worker.summary(&state.inner));
        }
        result
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        self.worker.terminate(&mut state.inner).await;
        Ok(())
    }
}

/// A child spec that runs `worker` with a fresh `args()` at every (re)start.
/// Defaults: permanent, 5 s shutdown timeout, no backoff.
pub fn worker_child<W: Worker + Clone>(
    id: impl Into<String>,
    worker: W,
    args: impl Fn() -> W::Args + Send + Sync + 'static,
) -> ChildSpec {
    let kind = worker.kind();
    let args = Arc::new(args);
    ChildSpec {
        id: id.into(),
        kind,
        restart: Restart::Permanent,
        shutdown: Shutdown::Timeout(DEFAULT_WORKER_SHUTDOWN),
        backoff: None,
        start: Arc::new(move |context: StartContext| {
            let worker = worker.clone();
            let args = args();
            Box::pin(async move {
                let managed = Managed { worker };
                let arguments = (args, context.entry, context.node);
                Actor::spawn_linked(None, managed, arguments, context.supervisor)
                    .await
                    .map(|(actor, _)| actor.get_cell())
                    .map_err(StartError::from)
            })
        }),
    }
}

/// How long a worker gets to stop before it is killed (OTP's worker default).
pub const DEFAULT_WORKER_SHUTDOWN: Duration = Duration::from_secs(5);
