//! Connection workers: one OS thread per core, each running a single-threaded tokio
//! runtime, for serving client connections.
//!
//! Why: a viewer's connection is a request/response loop that touches no other task. On
//! the node's work-stealing runtime every request woke whichever worker was free, so the
//! socket's wake-up, the request and the reply bounced between cores and their caches
//! (the balancer benchmark measured the cross-worker wakeups and scheduler switches as
//! the largest cost after the kernel's own, docs/benchmarks.md). Here a connection is
//! dealt to one worker when it is accepted and lives there until it closes, the way
//! HAProxy's and nginx's threads own their connections; the control plane (actors, the
//! mesh) stays on the node's runtime.
//!
//! Connections are dealt round-robin, so long-lived players spread evenly whatever the
//! kernel's hash would have done with `SO_REUSEPORT`. A worker is only ever given
//! futures that are `Send`, so anything a handler awaits (an actor call, a shared
//! buffer) works the same from any worker.
//!
//! Dropping [`CoreWorkers`] tells every worker to stop: its runtime is dropped on its
//! own thread, which cancels the connections still open there (the listener drains them
//! first, within its shutdown grace).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Most connection workers a node starts, whatever the core count says (a bound on
/// threads, each with its own timer wheel and I/O driver).
pub const MAX_CORE_WORKERS: usize = 64;

/// One worker: a handle to spawn on its runtime, and the signal that stops it.
struct Worker {
    handle: tokio::runtime::Handle,
    stop: Option<oneshot::Sender<()>>,
}

/// Single-threaded runtimes on their own threads, connections dealt round-robin.
pub struct CoreWorkers {
    workers: Vec<Worker>,
    next: AtomicUsize,
}

impl std::fmt::Debug for CoreWorkers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoreWorkers")
            .field("workers", &self.workers.len())
            .finish()
    }
}

impl CoreWorkers {
    /// Starts `count` workers (at least one, at most [`MAX_CORE_WORKERS`]) named
    /// `{name}-{index}`. Fails only when the OS refuses a thread or a runtime.
    pub(crate) fn start(name: &str, count: usize) -> std::io::Result<CoreWorkers> {
        let count = count.clamp(1, MAX_CORE_WORKERS);
        let mut workers = Vec::with_capacity(count);
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name(format!("{name}-{index}"))
                .build()?;
            let handle = runtime.handle().clone();
            let (stop, stopped) = oneshot::channel::<()>();
            std::thread::Builder::new()
                .name(format!("{name}-{index}"))
                .spawn(move || {
                    // Runs the worker's tasks until told to stop (or the sender is gone);
                    // dropping the runtime here cancels whatever is still on it.
                    runtime.block_on(async {
                        let _ = stopped.await;
                    });
                })?;
            workers.push(Worker {
                handle,
                stop: Some(stop),
            });
        }
        Ok(CoreWorkers {
            workers,
            next: AtomicUsize::new(0),
        })
    }

    /// How many workers run.
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    /// Always false: there is at least one worker.
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }

    /// Spawns `future` on the next worker in turn. `name` is for diagnostics.
    pub fn spawn<F>(&self, name: &'static str, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.workers.len();
        tracing::trace!(task = name, worker = index, "spawn on a connection worker");
        self.workers[index].handle.spawn(future)
    }
}

impl Drop for CoreWorkers {
    fn drop(&mut self) {
        for worker in &mut self.workers {
            if let Some(stop) = worker.stop.take() {
                let _ = stop.send(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connections_are_dealt_round_robin_over_distinct_threads() {
        let workers = CoreWorkers::start("test-worker", 2).expect("workers start");
        assert_eq!(workers.len(), 2);
        let mut threads = Vec::new();
        for _ in 0..4 {
            let name = workers
                .spawn("probe", async {
                    std::thread::current().name().map(str::to_string)
                })
                .await
                .expect("the task runs");
            threads.push(name.expect("workers name their threads"));
        }
        assert_eq!(
            threads,
            [
                "test-worker-0",
                "test-worker-1",
                "test-worker-0",
                "test-worker-1"
            ]
        );
    }

    #[tokio::test]
    async fn dropping_the_workers_cancels_their_tasks() {
        let workers = CoreWorkers::start("test-stop", 1).expect("workers start");
        let never = workers.spawn("forever", std::future::pending::<()>());
        drop(workers);
        let ended = never.await;
        assert!(ended.expect_err("the task is cancelled").is_cancelled());
    }

    #[test]
    fn the_count_is_bounded() {
        let workers = CoreWorkers::start("test-bound", 0).expect("workers start");
        assert_eq!(workers.len(), 1);
    }
}
